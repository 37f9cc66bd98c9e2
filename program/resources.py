"""What the redis-fleet program registers for a stack, as plain values: the one description `fleet.py` registers and `policy-check` judges.

Per cluster, in registration order: the `RedisCluster` component, the command provider (with
`beta_flags`), the instance (`instance.declared_inputs`) and the beta-flags command. The
program builds its resources from these names and inputs; `policy-check` sends them to the pack
as the engine would, without running the program under the SDK's mocks (which costs an import
of Pulumi, the gcp and command SDKs and an asyncio runtime). `tests/program/test_resources.py`
holds them equal to what the program registers under the mocks. Plain values only: importing
this module loads neither Pulumi nor the Google clients.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redisguard.core.pulumi import INSTANCE_TYPE
from redisguard.program.config import BetaFlags, ClusterConfig, FlagValue, StackConfig
from redisguard.program.instance import declared_inputs

COMPONENT_TYPE = "redisguard:fleet:RedisCluster"
COMMAND_TYPE = "command:local:Command"
COMMAND_PROVIDER_TYPE = "pulumi:providers:command"


@dataclass(frozen=True)
class DeclaredResource:
    """One resource the program registers: its type token, logical name and inputs (camelCase)."""

    type: str
    name: str
    inputs: dict[str, Any] = field(default_factory=dict)


def command_provider_name(cluster: ClusterConfig) -> str:
    return f"{cluster.name}-command"


def beta_flags_name(cluster: ClusterConfig) -> str:
    return f"{cluster.name}-beta-flags"


def _flag_arguments(flags: Mapping[str, FlagValue]) -> list[str]:
    arguments: list[str] = []
    for name, value in flags.items():
        if value is True:
            arguments.append(f"--{name}")
        elif value is False:
            arguments.append(f"--no-{name}")
        else:
            arguments.append(f"--{name}={value}")
    return arguments


def gcloud_update_command(
    instance: str, flags: Mapping[str, FlagValue], *, project: str | None, region: str | None
) -> str:
    """A `gcloud beta redis instances update` line; every argument is shell-quoted."""
    argv = ["gcloud", "beta", "redis", "instances", "update", instance, "--quiet"]
    if project:
        argv.append(f"--project={project}")
    if region:
        argv.append(f"--region={region}")
    argv.extend(_flag_arguments(flags))
    return shlex.join(argv)


def beta_flags_commands(
    cluster_name: str, flags: BetaFlags, *, project: str | None, region: str | None
) -> tuple[str, str | None]:
    """The (create, delete) commands that apply and revert a cluster's beta flags."""
    create = gcloud_update_command(cluster_name, flags.apply, project=project, region=region)
    delete = (
        gcloud_update_command(cluster_name, flags.revert, project=project, region=region) if flags.revert else None
    )
    return create, delete


def beta_flags_inputs(cluster: ClusterConfig, flags: BetaFlags, *, project: str | None, region: str | None) -> dict[str, Any]:
    """The `command:local:Command` inputs that apply (create) and revert (delete) a cluster's beta flags."""
    create, delete = beta_flags_commands(cluster.name, flags, project=project, region=region)
    inputs: dict[str, Any] = {"create": create}
    if delete is not None:
        inputs["delete"] = delete
    # Re-run only when the flags change: a change replaces the command, which reverts the old
    # flags first (delete before replace) and then applies the new.
    inputs["triggers"] = [json.dumps(flags.model_dump(), sort_keys=True)]
    return inputs


def cluster_resources(cluster: ClusterConfig, *, project: str | None, region: str | None) -> list[DeclaredResource]:
    """The resources the program registers for one cluster, in registration order."""
    resources = [DeclaredResource(COMPONENT_TYPE, cluster.name)]
    if cluster.beta_flags is not None:
        resources.append(DeclaredResource(COMMAND_PROVIDER_TYPE, command_provider_name(cluster)))
    resources.append(DeclaredResource(INSTANCE_TYPE, cluster.name, declared_inputs(cluster, project=project, region=region)))
    if cluster.beta_flags is not None:
        inputs = beta_flags_inputs(cluster, cluster.beta_flags, project=project, region=region)
        resources.append(DeclaredResource(COMMAND_TYPE, beta_flags_name(cluster), inputs))
    return resources


def stack_resources(stack: StackConfig) -> list[DeclaredResource]:
    """Every resource the program registers for a stack (the stack resource itself aside)."""
    return [r for cluster in stack.clusters for r in cluster_resources(cluster, project=stack.project, region=stack.region)]
