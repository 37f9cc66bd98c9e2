"""`--fleet`: create a stack file's clusters at start, as `pulumi up` of the program would have."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.type import dayofweek_pb2

from redisguard.core.errors import ConfigError
from redisguard.emulator import state as st
from redisguard.emulator.errors import ApiError
from redisguard.emulator.service import MemorystoreService
from redisguard.program.config import ClusterConfig, load_stack_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FleetResult:
    created: tuple[str, ...]
    kept: tuple[str, ...]


def instance_for(cluster: ClusterConfig) -> Any:
    """The Instance resource the program's `gcp.redis.Instance` would request for `cluster`."""
    inst = st.InstancePb(
        display_name=cluster.effective_display_name(),
        memory_size_gb=cluster.memory_gb,
        tier=st.Tier.Value(cluster.tier),
        redis_version=cluster.redis_version,
        auth_enabled=True,
        transit_encryption_mode=st.TransitEncryptionMode.Value(cluster.transit_encryption),
        connect_mode=st.ConnectMode.Value(cluster.connect_mode),
        authorized_network=cluster.authorized_network or "",
        customer_managed_key=cluster.customer_managed_key or "",
        location_id=cluster.location_id or "",
        labels=dict(cluster.labels),
        redis_configs=cluster.redis_configs(),
    )
    if cluster.tier == "STANDARD_HA":
        inst.replica_count = cluster.effective_replica_count()
        inst.read_replicas_mode = (
            st.ReadReplicasMode.READ_REPLICAS_ENABLED
            if cluster.read_replicas
            else st.ReadReplicasMode.READ_REPLICAS_DISABLED
        )
    inst.persistence_config.persistence_mode = st.PersistenceMode.Value(cluster.persistence_mode)
    period = cluster.effective_snapshot_period()
    if period:
        inst.persistence_config.rdb_snapshot_period = st.SnapshotPeriod.Value(period)
    if cluster.maintenance_window_day is not None:
        window = inst.maintenance_policy.weekly_maintenance_window.add()
        window.day = dayofweek_pb2.DayOfWeek.Value(cluster.maintenance_window_day)
        window.start_time.hours = cluster.maintenance_start_hours or 0
        window.start_time.minutes = cluster.maintenance_start_minutes or 0
    return inst


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
        name = st.instance_name(project, region, cluster.name)
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
