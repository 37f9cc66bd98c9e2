"""Live -> declared, the inverse of the property reader: the cluster entry that declares what an instance
runs (codify), and the cluster keys that declare a compared property (adopt)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redisguard.core.memorystore import ALL_EVICTION_POLICIES
from redisguard.daemon.fleet.inventory import split_instance_name
from redisguard.daemon.fleet.properties import (
    WINDOW_DAY,
    WINDOW_HOURS,
    WINDOW_MINUTES,
    enum_name_or,
    instance_properties,
)

if TYPE_CHECKING:
    from google.cloud import redis_v1

# The cluster keys that declare each compared property path (labels.KEY is the `labels` key).
PATH_KEYS: dict[str, tuple[str, ...]] = {
    "displayName": ("display_name",),
    "memorySizeGb": ("memory_gb",),
    "tier": ("tier", "replica_count", "read_replicas"),
    "redisVersion": ("redis_version",),
    "authEnabled": ("auth_enabled",),
    "transitEncryptionMode": ("transit_encryption",),
    "persistenceConfig.persistenceMode": ("persistence_mode", "snapshot_period"),
    "persistenceConfig.rdbSnapshotPeriod": ("snapshot_period",),
    WINDOW_DAY: ("maintenance_window_day", "maintenance_start_hours", "maintenance_start_minutes"),
    WINDOW_HOURS: ("maintenance_start_hours",),
    WINDOW_MINUTES: ("maintenance_start_minutes",),
    "replicaCount": ("replica_count",),
    "readReplicasMode": ("read_replicas", "replica_count"),
    "redisConfigs.maxmemory-policy": ("max_memory_policy",),
    "redisConfigs.activedefrag": ("active_defrag",),
}


def keys_for_path(path: str) -> tuple[str, ...]:
    """The cluster keys that declare a compared property path; () when the flat config has none."""
    if path.startswith("labels."):
        return ("labels",)
    return PATH_KEYS.get(path, ())


@dataclass(frozen=True)
class LiveEntry:
    """A live instance as a cluster entry of the flat format, and what that format cannot say."""

    entry: dict[str, Any]
    """Keys in the order the shipped stack files use; compares equal to the instance (compare() == [])."""
    unexpressible: tuple[tuple[str, str], ...] = ()
    """(property path, why) for what runs but no cluster key declares."""


Unexpressible = list[tuple[str, str]]


def cluster_entry(instance: redis_v1.Instance) -> LiveEntry:
    """The cluster entry that declares exactly what `instance` runs (the AUTH string is never read).

    `authEnabled: false` has no entry key (AUTH is always on in the program): it is reported in
    `unexpressible`, and the entry's AUTH stays on, so callers must refuse rather than write it.
    """
    live = instance_properties(instance)
    configs, unexpressible = _redis_config_keys(instance.redis_configs)
    entry = {
        **_instance_keys(instance, live),
        **configs,
        **_persistence_keys(live),
        "transit_encryption": live["transitEncryptionMode"],
        **_replica_keys(live),
        **_network_keys(instance),
        **_maintenance_keys(live),
        **_label_keys(live),
    }
    if not live["authEnabled"]:
        unexpressible.append(("authEnabled", "AUTH is off; the program always turns AUTH on (a secure default config cannot turn off)"))
    return LiveEntry(entry=entry, unexpressible=tuple(unexpressible))


def _instance_keys(instance: redis_v1.Instance, live: Mapping[str, Any]) -> dict[str, Any]:
    """name, display_name (when not the id), memory_gb, tier, redis_version and location_id."""
    instance_id = split_instance_name(instance.name).instance_id
    entry: dict[str, Any] = {"name": instance_id}
    if instance.display_name != instance_id:
        entry["display_name"] = instance.display_name  # "" stays "": the program sends it as it is
    entry["memory_gb"] = live["memorySizeGb"]
    entry["tier"] = live["tier"]
    if live["redisVersion"]:
        entry["redis_version"] = live["redisVersion"]
    if instance.location_id:
        entry["location_id"] = instance.location_id
    return entry


def _redis_config_keys(redis_configs: Mapping[str, str]) -> tuple[dict[str, Any], Unexpressible]:
    """max_memory_policy and active_defrag, and every Redis config the flat config has no key for."""
    entry: dict[str, Any] = {}
    unexpressible: Unexpressible = []
    configs = dict(redis_configs)
    policy = configs.pop("maxmemory-policy", None)
    if policy is not None:
        if policy in ALL_EVICTION_POLICIES:
            entry["max_memory_policy"] = policy
        else:
            unexpressible.append(("redisConfigs.maxmemory-policy", f"{policy!r} is not an eviction policy max_memory_policy allows"))
    defrag = configs.pop("activedefrag", None)
    if defrag is not None:
        if defrag in ("yes", "no"):
            entry["active_defrag"] = defrag == "yes"
        else:
            unexpressible.append(("redisConfigs.activedefrag", f"{defrag!r} is neither yes nor no"))
    for name in sorted(configs):
        unexpressible.append(
            (f"redisConfigs.{name}", "the flat config has no key for this Redis config; the program would remove it")
        )
    return entry, unexpressible


def _persistence_keys(live: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"persistence_mode": live["persistenceConfig.persistenceMode"]}
    if entry["persistence_mode"] == "RDB" and live["persistenceConfig.rdbSnapshotPeriod"]:
        entry["snapshot_period"] = live["persistenceConfig.rdbSnapshotPeriod"]
    return entry


def _replica_keys(live: Mapping[str, Any]) -> dict[str, Any]:
    if live["tier"] != "STANDARD_HA":
        return {}
    return {"read_replicas": live["readReplicasMode"] == "READ_REPLICAS_ENABLED", "replica_count": live["replicaCount"]}


def _network_keys(instance: redis_v1.Instance) -> dict[str, Any]:
    """What is fixed at creation and not compared (properties.NOT_COMPARED), declared only when not the default."""
    entry: dict[str, Any] = {}
    connect_mode = enum_name_or(instance.connect_mode, "DIRECT_PEERING")
    if connect_mode != "DIRECT_PEERING":
        entry["connect_mode"] = connect_mode
    if instance.authorized_network:
        entry["authorized_network"] = instance.authorized_network
    if instance.customer_managed_key:
        entry["customer_managed_key"] = instance.customer_managed_key
    return entry


def _maintenance_keys(live: Mapping[str, Any]) -> dict[str, Any]:
    if not live.get(WINDOW_DAY):
        return {}
    return {
        "maintenance_window_day": live[WINDOW_DAY],
        "maintenance_start_hours": live[WINDOW_HOURS],
        "maintenance_start_minutes": live[WINDOW_MINUTES],
    }


def _label_keys(live: Mapping[str, Any]) -> dict[str, Any]:
    labels = {k[len("labels."):]: v for k, v in live.items() if k.startswith("labels.")}
    return {"labels": labels} if labels else {}


# --- the pack's inputs (the provider's input shape) --------------------------------------------


def nest_properties(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Property paths (the property reader's: dotted, `[n]` for a list item) as the nested camelCase
    inputs the pack reads; a `redisConfigs.` or `labels.` path's rest is one key, whatever it holds."""
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        head, _, rest = path.partition(".")
        if head in ("redisConfigs", "labels"):
            nested.setdefault(head, {})[rest] = value
            continue
        node: Any = nested
        steps: list[str | int] = []
        for part in path.split("."):
            name, _, index = part.partition("[")
            steps.append(name)
            if index:
                steps.append(int(index.rstrip("]")))
        for step, following in zip(steps, steps[1:], strict=False):
            empty: Any = [] if isinstance(following, int) else {}
            if isinstance(step, int):
                while len(node) <= step:
                    node.append(None)
                if node[step] is None:
                    node[step] = empty
                node = node[step]
            else:
                node = node.setdefault(step, empty)
        last = steps[-1]
        if isinstance(last, int):
            while len(node) <= last:
                node.append(None)
        node[last] = value
    return nested


def live_policy_inputs(instance: redis_v1.Instance, *, deletion_protection: Any = True) -> dict[str, Any]:
    """The `gcp:redis/instance:Instance` inputs that declare what `instance` runs: what codify's
    entry registers (codify and adopt judge them in process) and what the daemon's compliance
    check has the pack judge. `deletion_protection`: a Pulumi-side input the API does not hold
    (codify's entries set it; the compliance check passes the engine's unknown, so the policy
    reading it is not applicable rather than falsely violated)."""
    inputs = nest_properties(instance_properties(instance))
    inputs["labels"] = dict(instance.labels)
    for key, value in (
        ("authorizedNetwork", instance.authorized_network),
        ("customerManagedKey", instance.customer_managed_key),
        ("locationId", instance.location_id),
        ("connectMode", enum_name_or(instance.connect_mode, "DIRECT_PEERING")),
    ):
        if value:
            inputs[key] = value
    inputs["deletionProtection"] = deletion_protection
    return inputs
