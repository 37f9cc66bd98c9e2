"""Memorystore's rules as the real API applies them: what a request may say, and what the API fills in."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence

from google.protobuf import timestamp_pb2

from redisguard.emulator.errors import failed_precondition, invalid
from redisguard.emulator.memorystore.store import (
    ConnectMode,
    InstanceMessage,
    InstancePb,
    InstanceRecord,
    PersistenceMode,
    ReadReplicasMode,
    SnapshotPeriod,
    State,
    Tier,
    TransitEncryptionMode,
)

# The emulator keeps its own copy of Memorystore's rules on purpose and does not import
# redisguard.core.memorystore (which the program, the pack and the daemon share): it stands in for
# Google's server, and checking requests independently is what lets it catch a mistake in those parts.
#
# Name rules from the Memorystore docs: lowercase letters, digits and hyphens, starts with
# a letter, ends with a letter or digit, 1-40 characters.
INSTANCE_ID_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?$")
PROJECT_RE = re.compile(r"^(?:[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,20})$")
REGION_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
LABEL_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")
KMS_KEY_RE = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$")
NETWORK_RE = re.compile(r"^projects/[^/]+/global/networks/[^/]+$")

MIN_MEMORY_GB = 1
MIN_MEMORY_GB_READ_REPLICAS = 5
MAX_MEMORY_GB = 300
MAX_READ_REPLICAS = 5

SUPPORTED_REDIS_VERSIONS = ("REDIS_3_2", "REDIS_4_0", "REDIS_5_0", "REDIS_6_X", "REDIS_7_0", "REDIS_7_2")
DEFAULT_REDIS_VERSION = "REDIS_7_2"

EVICTION_POLICIES = (
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)
_YES_NO = ("yes", "no")


def _int_at_least(minimum: int) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value.isdigit() and int(value) >= minimum else f"an integer >= {minimum}"

    return check


def _one_of(*allowed: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in allowed else "one of " + ", ".join(allowed)

    return check


def _keyspace_events(value: str) -> str | None:
    return None if set(value) <= set("KEg$lshzxeAtmdn") else "a subset of the characters KEg$lshzxeAtmdn"


def _positive_float(value: str) -> str | None:
    try:
        return None if float(value) > 0 else "a positive number of GB"
    except ValueError:
        return "a positive number of GB"


# The redisConfigs keys Memorystore accepts, each with a check of its value.
SUPPORTED_REDIS_CONFIGS = {
    "maxmemory-gb": _positive_float,
    "maxmemory-policy": _one_of(*EVICTION_POLICIES),
    "notify-keyspace-events": _keyspace_events,
    "activedefrag": _one_of(*_YES_NO),
    "lfu-decay-time": _int_at_least(0),
    "lfu-log-factor": _int_at_least(0),
    "stream-node-max-bytes": _int_at_least(0),
    "stream-node-max-entries": _int_at_least(0),
    "active-expire-effort": _one_of(*(str(n) for n in range(1, 11))),
    "lazyfree-lazy-eviction": _one_of(*_YES_NO),
    "lazyfree-lazy-expire": _one_of(*_YES_NO),
    "lazyfree-lazy-user-del": _one_of(*_YES_NO),
    "lazyfree-lazy-user-flush": _one_of(*_YES_NO),
}

# Fields an update may name in its mask (snake_case, as in the proto).
UPDATABLE_FIELDS = (
    "display_name",
    "labels",
    "memory_size_gb",
    "redis_configs",
    "replica_count",
    "read_replicas_mode",
    "secondary_ip_range",
    "auth_enabled",
    "persistence_config",
    "maintenance_policy",
    "maintenance_version",
)

SNAPSHOT_SECONDS = {
    SnapshotPeriod.ONE_HOUR: 3600,
    SnapshotPeriod.SIX_HOURS: 6 * 3600,
    SnapshotPeriod.TWELVE_HOURS: 12 * 3600,
    SnapshotPeriod.TWENTY_FOUR_HOURS: 24 * 3600,
}



def validate_parent(project: str, region: str, *, allow_all_regions: bool = False) -> None:
    if not PROJECT_RE.match(project):
        raise invalid(f"Invalid project id '{project}' in resource name.")
    if allow_all_regions and region == "-":
        return
    if not REGION_RE.match(region):
        raise invalid(f"Invalid location '{region}': expected a region such as europe-west1.")


def validate_instance_id(instance_id: str) -> None:
    if not instance_id:
        raise invalid("Request is missing required field instance_id.")
    if not INSTANCE_ID_RE.match(instance_id):
        raise invalid(
            f"Invalid instance_id '{instance_id}': it must be 1-40 characters of lowercase letters, "
            "digits and hyphens, start with a letter and end with a letter or digit."
        )


def _check_labels(labels: dict[str, str]) -> None:
    if len(labels) > 64:
        raise invalid(f"An instance can have at most 64 labels, got {len(labels)}.")
    for key, value in labels.items():
        if not LABEL_KEY_RE.match(key):
            raise invalid(
                f"Invalid label key '{key}': keys are 1-63 lowercase letters, digits, '_' or '-' "
                "and start with a letter."
            )
        if not LABEL_VALUE_RE.match(value):
            raise invalid(f"Invalid value for label '{key}': values are 0-63 lowercase letters, digits, '_' or '-'.")


def _check_memory(inst: InstanceMessage) -> None:
    minimum = (
        MIN_MEMORY_GB_READ_REPLICAS
        if inst.read_replicas_mode == ReadReplicasMode.READ_REPLICAS_ENABLED
        else MIN_MEMORY_GB
    )
    if not minimum <= inst.memory_size_gb <= MAX_MEMORY_GB:
        raise invalid(
            f"Invalid value for field 'instance.memory_size_gb': {inst.memory_size_gb}. "
            f"It must be between {minimum} and {MAX_MEMORY_GB} GB for this instance."
        )


def _check_redis_configs(configs: dict[str, str], memory_size_gb: int) -> None:
    for key, value in configs.items():
        check = SUPPORTED_REDIS_CONFIGS.get(key)
        if check is None:
            raise invalid(
                f"Invalid redis_configs key '{key}'. Supported keys: {', '.join(sorted(SUPPORTED_REDIS_CONFIGS))}."
            )
        problem = check(value)
        if problem:
            raise invalid(f"Invalid value '{value}' for redis_configs['{key}']: expected {problem}.")
    if "maxmemory-gb" in configs and float(configs["maxmemory-gb"]) > memory_size_gb:
        raise invalid(
            f"Invalid value for redis_configs['maxmemory-gb']: {configs['maxmemory-gb']} is above the "
            f"instance capacity of {memory_size_gb} GB."
        )


def _check_replicas(inst: InstanceMessage) -> None:
    if inst.tier == Tier.BASIC:
        if inst.read_replicas_mode == ReadReplicasMode.READ_REPLICAS_ENABLED:
            raise invalid("Read replicas are only available on STANDARD_HA instances.")
        if inst.replica_count:
            raise invalid("Field 'instance.replica_count' must be 0 for BASIC tier instances.")
        return
    if inst.read_replicas_mode == ReadReplicasMode.READ_REPLICAS_ENABLED:
        if not 1 <= inst.replica_count <= MAX_READ_REPLICAS:
            raise invalid(
                f"Invalid value for field 'instance.replica_count': {inst.replica_count}. "
                f"With read replicas enabled it must be between 1 and {MAX_READ_REPLICAS}."
            )
    elif inst.replica_count not in (0, 1):
        raise invalid(
            f"Invalid value for field 'instance.replica_count': {inst.replica_count}. "
            "Without read replicas a STANDARD_HA instance has exactly 1 replica."
        )


def _check_persistence(inst: InstanceMessage) -> None:
    pc = inst.persistence_config
    if pc.persistence_mode == PersistenceMode.DISABLED and pc.rdb_snapshot_period:
        raise invalid("persistence_config.rdb_snapshot_period requires persistence_mode RDB.")


def _check_maintenance(inst: InstanceMessage) -> None:
    windows = inst.maintenance_policy.weekly_maintenance_window
    if len(windows) > 1:
        raise invalid("maintenance_policy.weekly_maintenance_window accepts at most one window.")
    for w in windows:
        if not w.day:
            raise invalid("maintenance_policy.weekly_maintenance_window.day is required.")
        t = w.start_time
        if not (0 <= t.hours <= 23 and 0 <= t.minutes <= 59 and t.seconds == 0 and t.nanos == 0):
            raise invalid(
                "maintenance_policy.weekly_maintenance_window.start_time must have hours 0-23, "
                "minutes 0-59 and no seconds."
            )


def _check_common(inst: InstanceMessage) -> None:
    """The checks shared by create and update."""
    _check_labels(dict(inst.labels))
    _check_replicas(inst)
    _check_memory(inst)
    _check_redis_configs(dict(inst.redis_configs), inst.memory_size_gb)
    _check_persistence(inst)
    _check_maintenance(inst)
    if inst.display_name and len(inst.display_name) > 80:
        raise invalid("Field 'instance.display_name' is limited to 80 characters.")


def validate_new_instance(inst: InstanceMessage, region: str) -> None:
    """Raise INVALID_ARGUMENT for what the real CreateInstance rejects; fill defaults in place."""
    if inst.tier == Tier.TIER_UNSPECIFIED:
        raise invalid("Request is missing required field instance.tier (BASIC or STANDARD_HA).")
    if inst.memory_size_gb == 0:
        raise invalid("Request is missing required field instance.memory_size_gb.")
    if inst.redis_version and inst.redis_version not in SUPPORTED_REDIS_VERSIONS:
        raise invalid(
            f"Invalid redis_version '{inst.redis_version}'. Supported: {', '.join(SUPPORTED_REDIS_VERSIONS)}."
        )
    for zone_field in ("location_id", "alternative_location_id"):
        zone = getattr(inst, zone_field)
        if zone and not zone.startswith(region + "-"):
            raise invalid(f"Invalid {zone_field} '{zone}': it must be a zone of region {region}.")
    if inst.alternative_location_id and inst.tier == Tier.BASIC:
        raise invalid("alternative_location_id is only valid for STANDARD_HA instances.")
    if inst.customer_managed_key and not KMS_KEY_RE.match(inst.customer_managed_key):
        raise invalid(
            f"Invalid customer_managed_key '{inst.customer_managed_key}': expected "
            "projects/*/locations/*/keyRings/*/cryptoKeys/*."
        )
    if inst.authorized_network and not NETWORK_RE.match(inst.authorized_network):
        raise invalid(f"Invalid authorized_network '{inst.authorized_network}': expected projects/*/global/networks/*.")
    if inst.tier == Tier.STANDARD_HA and inst.read_replicas_mode == ReadReplicasMode.READ_REPLICAS_ENABLED:
        if not inst.replica_count:
            inst.replica_count = 2
    elif inst.tier == Tier.STANDARD_HA and not inst.replica_count:
        inst.replica_count = 1
    _check_common(inst)


def _camel_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def normalize_mask(paths: Sequence[str]) -> list[str]:
    """updateMask paths as snake_case top-level fields; INVALID_ARGUMENT for anything not updatable."""
    if not paths:
        raise invalid("Request is missing required field update_mask.")
    fields = []
    for path in paths:
        name = _camel_to_snake(path.strip())
        if name not in UPDATABLE_FIELDS:
            raise invalid(
                f"Field '{name}' cannot be updated (immutable or unknown). "
                f"Updatable fields: {', '.join(UPDATABLE_FIELDS)}."
            )
        fields.append(name)
    return fields


def apply_update(current: InstanceMessage, patch: InstanceMessage, mask: list[str]) -> InstanceMessage:
    """A copy of `current` with the masked fields taken from `patch`, validated like the real API."""
    updated = InstancePb()
    updated.CopyFrom(current)
    for name in mask:
        if name in ("labels", "redis_configs"):
            target = getattr(updated, name)
            target.clear()
            target.update(dict(getattr(patch, name)))
        elif name in ("persistence_config", "maintenance_policy"):
            updated.ClearField(name)
            if patch.HasField(name):
                getattr(updated, name).CopyFrom(getattr(patch, name))
        else:
            setattr(updated, name, getattr(patch, name))
    if (
        "read_replicas_mode" in mask
        and current.tier == Tier.BASIC
        and patch.read_replicas_mode == ReadReplicasMode.READ_REPLICAS_ENABLED
    ):
        raise failed_precondition("Read replicas cannot be enabled on a BASIC tier instance.")
    if (
        "read_replicas_mode" in mask
        and current.read_replicas_mode == ReadReplicasMode.READ_REPLICAS_ENABLED
        and updated.read_replicas_mode != ReadReplicasMode.READ_REPLICAS_ENABLED
    ):
        raise failed_precondition("Read replicas cannot be disabled once enabled.")
    if (
        "replica_count" not in mask
        and updated.read_replicas_mode == ReadReplicasMode.READ_REPLICAS_ENABLED
        and updated.replica_count < 1
    ):
        updated.replica_count = 2
    if updated.memory_size_gb == 0:
        raise invalid("Field 'instance.memory_size_gb' cannot be cleared.")
    _check_common(updated)
    return updated


def require_state(record: InstanceRecord, *allowed: int, action: str) -> None:
    """FAILED_PRECONDITION unless the instance is in one of the allowed states."""
    if record.instance.state not in allowed:
        state = State.Name(record.instance.state)
        raise failed_precondition(f"Cannot {action} instance {record.name} while it is {state}.")


# ----- what the API fills in ---------------------------------------------------------------


def fill_create_defaults(
    inst: InstanceMessage, name: str, project: str, region: str, now: timestamp_pb2.Timestamp
) -> None:
    """The output-only fields and the defaults CreateInstance sets on an instance it accepted."""
    inst.name = name
    inst.create_time.CopyFrom(now)
    inst.state = State.CREATING
    inst.status_message = ""
    inst.redis_version = inst.redis_version or DEFAULT_REDIS_VERSION
    inst.location_id = inst.location_id or f"{region}-b"
    inst.current_location_id = inst.location_id
    if inst.tier == Tier.STANDARD_HA and not inst.alternative_location_id:
        inst.alternative_location_id = f"{region}-c" if not inst.location_id.endswith("-c") else f"{region}-d"
    inst.authorized_network = inst.authorized_network or f"projects/{project}/global/networks/default"
    inst.connect_mode = inst.connect_mode or ConnectMode.DIRECT_PEERING
    inst.transit_encryption_mode = inst.transit_encryption_mode or TransitEncryptionMode.DISABLED
    inst.read_replicas_mode = inst.read_replicas_mode or ReadReplicasMode.READ_REPLICAS_DISABLED
    digest = hashlib.sha256(name.encode()).digest()
    inst.reserved_ip_range = inst.reserved_ip_range or f"10.{digest[0]}.{digest[1]}.{digest[2] & 0xF8}/29"
    inst.persistence_iam_identity = (
        f"serviceAccount:service-{int.from_bytes(digest[:4], 'big')}@cloud-redis.iam.gserviceaccount.com"
    )
    fill_nodes(inst)
    fill_persistence(inst, now)
    fill_maintenance(inst, now, None)


def fill_persistence(inst: InstanceMessage, now: timestamp_pb2.Timestamp) -> None:
    """The snapshot period and times of RDB persistence; none without it."""
    pc = inst.persistence_config
    if pc.persistence_mode == PersistenceMode.RDB:
        pc.rdb_snapshot_period = pc.rdb_snapshot_period or SnapshotPeriod.TWENTY_FOUR_HOURS
        if not pc.HasField("rdb_snapshot_start_time"):
            pc.rdb_snapshot_start_time.CopyFrom(now)
        nxt = timestamp_pb2.Timestamp(seconds=now.seconds + SNAPSHOT_SECONDS[pc.rdb_snapshot_period], nanos=now.nanos)
        pc.rdb_next_snapshot_time.CopyFrom(nxt)
    else:
        pc.persistence_mode = PersistenceMode.DISABLED
        pc.ClearField("rdb_snapshot_start_time")
        pc.ClearField("rdb_next_snapshot_time")


def fill_maintenance(inst: InstanceMessage, now: timestamp_pb2.Timestamp, previous: InstanceMessage | None) -> None:
    """The maintenance policy's times (its creation kept from `previous`) and the one-hour window length."""
    if not inst.HasField("maintenance_policy"):
        return
    mp = inst.maintenance_policy
    if previous is not None and previous.HasField("maintenance_policy"):
        mp.create_time.CopyFrom(previous.maintenance_policy.create_time)
    else:
        mp.create_time.CopyFrom(now)
    mp.update_time.CopyFrom(now)
    for window in mp.weekly_maintenance_window:
        window.duration.seconds = 3600


def fill_nodes(inst: InstanceMessage) -> None:
    """`nodes` as Memorystore lists them: node-0 in location_id, then one node per replica
    (STANDARD_HA: one; with read replicas: replica_count), alternating with alternative_location_id."""
    replicas = inst.replica_count if inst.tier == Tier.STANDARD_HA else 0
    if inst.tier == Tier.STANDARD_HA:
        replicas = max(replicas, 1)
    zones = (inst.location_id, inst.alternative_location_id or inst.location_id)
    del inst.nodes[:]
    for n in range(replicas + 1):
        inst.nodes.add(id=f"node-{n}", zone=zones[n % 2])


def set_current_zone(inst: InstanceMessage, primary: str) -> None:
    """currentLocationId is the zone of the node that is primary now."""
    for node in inst.nodes:
        if node.id == primary:
            inst.current_location_id = node.zone
            return
    inst.current_location_id = inst.location_id
