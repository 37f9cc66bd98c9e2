"""Instance records of the emulated Memorystore API and the state file that keeps them across restarts."""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from google.cloud.redis_v1.types import cloud_redis
from google.protobuf import json_format

from redisguard.core.errors import ConfigError

log = logging.getLogger(__name__)

InstancePb = cloud_redis.Instance.pb()
InstanceMessage: TypeAlias = Any
"""An instance as the emulator holds it: a message of `InstancePb`, the protobuf class of the API's own
`redis_v1.Instance` (the wire form, which the REST layer parses and prints with json_format). proto-plus
builds that class when it is imported, so a type checker cannot see its fields: this alias names what a
value is where the checker can only take Any."""
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


def instance_name(project: str, region: str, instance_id: str) -> str:
    return f"projects/{project}/locations/{region}/instances/{instance_id}"


def split_name(name: str) -> tuple[str, str, str]:
    """(project, region, instance_id) of projects/P/locations/R/instances/I."""
    parts = name.split("/")
    return parts[1], parts[3], parts[5]


def new_auth_string() -> str:
    """An AUTH string in the shape Memorystore generates (a UUID)."""
    return str(uuid.uuid4())


def instance_to_dict(inst: InstanceMessage, *, enums_as_ints: bool = False) -> dict[str, Any]:
    return json_format.MessageToDict(inst, use_integers_for_enums=enums_as_ints)


def instance_from_dict(data: dict[str, Any]) -> InstanceMessage:
    inst = InstancePb()
    json_format.ParseDict(data, inst, ignore_unknown_fields=True)
    return inst


@dataclass
class InstanceRecord:
    """One emulated instance: its public resource and what the API never shows."""

    instance: InstanceMessage
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
