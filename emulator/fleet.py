"""`--fleet`: create a stack file's clusters at start, as `pulumi up` of the program would have."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from google.cloud import redis_v1

from redisguard.core.errors import ConfigError
from redisguard.emulator.errors import ApiError
from redisguard.emulator.memorystore.service import MemorystoreService
from redisguard.emulator.memorystore.store import InstanceMessage, instance_name
from redisguard.program.config import ClusterConfig, load_stack_file
from redisguard.program.instance import declared_instance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FleetResult:
    created: tuple[str, ...]
    kept: tuple[str, ...]


def instance_for(cluster: ClusterConfig) -> InstanceMessage:
    """The Instance resource the program's `gcp.redis.Instance` would request for `cluster` (its declared instance)."""
    return redis_v1.Instance.pb(declared_instance(cluster))


def apply_fleet(service: MemorystoreService, path: Path, project: str | None, region: str | None) -> FleetResult:
    """Create the clusters of the stack file that do not exist yet; existing ones are left as they are.

    Leaving existing instances alone keeps what a previous run changed (a drifted
    memory size, say) across an emulator restart with the same --fleet.
    """
    stack = load_stack_file(path)
    project = project or stack.project or service.settings.project
    region = region or stack.region or service.settings.region
    created, kept = [], []
    for cluster in stack.clusters:
        name = instance_name(project, region, cluster.name)
        if service.store.get(name) is not None:
            kept.append(name)
            continue
        try:
            op = service.create(project, region, cluster.name, instance_for(cluster))
        except ApiError as exc:
            raise ConfigError(f"{path}: cluster {cluster.name}: {exc.message}") from exc
        if op.error is not None:
            raise ConfigError(f"{path}: cluster {cluster.name}: {op.error.message}")
        created.append(name)
    log.info(
        "fleet applied file=%s project=%s region=%s created=%d kept=%d", path, project, region, len(created), len(kept)
    )
    return FleetResult(tuple(created), tuple(kept))
