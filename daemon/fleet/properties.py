"""The one property reader: an instance's compared properties by their Pulumi input paths, for the live and the declared instance alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from google.type import dayofweek_pb2

from redisguard.core.pulumi import is_secret
from redisguard.program.config import ClusterConfig
from redisguard.program.instance import declared_instance

if TYPE_CHECKING:
    from google.cloud import redis_v1

WINDOW = "maintenancePolicy.weeklyMaintenanceWindows[0]"
WINDOW_DAY, WINDOW_HOURS, WINDOW_MINUTES = (f"{WINDOW}.day", f"{WINDOW}.startTime.hours", f"{WINDOW}.startTime.minutes")


# Pulumi inputs the program sets that are not compared, each with why: the API cannot change them
# after creation (a change replaces the instance, which the pulumi engine reports), or they are
# not an API field. tests/daemon/fleet/test_properties.py holds every input to this list or the reader.
NOT_COMPARED = {
    "name": "the instance id: a different one is a missing instance plus an unmanaged one",
    "project": "where the instance is listed",
    "region": "where the instance is listed",
    "connectMode": "immutable after creation",
    "authorizedNetwork": "immutable after creation",
    "customerManagedKey": "immutable after creation",
    "locationId": "immutable after creation (and chosen by Memorystore when unset)",
    "deletionProtection": "the provider's own guard against `pulumi destroy`, not an API field",
}


def enum_name(value: Any) -> str:
    """A proto-plus enum member's name as the API spells it (`STANDARD_HA`, `READY`)."""
    return getattr(value, "name", None) or str(value)


def enum_name_or(value: Any, unspecified_as: str | None) -> str | None:
    """An enum's name, or `unspecified_as` when the field is left at its `*_UNSPECIFIED` member."""
    name = enum_name(value)
    return unspecified_as if name.endswith("_UNSPECIFIED") else name


def expected_properties(cluster: ClusterConfig) -> dict[str, Any]:
    """The compared properties of the instance the cluster declares, read as a live instance is read."""
    return instance_properties(declared_instance(cluster))


def instance_properties(instance: redis_v1.Instance) -> dict[str, Any]:
    """The compared properties of an instance, by their Pulumi input paths (camelCase); the AUTH string is never read.

    The one reader of both sides: the live instance from the API and the declared one
    (program/instance.py), so a property compared is a property read the same way twice.

    It reads the protobuf message under the proto-plus wrapper: the same fields, without a
    wrapper and an enum member built for each one read (a tenth of the time, for every instance
    of every scan).
    """
    pb = type(instance).pb(instance)
    persistence = pb.persistence_config
    tier = _enum_name_or(pb, "tier", None)
    props: dict[str, Any] = {
        "displayName": pb.display_name or None,
        "memorySizeGb": pb.memory_size_gb,
        "tier": tier,
        "redisVersion": pb.redis_version or None,
        "authEnabled": pb.auth_enabled,
        # Memorystore leaves these unset when they are off; unset and off are the same state.
        "transitEncryptionMode": _enum_name_or(pb, "transit_encryption_mode", "DISABLED"),
        "persistenceConfig.persistenceMode": _enum_name_or(persistence, "persistence_mode", "DISABLED"),
        "persistenceConfig.rdbSnapshotPeriod": _enum_name_or(persistence, "rdb_snapshot_period", None),
    }
    if tier == "STANDARD_HA":
        # A BASIC instance has no replicas to count; the program sets neither for it.
        props["replicaCount"] = pb.replica_count
        props["readReplicasMode"] = _enum_name_or(pb, "read_replicas_mode", "READ_REPLICAS_DISABLED")
    windows = pb.maintenance_policy.weekly_maintenance_window
    if windows:
        window = windows[0]
        props[WINDOW_DAY] = dayofweek_pb2.DayOfWeek.Name(window.day) if window.day else None
        props[WINDOW_HOURS] = window.start_time.hours
        props[WINDOW_MINUTES] = window.start_time.minutes
    # The maps' own iteration and lookup: their .items() is the pure-Python Mapping one.
    configs, labels = pb.redis_configs, pb.labels
    for key in configs:
        props[f"redisConfigs.{key}"] = configs[key]
    for key in labels:
        props[f"labels.{key}"] = labels[key]
    return props


def instance_state(instance: redis_v1.Instance) -> str:
    """The instance's state as the API spells it (`READY`, `CREATING`, ...): enum_name(instance.state), read as instance_properties reads."""
    return _enum_name(type(instance).pb(instance), "state")


def _enum_name(message: Any, field: str) -> str:
    """enum_name for a field of a protobuf message (its number, as the wire holds it; a number the
    enum does not know, from a newer API, is its decimal text, as proto-plus gives it)."""
    number = getattr(message, field)
    names = _ENUM_NAMES.get((type(message), field))
    if names is None:
        values = message.DESCRIPTOR.fields_by_name[field].enum_type.values
        names = _ENUM_NAMES[(type(message), field)] = {v.number: v.name for v in values}
    name = names.get(number)
    return name if name is not None else str(number)


# (message type, enum field) -> number -> the member's name, read from the descriptor once.
_ENUM_NAMES: dict[tuple[type, str], dict[int, str]] = {}


def _enum_name_or(message: Any, field: str, unspecified_as: str | None) -> str | None:
    """enum_name_or for a field of a protobuf message."""
    name = _enum_name(message, field)
    return unspecified_as if name.endswith("_UNSPECIFIED") else name


# The scalar inputs of gcp:redis/instance:Instance the reader compares, each at its own path.
_SCALAR_INPUTS = (
    "displayName",
    "memorySizeGb",
    "tier",
    "redisVersion",
    "authEnabled",
    "transitEncryptionMode",
    "replicaCount",
    "readReplicasMode",
)
_REPLICA_PATHS = ("replicaCount", "readReplicasMode")


def input_properties(inputs: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The compared properties a resource's recorded Pulumi inputs set (any program's state), by the
    reader's paths; and the paths not compared because their value is a secret.

    Only what the inputs set: what a program leaves to the provider's defaults is not declared,
    so it is not compared (a default compared would be a guess, and a wrong guess is false drift).
    """
    props: dict[str, Any] = {}
    secret: list[str] = []

    def put(path: str, value: Any) -> None:
        if is_secret(value):
            secret.append(path)
        elif isinstance(value, float) and value.is_integer():
            props[path] = int(value)  # JSON numbers: a state's 2.0 GB is the API's 2
        elif value is not None:
            props[path] = value

    for key in _SCALAR_INPUTS:
        if key in inputs:
            put(key, inputs[key])
    persistence = inputs.get("persistenceConfig")
    if isinstance(persistence, Mapping):
        for key in ("persistenceMode", "rdbSnapshotPeriod"):
            if key in persistence:
                put(f"persistenceConfig.{key}", persistence[key])
    policy = inputs.get("maintenancePolicy")
    windows = policy.get("weeklyMaintenanceWindows") if isinstance(policy, Mapping) else None
    if isinstance(windows, list) and windows and isinstance(windows[0], Mapping):
        window = windows[0]
        if "day" in window:
            put(WINDOW_DAY, window["day"])
        start = window.get("startTime")
        if isinstance(start, Mapping):
            # The API leaves a zero out of its answer and the reader reads it back as 0.
            put(WINDOW_HOURS, start.get("hours", 0))
            put(WINDOW_MINUTES, start.get("minutes", 0))
    for group in ("redisConfigs", "labels"):
        values = inputs.get(group)
        if is_secret(values):
            secret.append(group)
        elif isinstance(values, Mapping):
            for key, value in values.items():
                put(f"{group}.{key}", value)
    if props.get("tier") == "BASIC":
        # A BASIC instance has no replicas; the live reader reads neither for it.
        for path in _REPLICA_PATHS:
            props.pop(path, None)
    return props, secret
