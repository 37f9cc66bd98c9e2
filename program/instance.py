"""The one answer to "what instance does this cluster declare?": its `gcp:redis/instance:Instance` inputs as plain values.

`declared_inputs` is the instance as the Pulumi engine receives it (camelCase, what a policy pack
judges); the program registers exactly these (`fleet.instance_args`), `policy-check` hands them
to the pack without running the program, and `declared_instance` turns them into the
Memorystore API's own `Instance` for the live drift engine's expected side (read with the same
reader as the live instances) and the emulator's `--fleet`. So a rule written here (a default,
the STANDARD_HA gating of replicas) holds in all of them. `tests/program/test_resources.py`
checks the inputs against what the program registers under the SDK's mocks, and
`tests/daemon/fleet/test_properties.py` the API instance against those inputs. Plain values
only: importing this module loads neither Pulumi nor the Google clients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redisguard.program.config import ClusterConfig

if TYPE_CHECKING:
    from google.cloud import redis_v1


def declared_inputs(cluster: ClusterConfig, *, project: str | None = None, region: str | None = None) -> dict[str, Any]:
    """The inputs `pulumi up` of the program gives the gcp provider for one cluster, with the
    enforced secure defaults; what the program leaves to Memorystore or the provider (replicas of a
    BASIC instance, a zone, a network, the snapshot period of an unpersisted instance) is absent."""
    persistence: dict[str, Any] = {"persistenceMode": cluster.persistence_mode}
    if (period := cluster.effective_snapshot_period()) is not None:
        persistence["rdbSnapshotPeriod"] = period
    inputs: dict[str, Any] = {
        "name": cluster.name,
        "displayName": cluster.effective_display_name(),
        "memorySizeGb": cluster.memory_gb,
        "tier": cluster.tier,
        "redisVersion": cluster.redis_version,
        # Enforced: AUTH is on for every instance, whatever the config says.
        "authEnabled": True,
        "transitEncryptionMode": cluster.transit_encryption,
        "connectMode": cluster.connect_mode,
        "persistenceConfig": persistence,
        # Not an API field: the provider's own guard against `pulumi destroy`.
        "deletionProtection": cluster.deletion_protection,
    }
    optional = {
        "authorizedNetwork": cluster.authorized_network,
        "customerManagedKey": cluster.customer_managed_key,
        "locationId": cluster.location_id,
        "redisConfigs": cluster.redis_configs(),
        "labels": dict(cluster.labels),
    }
    inputs.update({key: value for key, value in optional.items() if value})
    if cluster.tier == "STANDARD_HA":
        # Unset on BASIC: the provider would otherwise send replica settings a BASIC instance refuses.
        inputs["replicaCount"] = cluster.effective_replica_count()
        inputs["readReplicasMode"] = "READ_REPLICAS_ENABLED" if cluster.read_replicas else "READ_REPLICAS_DISABLED"
    if cluster.maintenance_window_day is not None:
        start = {
            "hours": cluster.maintenance_start_hours or 0,
            "minutes": cluster.maintenance_start_minutes or 0,
            "seconds": 0,
            "nanos": 0,
        }
        inputs["maintenancePolicy"] = {
            "weeklyMaintenanceWindows": [{"day": cluster.maintenance_window_day, "startTime": start}]
        }
    if project is not None:
        inputs["project"] = project
    if region is not None:
        inputs["region"] = region
    return inputs


def declared_instance(cluster: ClusterConfig, *, name: str = "") -> redis_v1.Instance:
    """The Instance `pulumi up` of the program asks Memorystore for: `declared_inputs` in the API's terms.

    `name` is the full resource name (`CloudRedisClient.instance_path(...)`) when known. Fields the
    inputs leave out stay unset. The provider's inputs name the API's `weeklyMaintenanceWindow`
    `weeklyMaintenanceWindows`; an unpersisted instance has no snapshot period.
    """
    from google.cloud import redis_v1

    inputs = declared_inputs(cluster)
    persistence = inputs["persistenceConfig"]
    instance = redis_v1.Instance(
        name=name,
        display_name=inputs["displayName"],
        memory_size_gb=inputs["memorySizeGb"],
        tier=inputs["tier"],
        redis_version=inputs["redisVersion"],
        auth_enabled=inputs["authEnabled"],
        transit_encryption_mode=inputs["transitEncryptionMode"],
        connect_mode=inputs["connectMode"],
        authorized_network=inputs.get("authorizedNetwork", ""),
        customer_managed_key=inputs.get("customerManagedKey", ""),
        location_id=inputs.get("locationId", ""),
        labels=inputs.get("labels", {}),
        redis_configs=inputs.get("redisConfigs", {}),
        persistence_config=redis_v1.PersistenceConfig(
            persistence_mode=persistence["persistenceMode"],
            rdb_snapshot_period=persistence.get("rdbSnapshotPeriod", "SNAPSHOT_PERIOD_UNSPECIFIED"),
        ),
    )
    if "replicaCount" in inputs:
        instance.replica_count = inputs["replicaCount"]
        instance.read_replicas_mode = redis_v1.Instance.ReadReplicasMode[inputs["readReplicasMode"]]  # type: ignore[misc]  # a proto-plus enum is an IntEnum: indexable by name
    if "maintenancePolicy" in inputs:
        instance.maintenance_policy = redis_v1.MaintenancePolicy(
            weekly_maintenance_window=[
                redis_v1.WeeklyMaintenanceWindow(
                    day=window["day"],
                    start_time={"hours": window["startTime"]["hours"], "minutes": window["startTime"]["minutes"]},
                )
                for window in inputs["maintenancePolicy"]["weeklyMaintenanceWindows"]
            ]
        )
    return instance
