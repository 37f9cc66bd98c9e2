"""Resource builders: one `RedisCluster` component (a Memorystore instance and its extras) per cluster."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping

import pulumi
import pulumi_command as command
import pulumi_gcp as gcp
from google.cloud import redis_v1
from google.type import dayofweek_pb2
from pulumi.config import ConfigTypeError

from redisguard.program.config import (
    CONFIG_KEY,
    PROJECT_NAME,
    BetaFlags,
    ClusterConfig,
    FlagValue,
    StackConfig,
    StackConfigError,
    parse_clusters,
)
from redisguard.program.instance import declared_instance

COMPONENT_TYPE = "redisguard:fleet:RedisCluster"


def instance_args(cluster: ClusterConfig, *, project: str | None, region: str | None) -> gcp.redis.InstanceArgs:
    """The `gcp.redis.Instance` inputs for one cluster: its declared instance (program/instance.py) in the provider's terms."""
    declared = declared_instance(cluster)
    maintenance_policy = None
    windows = list(declared.maintenance_policy.weekly_maintenance_window)
    if windows:
        maintenance_policy = gcp.redis.InstanceMaintenancePolicyArgs(
            weekly_maintenance_windows=[
                gcp.redis.InstanceMaintenancePolicyWeeklyMaintenanceWindowArgs(
                    day=dayofweek_pb2.DayOfWeek.Name(window.day),
                    start_time=gcp.redis.InstanceMaintenancePolicyWeeklyMaintenanceWindowStartTimeArgs(
                        hours=window.start_time.hours,
                        minutes=window.start_time.minutes,
                        seconds=0,
                        nanos=0,
                    ),
                )
                for window in windows
            ]
        )
    persistence = declared.persistence_config
    ha = declared.tier == redis_v1.Instance.Tier.STANDARD_HA
    return gcp.redis.InstanceArgs(
        name=cluster.name,
        display_name=declared.display_name,
        memory_size_gb=declared.memory_size_gb,
        tier=declared.tier.name,
        redis_version=declared.redis_version,
        auth_enabled=declared.auth_enabled,
        transit_encryption_mode=declared.transit_encryption_mode.name,
        connect_mode=declared.connect_mode.name,
        authorized_network=declared.authorized_network or None,
        customer_managed_key=declared.customer_managed_key or None,
        location_id=declared.location_id or None,
        maintenance_policy=maintenance_policy,
        persistence_config=gcp.redis.InstancePersistenceConfigArgs(
            persistence_mode=persistence.persistence_mode.name,
            rdb_snapshot_period=_set_or_none(persistence.rdb_snapshot_period.name),
        ),
        redis_configs=dict(declared.redis_configs) or None,
        # Unset on BASIC: the provider would otherwise send replica settings a BASIC instance refuses.
        replica_count=declared.replica_count if ha else None,
        read_replicas_mode=declared.read_replicas_mode.name if ha else None,
        labels=dict(declared.labels) or None,
        # Not an API field: the provider's own guard against `pulumi destroy`.
        deletion_protection=cluster.deletion_protection,
        project=project,
        region=region,
    )


def import_id(cluster: ClusterConfig, *, project: str | None, region: str | None) -> str | None:
    """The id Pulumi's `import` option needs to adopt the existing instance (None unless `import_existing`).

    The gcp provider's own import format: `projects/P/locations/R/instances/NAME`, shorter
    when the stack leaves project or region to the provider's defaults.
    """
    if not cluster.import_existing:
        return None
    if project and region:
        return f"projects/{project}/locations/{region}/instances/{cluster.name}"
    if region:
        return f"{region}/{cluster.name}"
    return cluster.name


def _set_or_none(enum_name: str) -> str | None:
    return None if enum_name.endswith("_UNSPECIFIED") else enum_name


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


class RedisCluster(pulumi.ComponentResource):
    """A Memorystore Redis instance built from one cluster entry, plus its beta-flag command."""

    instance: gcp.redis.Instance
    host: pulumi.Output[str]
    port: pulumi.Output[int]
    current_location_id: pulumi.Output[str]
    auth_string: pulumi.Output[str]

    def __init__(
        self,
        cluster: ClusterConfig,
        *,
        project: str | None,
        region: str | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(COMPONENT_TYPE, cluster.name, None, opts)
        command_provider = None
        if cluster.beta_flags is not None:
            # Registered before the instance: when the instance is replaced delete-before-replace (the
            # gcp provider asks for it, the name being the user's), the engine deletes the command
            # (its revert) as soon as the instance is registered, and a default provider would not be
            # registered yet at that point ("unknown provider").
            command_provider = command.Provider(f"{cluster.name}-command", opts=pulumi.ResourceOptions(parent=self))
        self.instance = gcp.redis.Instance(
            cluster.name,
            args=instance_args(cluster, project=project, region=region),
            opts=pulumi.ResourceOptions(
                parent=self,
                # The AUTH string stays encrypted in state and masked in every diff and output.
                additional_secret_outputs=["authString"],
                import_=import_id(cluster, project=project, region=region),
            ),
        )
        if cluster.beta_flags is not None:
            create, delete = beta_flags_commands(cluster.name, cluster.beta_flags, project=project, region=region)
            command.local.Command(
                f"{cluster.name}-beta-flags",
                create=create,
                delete=delete,
                # Re-run only when the flags change: a change replaces the command, which
                # reverts the old flags first (delete before replace) and then applies the new.
                triggers=[json.dumps(cluster.beta_flags.model_dump(), sort_keys=True)],
                opts=pulumi.ResourceOptions(
                    parent=self.instance,
                    provider=command_provider,
                    depends_on=[self.instance],
                    delete_before_replace=True,
                    # A replaced instance (new tier, zone, network, key, project, region...) comes
                    # up without the flags while the command's flags are unchanged: replace the
                    # command with it, so the flags are reverted and applied again.
                    replace_with=[self.instance],
                ),
            )
        self.host = self.instance.host
        self.port = self.instance.port
        self.current_location_id = self.instance.current_location_id
        self.auth_string = pulumi.Output.secret(self.instance.auth_string)
        self.register_outputs(
            {
                "host": self.host,
                "port": self.port,
                "current_location_id": self.current_location_id,
                "auth_string": self.auth_string,
            }
        )


def build_fleet(stack: StackConfig) -> dict[str, RedisCluster]:
    """Register one `RedisCluster` per cluster and export its connection details."""
    clusters: dict[str, RedisCluster] = {}
    for cluster in stack.clusters:
        component = RedisCluster(cluster, project=stack.project, region=stack.region)
        clusters[cluster.name] = component
        pulumi.export(
            cluster.name,
            {
                "host": component.host,
                "port": component.port,
                "current_location_id": component.current_location_id,
                "auth_string": component.auth_string,
            },
        )
    return clusters


def stack_from_pulumi_config() -> StackConfig:
    """Read and validate the running stack's config (raises StackConfigError)."""
    stack = pulumi.get_stack()
    source = f"Pulumi.{stack}.yaml"
    config = pulumi.Config(PROJECT_NAME)
    try:
        raw = config.get_object("redis")
    except ConfigTypeError:
        # A plain string such as `redis-fleet:redis: cache`: let validation say what is expected.
        raw = config.get("redis")
    gcp_config = pulumi.Config("gcp")
    region = gcp_config.get("region")
    clusters = parse_clusters(raw, source, region=region)
    return StackConfig(
        stack=stack,
        source=source,
        project=gcp_config.get("project"),
        region=region,
        clusters=clusters,
    )


NOT_UNDER_PULUMI = (
    "redis-fleet is a Pulumi program and runs under the Pulumi engine: "
    "`cd program && pulumi preview --stack staging` (see README.md)"
)


def main() -> dict[str, RedisCluster]:
    """Entry point of the Pulumi program: validate everything, then register resources."""
    if pulumi.runtime.settings.get_monitor() is None:
        # Started as a plain script: without the engine's resource monitor nothing can be
        # registered, and Pulumi's own error would name a made-up stack.
        raise SystemExit(NOT_UNDER_PULUMI)
    try:
        stack = stack_from_pulumi_config()
    except StackConfigError as exc:
        # RunError prints the message without a Python traceback; nothing is registered.
        raise pulumi.RunError(f"invalid {CONFIG_KEY} config in {exc}") from None
    return build_fleet(stack)
