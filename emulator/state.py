"""Instance records of the emulated Memorystore API: validation as the real API does it, and the state file."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.cloud.redis_v1.types import cloud_redis
from google.protobuf import json_format

from redisguard.core.errors import ConfigError
from redisguard.emulator.errors import failed_precondition, invalid

log = logging.getLogger(__name__)

InstancePb = cloud_redis.Instance.pb()
Tier = InstancePb.Tier
State = InstancePb.State
ConnectMode = InstancePb.ConnectMode
TransitEncryptionMode = InstancePb.TransitEncryptionMode
ReadReplicasMode = InstancePb.ReadReplicasMode
PersistenceMode = cloud_redis.PersistenceConfig.pb().PersistenceMode
SnapshotPeriod = cloud_redis.PersistenceConfig.pb().SnapshotPeriod

STATE_FILE = "state.json"
# Memorystore names an instance's nodes node-0, node-1, ...; node-0 is the first primary.
PRIMARY_NODE = "node-0"
STATE_VERSION = 1

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


def camel_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def instance_name(project: str, region: str, instance_id: str) -> str:
    return f"projects/{project}/locations/{region}/instances/{instance_id}"


def split_name(name: str) -> tuple[str, str, str]:
    """(project, region, instance_id) of projects/P/locations/R/instances/I."""
    parts = name.split("/")
    return parts[1], parts[3], parts[5]


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


def _check_memory(inst: Any) -> None:
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


def _check_replicas(inst: Any) -> None:
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


def _check_persistence(inst: Any) -> None:
    pc = inst.persistence_config
    if pc.persistence_mode == PersistenceMode.DISABLED and pc.rdb_snapshot_period:
        raise invalid("persistence_config.rdb_snapshot_period requires persistence_mode RDB.")


def _check_maintenance(inst: Any) -> None:
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


def _check_common(inst: Any) -> None:
    """The checks shared by create and update."""
    _check_labels(dict(inst.labels))
    _check_replicas(inst)
    _check_memory(inst)
    _check_redis_configs(dict(inst.redis_configs), inst.memory_size_gb)
    _check_persistence(inst)
    _check_maintenance(inst)
    if inst.display_name and len(inst.display_name) > 80:
        raise invalid("Field 'instance.display_name' is limited to 80 characters.")


def validate_new_instance(inst: Any, region: str) -> None:
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


def normalize_mask(paths: Sequence[str]) -> list[str]:
    """updateMask paths as snake_case top-level fields; INVALID_ARGUMENT for anything not updatable."""
    if not paths:
        raise invalid("Request is missing required field update_mask.")
    fields = []
    for path in paths:
        name = camel_to_snake(path.strip())
        if name not in UPDATABLE_FIELDS:
            raise invalid(
                f"Field '{name}' cannot be updated (immutable or unknown). "
                f"Updatable fields: {', '.join(UPDATABLE_FIELDS)}."
            )
        fields.append(name)
    return fields


def apply_update(current: Any, patch: Any, mask: list[str]) -> Any:
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


def fill_nodes(inst: Any) -> None:
    """`nodes` as Memorystore lists them: node-0 in location_id, then one node per replica
    (STANDARD_HA: one; with read replicas: replica_count), alternating with alternative_location_id."""
    replicas = inst.replica_count if inst.tier == Tier.STANDARD_HA else 0
    if inst.tier == Tier.STANDARD_HA:
        replicas = max(replicas, 1)
    zones = (inst.location_id, inst.alternative_location_id or inst.location_id)
    del inst.nodes[:]
    for n in range(replicas + 1):
        inst.nodes.add(id=f"node-{n}", zone=zones[n % 2])


def new_auth_string() -> str:
    """An AUTH string in the shape Memorystore generates (a UUID)."""
    return str(uuid.uuid4())


def instance_to_dict(inst: Any, *, enums_as_ints: bool = False) -> dict[str, Any]:
    return json_format.MessageToDict(inst, use_integers_for_enums=enums_as_ints)


def instance_from_dict(data: dict[str, Any]) -> Any:
    inst = InstancePb()
    json_format.ParseDict(data, inst, ignore_unknown_fields=True)
    return inst


def instance_from_json_body(body: bytes) -> Any:
    """Parse a request body into an Instance; unknown fields and bad enums are INVALID_ARGUMENT."""
    inst = InstancePb()
    try:
        json_format.Parse(body or b"{}", inst)
    except json_format.ParseError as exc:
        raise invalid(f"Invalid JSON payload received. {exc}") from exc
    return inst


@dataclass
class InstanceRecord:
    """One emulated instance: its public resource and what the API never shows."""

    instance: Any
    auth_string: str = ""
    # Set when the instance's redis-server was stopped through the fault endpoint.
    killed: bool = False
    # The node that serves as primary (Monitoring's role label); a failover moves it.
    primary_node: str = PRIMARY_NODE

    @property
    def name(self) -> str:
        return self.instance.name

    def node_ids(self) -> tuple[str, ...]:
        return tuple(n.id for n in self.instance.nodes) or (PRIMARY_NODE,)

    def to_json(self) -> dict[str, Any]:
        return {
            "instance": instance_to_dict(self.instance),
            "authString": self.auth_string,
            "killed": self.killed,
            "primaryNode": self.primary_node,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstanceRecord:
        return cls(
            instance=instance_from_dict(data["instance"]),
            auth_string=data.get("authString", ""),
            killed=bool(data.get("killed", False)),
            primary_node=data.get("primaryNode", PRIMARY_NODE),
        )


@dataclass
class Store:
    """All instance records, guarded by one lock and saved as JSON in the state directory.

    Saving is debounced by a background thread (`flush_interval`): a create of 1000
    instances would otherwise rewrite the file 1000 times. `flush()` writes at once; the
    server calls it on shutdown.
    """

    state_dir: Path
    flush_interval: float = 0.2
    lock: threading.RLock = field(default_factory=threading.RLock)
    records: dict[str, InstanceRecord] = field(default_factory=dict)
    _dirty: threading.Event = field(default_factory=threading.Event)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def path(self) -> Path:
        return self.state_dir / STATE_FILE

    def load(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text())
            records = [InstanceRecord.from_json(item) for item in data.get("instances", [])]
        except (ValueError, KeyError, json_format.ParseError) as exc:
            raise ConfigError(f"{self.path}: unreadable emulator state ({exc}); move it away to start empty") from exc
        with self.lock:
            self.records = {r.name: r for r in records}
        log.info("state loaded path=%s instances=%d", self.path, len(records))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._flush_loop, name="state-flush", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._dirty.set()
        if self._thread:
            self._thread.join(timeout=5)
        self.flush()

    def mark_dirty(self) -> None:
        self._dirty.set()

    def _flush_loop(self) -> None:
        while not self._stopping.is_set():
            self._dirty.wait()
            if self._stopping.is_set():
                return
            self._stopping.wait(self.flush_interval)
            self._dirty.clear()
            try:
                self.flush()
            except OSError:
                log.exception("could not write emulator state path=%s", self.path)

    def flush(self) -> None:
        with self.lock:
            payload = {"version": STATE_VERSION, "instances": [r.to_json() for r in self.records.values()]}
        tmp = self.path.with_suffix(".tmp")
        # The file holds AUTH strings: readable by the owner only.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def get(self, name: str) -> InstanceRecord | None:
        with self.lock:
            return self.records.get(name)

    def put(self, record: InstanceRecord) -> None:
        with self.lock:
            self.records[record.name] = record
        self.mark_dirty()

    def remove(self, name: str) -> InstanceRecord | None:
        with self.lock:
            record = self.records.pop(name, None)
        self.mark_dirty()
        return record

    def snapshot(self) -> list[InstanceRecord]:
        """The records sorted by name (a copy of the list; records are shared)."""
        with self.lock:
            return [self.records[name] for name in sorted(self.records)]

    def __iter__(self) -> Iterator[InstanceRecord]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self.lock:
            return len(self.records)


def require_state(record: InstanceRecord, *allowed: int, action: str) -> None:
    """FAILED_PRECONDITION unless the instance is in one of the allowed states."""
    if record.instance.state not in allowed:
        state = State.Name(record.instance.state)
        raise failed_precondition(f"Cannot {action} instance {record.name} while it is {state}.")
