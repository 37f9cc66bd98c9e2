"""The one answer to "what instance does this cluster declare?": a ClusterConfig as the Memorystore API's own `Instance`.

The program's Pulumi inputs (`fleet.instance_args`), the live drift engine's expected side
(read with the same reader as the live instances) and the emulator's `--fleet` all derive from
`declared_instance`, so a rule written here (a default, the STANDARD_HA gating of replicas) holds
in all three. `tests/daemon/fleet/test_properties.py` checks it against the inputs the program
registers with the Pulumi engine.
"""

from __future__ import annotations

from google.cloud import redis_v1

from redisguard.program.config import ClusterConfig


def declared_instance(cluster: ClusterConfig, *, name: str = "") -> redis_v1.Instance:
    """The Instance `pulumi up` of the program asks Memorystore for, with the enforced secure defaults.

    `name` is the full resource name (`CloudRedisClient.instance_path(...)`) when known. Fields the
    program leaves to Memorystore (replicas of a BASIC instance, a zone, a network) stay unset.
    """
    instance = redis_v1.Instance(
        name=name,
        display_name=cluster.effective_display_name(),
        memory_size_gb=cluster.memory_gb,
        tier=cluster.tier,
        redis_version=cluster.redis_version,
        # Enforced: AUTH is on for every instance, whatever the config says.
        auth_enabled=True,
        transit_encryption_mode=cluster.transit_encryption,
        connect_mode=cluster.connect_mode,
        authorized_network=cluster.authorized_network or "",
        customer_managed_key=cluster.customer_managed_key or "",
        location_id=cluster.location_id or "",
        labels=dict(cluster.labels),
        redis_configs=cluster.redis_configs(),
        persistence_config=redis_v1.PersistenceConfig(
            persistence_mode=cluster.persistence_mode,
            rdb_snapshot_period=cluster.effective_snapshot_period() or "SNAPSHOT_PERIOD_UNSPECIFIED",
        ),
    )
    if cluster.tier == "STANDARD_HA":
        instance.replica_count = cluster.effective_replica_count()
        modes = redis_v1.Instance.ReadReplicasMode
        # modes(...): type checkers see a proto-plus enum's members as plain ints.
        instance.read_replicas_mode = modes(modes.READ_REPLICAS_ENABLED if cluster.read_replicas else modes.READ_REPLICAS_DISABLED)
    if cluster.maintenance_window_day is not None:
        instance.maintenance_policy = redis_v1.MaintenancePolicy(
            weekly_maintenance_window=[
                redis_v1.WeeklyMaintenanceWindow(
                    day=cluster.maintenance_window_day,
                    start_time={
                        "hours": cluster.maintenance_start_hours or 0,
                        "minutes": cluster.maintenance_start_minutes or 0,
                    },
                )
            ]
        )
    return instance
