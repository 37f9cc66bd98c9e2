"""The emulated Memorystore service: instance lifecycle, long-running operations, redis-server wiring."""

from __future__ import annotations

import base64
import hashlib
import logging
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.cloud.redis_v1.types import cloud_redis
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2, json_format, timestamp_pb2

from redisguard.emulator import state as st
from redisguard.emulator.errors import ApiError, already_exists, failed_precondition, invalid, not_found
from redisguard.emulator.processes import RDB_FILE, ProcessError, RedisSpec, Supervisor
from redisguard.emulator.settings import EmulatorSettings

log = logging.getLogger(__name__)

OperationMetadataPb = cloud_redis.OperationMetadata.pb()
MAX_OPERATIONS = 10_000
DEFAULT_PAGE_SIZE = 1000
NO_PROCESS_PORT = 6379

# What Memorystore runs with when redisConfigs does not say otherwise (note the eviction
# policy: Memorystore defaults to volatile-lru, redis itself to noeviction).
DEFAULT_REDIS_SETTINGS = {
    "maxmemory-policy": "volatile-lru",
    "notify-keyspace-events": "",
    "activedefrag": "no",
    "lfu-decay-time": "1",
    "lfu-log-factor": "10",
    "stream-node-max-bytes": "4096",
    "stream-node-max-entries": "100",
    "active-expire-effort": "1",
    "lazyfree-lazy-eviction": "no",
    "lazyfree-lazy-expire": "no",
    "lazyfree-lazy-user-del": "no",
    "lazyfree-lazy-user-flush": "no",
}


def _now_ts() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    # Millisecond precision, like the timestamps Google returns.
    ts.nanos -= ts.nanos % 1_000_000
    return ts


def _set_current_zone(inst: Any, primary: str) -> None:
    """currentLocationId is the zone of the node that is primary now."""
    for node in inst.nodes:
        if node.id == primary:
            inst.current_location_id = node.zone
            return
    inst.current_location_id = inst.location_id


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _decode_token(token: str) -> int:
    if not token:
        return 0
    try:
        kind, value = base64.urlsafe_b64decode(token.encode()).decode().split(":")
        if kind != "o" or int(value) < 0:
            raise ValueError
        return int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid(f"Invalid page_token '{token}'.") from exc


@dataclass
class OperationRecord:
    name: str
    metadata: Any
    response: Any = None
    error: ApiError | None = None

    def to_pb(self) -> operations_pb2.Operation:
        op = operations_pb2.Operation(name=self.name, done=True)
        op.metadata.Pack(self.metadata)
        if self.error is not None:
            op.error.code = self.error.code
            op.error.message = self.error.message
        else:
            op.response.Pack(self.response)
        return op

    def to_json(self, *, enums_as_ints: bool, done: bool = True) -> dict[str, Any]:
        op = self.to_pb()
        if not done:
            op.done = False
            op.ClearField("response")
            op.ClearField("error")
        out = json_format.MessageToDict(op, use_integers_for_enums=enums_as_ints)
        out["done"] = done  # Google spells out "done": false; proto JSON would omit it
        return out


@dataclass
class MemorystoreService:
    """Everything the REST layer and the control endpoints call; thread-safe."""

    settings: EmulatorSettings
    store: st.Store = field(init=False)
    supervisor: Supervisor | None = field(init=False, default=None)
    operations: OrderedDict[str, OperationRecord] = field(init=False, default_factory=OrderedDict)
    on_change: Callable[[str], None] = lambda name: None
    """Called with an instance name after it appears, changes or goes away (the sampler samples it at once)."""
    _ops_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _started: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.store = st.Store(self.settings.state_dir)
        if self.settings.processes:
            self.supervisor = Supervisor(self.settings.redis_server, self.settings.host)

    # ----- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Load the state dir and bring every stored instance back up."""
        self.store.load()
        # Only now is there a state to save at stop: a state file that failed to load must not
        # be overwritten (nor its error hidden by a failing flush).
        self._started = True
        self.store.start()
        for record in self.store.snapshot():
            inst = record.instance
            if inst.state == st.State.DELETING:
                # A crash in the middle of a delete: finish it (a create in progress is started below).
                self._forget(record)
                continue
            if record.killed or inst.state == st.State.REPAIRING:
                # Its process had crashed: this start is the repair.
                self._drop_unpersisted_data(record)
            record.killed = False
            inst.state = st.State.READY
            inst.status_message = ""
            if self.supervisor is not None:
                try:
                    self._start_process(record)
                except ProcessError as exc:
                    inst.state = st.State.REPAIRING
                    inst.status_message = "redis-server could not be started"
                    log.error("instance %s not started: %s", record.name, exc)
            # Loaded by now (the process answers PING only after loading): the snapshot of the
            # graceful stop served this restart and must not come back after a later crash.
            self._drop_unpersisted_data(record)
            self.store.put(record)

    def stop(self) -> None:
        """Save every instance's data (RDB) and stop all redis-server children."""
        if not self._started:
            return
        self._started = False
        if self.supervisor is not None:
            self.supervisor.stop_all(save=True)
        self.store.stop()

    # ----- helpers ---------------------------------------------------------------------

    def data_dir(self, name: str) -> Path:
        project, region, instance_id = st.split_name(name)
        return self.settings.state_dir / "instances" / project / region / instance_id

    def spec_for(self, record: st.InstanceRecord, port: int) -> RedisSpec:
        inst = record.instance
        configs = dict(inst.redis_configs)
        gb = float(configs.pop("maxmemory-gb", inst.memory_size_gb))
        settings = dict(DEFAULT_REDIS_SETTINGS)
        settings.update(configs)
        pc = inst.persistence_config
        save = ""
        if pc.persistence_mode == st.PersistenceMode.RDB:
            save = f"{st.SNAPSHOT_SECONDS.get(pc.rdb_snapshot_period, 24 * 3600)} 1"
        return RedisSpec(
            port=port,
            data_dir=self.data_dir(record.name),
            password=record.auth_string if inst.auth_enabled else "",
            maxmemory=int(gb * self.settings.memory_scale),
            save=save,
            settings=settings,
        )

    def _start_process(self, record: st.InstanceRecord) -> None:
        assert self.supervisor is not None
        port = self.supervisor.pick_port(record.instance.port or None)
        self.supervisor.start(record.name, self.spec_for(record, port))
        self._set_endpoint(record.instance, port)

    def _set_endpoint(self, inst: Any, port: int) -> None:
        inst.host = self.settings.host
        inst.port = port
        if inst.read_replicas_mode == st.ReadReplicasMode.READ_REPLICAS_ENABLED:
            # One process serves both endpoints: reads go to the primary.
            inst.read_endpoint = self.settings.host
            inst.read_endpoint_port = port
        else:
            inst.read_endpoint = ""
            inst.read_endpoint_port = 0

    def _drop_unpersisted_data(self, record: st.InstanceRecord) -> None:
        """Without RDB persistence, remove the instance's RDB file so that a repair starts it empty.

        In Memorystore an instance without persistence loses its data when its node fails.
        The emulator saves every instance when it stops gracefully (stopping the emulator is
        not a node failure), so that file is only for the next emulator start.
        """
        if record.instance.persistence_config.persistence_mode != st.PersistenceMode.RDB:
            (self.data_dir(record.name) / RDB_FILE).unlink(missing_ok=True)

    def _forget(self, record: st.InstanceRecord) -> None:
        self.store.remove(record.name)
        shutil.rmtree(self.data_dir(record.name), ignore_errors=True)

    def _new_operation(self, target: str, verb: str) -> OperationRecord:
        project, region, _ = st.split_name(target)
        op_id = f"operation-{int(time.time() * 1000)}-{uuid.uuid4().hex[:20]}"
        name = f"projects/{project}/locations/{region}/operations/{op_id}"
        meta = OperationMetadataPb(create_time=_now_ts(), target=target, verb=verb, api_version="v1")
        op = OperationRecord(name=name, metadata=meta)
        with self._ops_lock:
            self.operations[name] = op
            while len(self.operations) > MAX_OPERATIONS:
                self.operations.popitem(last=False)
        return op

    def _finish(self, op: OperationRecord, response: Any = None, error: ApiError | None = None) -> OperationRecord:
        op.metadata.end_time.CopyFrom(_now_ts())
        if error is not None:
            op.error = error
        else:
            op.response = response if response is not None else empty_pb2.Empty()
        return op

    def _record(self, name: str) -> st.InstanceRecord:
        record = self.store.get(name)
        if record is None:
            raise not_found(f"Resource '{name}' was not found")
        return record

    def _begin(self, name: str, busy_state: int, action: str) -> tuple[st.InstanceRecord, int]:
        """Move an instance from READY (or REPAIRING) to a busy state; FAILED_PRECONDITION otherwise."""
        with self.store.lock:
            record = self._record(name)
            allowed = (st.State.READY, st.State.REPAIRING) if busy_state == st.State.DELETING else (st.State.READY,)
            st.require_state(record, *allowed, action=action)
            previous = record.instance.state
            record.instance.state = busy_state
            return record, previous

    def _copy(self, inst: Any) -> Any:
        out = st.InstancePb()
        out.CopyFrom(inst)
        return out

    # ----- API -------------------------------------------------------------------------

    def create(self, project: str, region: str, instance_id: str, inst: Any) -> OperationRecord:
        st.validate_parent(project, region)
        st.validate_instance_id(instance_id)
        st.validate_new_instance(inst, region)
        name = st.instance_name(project, region, instance_id)
        self._fill_create_defaults(inst, name, project, region)
        record = st.InstanceRecord(instance=inst, auth_string=st.new_auth_string() if inst.auth_enabled else "")
        with self.store.lock:
            if self.store.get(name) is not None:
                raise already_exists(f"Resource '{name}' already exists")
            self.store.put(record)
        op = self._new_operation(name, "create")
        if self.supervisor is not None:
            try:
                self._start_process(record)
            except ProcessError as exc:
                log.error("create failed instance=%s: %s", name, exc)
                self._forget(record)
                return self._finish(op, error=ApiError("INTERNAL", f"Instance {name} could not be created."))
        else:
            self._set_endpoint(inst, NO_PROCESS_PORT)
        inst.state = st.State.READY
        self.store.put(record)
        self.on_change(name)
        log.info("instance created name=%s tier=%s memory_gb=%d", name, st.Tier.Name(inst.tier), inst.memory_size_gb)
        return self._finish(op, response=self._copy(inst))

    def _fill_create_defaults(self, inst: Any, name: str, project: str, region: str) -> None:
        now = _now_ts()
        inst.name = name
        inst.create_time.CopyFrom(now)
        inst.state = st.State.CREATING
        inst.status_message = ""
        inst.redis_version = inst.redis_version or st.DEFAULT_REDIS_VERSION
        inst.location_id = inst.location_id or f"{region}-b"
        inst.current_location_id = inst.location_id
        if inst.tier == st.Tier.STANDARD_HA and not inst.alternative_location_id:
            inst.alternative_location_id = f"{region}-c" if not inst.location_id.endswith("-c") else f"{region}-d"
        inst.authorized_network = inst.authorized_network or f"projects/{project}/global/networks/default"
        inst.connect_mode = inst.connect_mode or st.ConnectMode.DIRECT_PEERING
        inst.transit_encryption_mode = inst.transit_encryption_mode or st.TransitEncryptionMode.DISABLED
        inst.read_replicas_mode = inst.read_replicas_mode or st.ReadReplicasMode.READ_REPLICAS_DISABLED
        digest = hashlib.sha256(name.encode()).digest()
        inst.reserved_ip_range = inst.reserved_ip_range or f"10.{digest[0]}.{digest[1]}.{digest[2] & 0xF8}/29"
        inst.persistence_iam_identity = (
            f"serviceAccount:service-{int.from_bytes(digest[:4], 'big')}@cloud-redis.iam.gserviceaccount.com"
        )
        st.fill_nodes(inst)
        self._fill_persistence(inst, now)
        self._fill_maintenance(inst, now, None)

    def _fill_persistence(self, inst: Any, now: timestamp_pb2.Timestamp) -> None:
        pc = inst.persistence_config
        if pc.persistence_mode == st.PersistenceMode.RDB:
            pc.rdb_snapshot_period = pc.rdb_snapshot_period or st.SnapshotPeriod.TWENTY_FOUR_HOURS
            if not pc.HasField("rdb_snapshot_start_time"):
                pc.rdb_snapshot_start_time.CopyFrom(now)
            nxt = timestamp_pb2.Timestamp(
                seconds=now.seconds + st.SNAPSHOT_SECONDS[pc.rdb_snapshot_period], nanos=now.nanos
            )
            pc.rdb_next_snapshot_time.CopyFrom(nxt)
        else:
            pc.persistence_mode = st.PersistenceMode.DISABLED
            pc.ClearField("rdb_snapshot_start_time")
            pc.ClearField("rdb_next_snapshot_time")

    def _fill_maintenance(self, inst: Any, now: timestamp_pb2.Timestamp, previous: Any | None) -> None:
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

    def get(self, name: str) -> Any:
        with self.store.lock:
            return self._copy(self._record(name).instance)

    def list(self, project: str, region: str, page_size: int = 0, page_token: str = "") -> tuple[list[Any], str]:
        st.validate_parent(project, region, allow_all_regions=True)
        if page_size < 0:
            raise invalid("page_size must not be negative.")
        page_size = min(page_size or DEFAULT_PAGE_SIZE, DEFAULT_PAGE_SIZE)
        prefix = f"projects/{project}/locations/" + ("" if region == "-" else f"{region}/")
        with self.store.lock:
            matching = [self._copy(r.instance) for r in self.store.snapshot() if r.name.startswith(prefix)]
        offset = _decode_token(page_token)
        page = matching[offset : offset + page_size]
        next_token = _encode_token(offset + page_size) if offset + page_size < len(matching) else ""
        return page, next_token

    def update(self, name: str, patch: Any, mask_paths: Sequence[str]) -> OperationRecord:
        mask = st.normalize_mask(mask_paths)
        record, previous_state = self._begin(name, st.State.UPDATING, "update")
        try:
            updated = st.apply_update(record.instance, patch, mask)
            updated.state = st.State.READY
            now = _now_ts()
            if "persistence_config" in mask:
                self._fill_persistence(updated, now)
            if "maintenance_policy" in mask:
                self._fill_maintenance(updated, now, record.instance)
            primary = record.primary_node
            if "read_replicas_mode" in mask or "replica_count" in mask:
                self._set_endpoint(updated, record.instance.port)
                st.fill_nodes(updated)
                if primary not in {n.id for n in updated.nodes}:
                    # The primary's node was removed with its replica slot: node-0 takes over.
                    primary = st.PRIMARY_NODE
                _set_current_zone(updated, primary)
            auth_string = record.auth_string
            if updated.auth_enabled and not auth_string:
                auth_string = st.new_auth_string()
            candidate = st.InstanceRecord(
                instance=updated, auth_string=auth_string, killed=record.killed, primary_node=primary
            )
            if self.supervisor is not None:
                try:
                    self.supervisor.reconfigure(name, self.spec_for(candidate, record.instance.port))
                except ProcessError as exc:
                    raise ApiError("INTERNAL", f"Instance {name} could not be reconfigured.") from exc
        except BaseException:
            record.instance.state = previous_state
            raise
        with self.store.lock:
            record.instance = updated
            record.auth_string = auth_string
            record.primary_node = primary
            self.store.put(record)
        self.on_change(name)
        log.info("instance updated name=%s fields=%s", name, ",".join(mask))
        op = self._new_operation(name, "update")
        return self._finish(op, response=self._copy(updated))

    def upgrade(self, name: str, redis_version: str) -> OperationRecord:
        if redis_version not in st.SUPPORTED_REDIS_VERSIONS:
            raise invalid(
                f"Invalid redis_version '{redis_version}'. Supported: {', '.join(st.SUPPORTED_REDIS_VERSIONS)}."
            )
        record, previous_state = self._begin(name, st.State.UPDATING, "upgrade")
        order = st.SUPPORTED_REDIS_VERSIONS.index
        if order(redis_version) <= order(record.instance.redis_version):
            record.instance.state = previous_state
            raise invalid(
                f"Cannot upgrade from {record.instance.redis_version} to {redis_version}: not a newer version."
            )
        with self.store.lock:
            record.instance.redis_version = redis_version
            record.instance.state = st.State.READY
            self.store.put(record)
        op = self._new_operation(name, "upgrade")
        return self._finish(op, response=self._copy(record.instance))

    def failover(self, name: str) -> OperationRecord:
        """Promote the next node (node-1 after node-0, and round): the primary moves, the data stays.

        One redis-server serves every node of an instance, so no client loses its connection;
        what moves is what Memorystore shows: `currentLocationId` and Monitoring's `role` label.
        """
        with self.store.lock:
            record = self._record(name)
            if record.instance.tier != st.Tier.STANDARD_HA:
                raise failed_precondition(f"Failover is only possible on STANDARD_HA instances; {name} is BASIC.")
            st.require_state(record, st.State.READY, action="fail over")
            nodes = record.node_ids()
            current = nodes.index(record.primary_node) if record.primary_node in nodes else 0
            record.primary_node = nodes[(current + 1) % len(nodes)]
            _set_current_zone(record.instance, record.primary_node)
            self.store.put(record)
        self.on_change(name)
        log.info("instance failed over name=%s primary=%s", name, record.primary_node)
        op = self._new_operation(name, "failover")
        return self._finish(op, response=self._copy(record.instance))

    def delete(self, name: str) -> OperationRecord:
        record, _ = self._begin(name, st.State.DELETING, "delete")
        if self.supervisor is not None:
            self.supervisor.stop(name, save=False)
        self._forget(record)
        self.on_change(name)
        log.info("instance deleted name=%s", name)
        op = self._new_operation(name, "delete")
        return self._finish(op)

    def auth_string(self, name: str) -> str:
        record = self._record(name)
        return record.auth_string if record.instance.auth_enabled else ""

    def get_operation(self, name: str) -> OperationRecord:
        with self._ops_lock:
            op = self.operations.get(name)
        if op is None:
            raise not_found(f"Resource '{name}' was not found")
        return op

    # ----- control (fault injection) ---------------------------------------------------

    def find(self, region: str, instance_id: str, project: str | None = None) -> st.InstanceRecord:
        """The instance `instance_id` in `region`: in `project`, else the default project, else the only match."""
        if project:
            return self._record(st.instance_name(project, region, instance_id))
        default = self.store.get(st.instance_name(self.settings.project, region, instance_id))
        if default is not None:
            return default
        matches = [r for r in self.store.snapshot() if st.split_name(r.name)[1:] == (region, instance_id)]
        if len(matches) != 1:
            raise not_found(f"No single instance {instance_id} in {region} ({len(matches)} matches); pass ?project=...")
        return matches[0]

    def kill(self, record: st.InstanceRecord) -> bool:
        """Stop the instance's redis-server like a crash; the API then shows it REPAIRING."""
        killed = self.supervisor.kill(record.name) if self.supervisor is not None else False
        record.killed = True
        self._mark_repairing(record)
        self.on_change(record.name)
        return killed

    def _mark_repairing(self, record: st.InstanceRecord) -> None:
        with self.store.lock:
            record.instance.state = st.State.REPAIRING
            record.instance.status_message = "The Redis node is unavailable and is being repaired."
            self.store.put(record)

    def revive(self, record: st.InstanceRecord) -> None:
        """Start a killed instance's redis-server again (the repair finished): from its last RDB snapshot, or empty."""
        if self.supervisor is not None and not self._running(record.name):
            self.supervisor.forget(record.name)
            self._drop_unpersisted_data(record)
            self._start_process(record)
        with self.store.lock:
            record.killed = False
            record.instance.state = st.State.READY
            record.instance.status_message = ""
            self.store.put(record)
        self.on_change(record.name)

    def _running(self, name: str) -> bool:
        proc = self.supervisor.get(name) if self.supervisor is not None else None
        return proc is not None and proc.running()

    def check_processes(self) -> None:
        """Mark instances whose redis-server died on its own as REPAIRING."""
        if self.supervisor is None:
            return
        for record in self.store.snapshot():
            if record.instance.state == st.State.READY and not self._running(record.name):
                log.warning("redis-server of instance %s is not running", record.name)
                self._mark_repairing(record)
