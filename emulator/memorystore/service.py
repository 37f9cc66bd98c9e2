"""The emulated Memorystore service: instance lifecycle and the redis-server behind each instance."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from redisguard.emulator import paging
from redisguard.emulator.errors import ApiError, already_exists, failed_precondition, invalid, not_found
from redisguard.emulator.memorystore import rules
from redisguard.emulator.memorystore.operations import OperationRecord, Operations, timestamp_now
from redisguard.emulator.memorystore.processes import RDB_FILE, ProcessError, RedisSpec, Supervisor
from redisguard.emulator.memorystore.store import (
    PRIMARY_NODE,
    InstanceMessage,
    InstancePb,
    InstanceRecord,
    PersistenceMode,
    ReadReplicasMode,
    State,
    Store,
    Tier,
    instance_name,
    new_auth_string,
    split_name,
)
from redisguard.emulator.settings import EmulatorSettings

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 1000
"""ListInstances' page size when none is given, and its largest."""
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


@dataclass
class MemorystoreService:
    """Everything the REST layer and the control endpoints call; thread-safe."""

    settings: EmulatorSettings
    store: Store = field(init=False)
    supervisor: Supervisor | None = field(init=False, default=None)
    operations: Operations = field(init=False, default_factory=Operations)
    on_change: Callable[[str], None] = lambda name: None
    """Called with an instance name after it appears, changes or goes away (the sampler samples it at once)."""
    _started: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.store = Store(self.settings.state_dir)
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
            if inst.state == State.DELETING:
                # A crash in the middle of a delete: finish it (a create in progress is started below).
                self._forget(record)
                continue
            if record.killed or inst.state == State.REPAIRING:
                # Its process had crashed: this start is the repair.
                self._drop_unpersisted_data(record)
            record.killed = False
            inst.state = State.READY
            inst.status_message = ""
            if self.supervisor is not None:
                try:
                    self._start_process(record)
                except ProcessError as exc:
                    inst.state = State.REPAIRING
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
        project, region, instance_id = split_name(name)
        return self.settings.state_dir / "instances" / project / region / instance_id

    def spec_for(self, record: InstanceRecord, port: int) -> RedisSpec:
        inst = record.instance
        configs = dict(inst.redis_configs)
        gb = float(configs.pop("maxmemory-gb", inst.memory_size_gb))
        settings = dict(DEFAULT_REDIS_SETTINGS)
        settings.update(configs)
        pc = inst.persistence_config
        save = ""
        if pc.persistence_mode == PersistenceMode.RDB:
            save = f"{rules.SNAPSHOT_SECONDS.get(pc.rdb_snapshot_period, 24 * 3600)} 1"
        return RedisSpec(
            port=port,
            data_dir=self.data_dir(record.name),
            password=record.auth_string if inst.auth_enabled else "",
            maxmemory=int(gb * self.settings.memory_scale),
            save=save,
            settings=settings,
        )

    def _start_process(self, record: InstanceRecord) -> None:
        assert self.supervisor is not None
        port = self.supervisor.pick_port(record.instance.port or None)
        self.supervisor.start(record.name, self.spec_for(record, port))
        self._set_endpoint(record.instance, port)

    def _set_endpoint(self, inst: InstanceMessage, port: int) -> None:
        inst.host = self.settings.host
        inst.port = port
        if inst.read_replicas_mode == ReadReplicasMode.READ_REPLICAS_ENABLED:
            # One process serves both endpoints: reads go to the primary.
            inst.read_endpoint = self.settings.host
            inst.read_endpoint_port = port
        else:
            inst.read_endpoint = ""
            inst.read_endpoint_port = 0

    def _drop_unpersisted_data(self, record: InstanceRecord) -> None:
        """Without RDB persistence, remove the instance's RDB file so that a repair starts it empty.

        In Memorystore an instance without persistence loses its data when its node fails.
        The emulator saves every instance when it stops gracefully (stopping the emulator is
        not a node failure), so that file is only for the next emulator start.
        """
        if record.instance.persistence_config.persistence_mode != PersistenceMode.RDB:
            (self.data_dir(record.name) / RDB_FILE).unlink(missing_ok=True)

    def _forget(self, record: InstanceRecord) -> None:
        self.store.remove(record.name)
        shutil.rmtree(self.data_dir(record.name), ignore_errors=True)

    def _record(self, name: str) -> InstanceRecord:
        record = self.store.get(name)
        if record is None:
            raise not_found(f"Resource '{name}' was not found")
        return record

    def _begin(self, name: str, busy_state: int, action: str) -> tuple[InstanceRecord, int]:
        """Move an instance from READY (or REPAIRING) to a busy state; FAILED_PRECONDITION otherwise."""
        with self.store.lock:
            record = self._record(name)
            allowed = (State.READY, State.REPAIRING) if busy_state == State.DELETING else (State.READY,)
            rules.require_state(record, *allowed, action=action)
            previous = record.instance.state
            record.instance.state = busy_state
            return record, previous

    def _copy(self, inst: InstanceMessage) -> InstanceMessage:
        out = InstancePb()
        out.CopyFrom(inst)
        return out

    # ----- API -------------------------------------------------------------------------

    def create(self, project: str, region: str, instance_id: str, inst: InstanceMessage) -> OperationRecord:
        rules.validate_parent(project, region)
        rules.validate_instance_id(instance_id)
        rules.validate_new_instance(inst, region)
        name = instance_name(project, region, instance_id)
        rules.fill_create_defaults(inst, name, project, region, timestamp_now())
        record = InstanceRecord(instance=inst, auth_string=new_auth_string() if inst.auth_enabled else "")
        with self.store.lock:
            if self.store.get(name) is not None:
                raise already_exists(f"Resource '{name}' already exists")
            self.store.put(record)
        op = self.operations.begin(name, "create")
        if self.supervisor is not None:
            try:
                self._start_process(record)
            except ProcessError as exc:
                log.error("create failed instance=%s: %s", name, exc)
                self._forget(record)
                return op.finish(error=ApiError("INTERNAL", f"Instance {name} could not be created."))
        else:
            self._set_endpoint(inst, NO_PROCESS_PORT)
        inst.state = State.READY
        self.store.put(record)
        self.on_change(name)
        log.info("instance created name=%s tier=%s memory_gb=%d", name, Tier.Name(inst.tier), inst.memory_size_gb)
        return op.finish(response=self._copy(inst))

    def get(self, name: str) -> InstanceMessage:
        with self.store.lock:
            return self._copy(self._record(name).instance)

    def list(
        self, project: str, region: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[InstanceMessage], str]:
        rules.validate_parent(project, region, allow_all_regions=True)
        page_size = paging.page_size(page_size, MAX_PAGE_SIZE)
        prefix = f"projects/{project}/locations/" + ("" if region == "-" else f"{region}/")
        with self.store.lock:
            matching = [self._copy(r.instance) for r in self.store.snapshot() if r.name.startswith(prefix)]
        try:
            (offset,) = paging.decode_token(page_token, 1)
        except ValueError as exc:
            raise invalid(f"Invalid page_token '{page_token}'.") from exc
        page = matching[offset : offset + page_size]
        next_token = paging.encode_token([offset + page_size]) if offset + page_size < len(matching) else ""
        return page, next_token

    def update(self, name: str, patch: InstanceMessage, mask_paths: Sequence[str]) -> OperationRecord:
        mask = rules.normalize_mask(mask_paths)
        record, previous_state = self._begin(name, State.UPDATING, "update")
        try:
            updated = rules.apply_update(record.instance, patch, mask)
            updated.state = State.READY
            now = timestamp_now()
            if "persistence_config" in mask:
                rules.fill_persistence(updated, now)
            if "maintenance_policy" in mask:
                rules.fill_maintenance(updated, now, record.instance)
            primary = record.primary_node
            if "read_replicas_mode" in mask or "replica_count" in mask:
                self._set_endpoint(updated, record.instance.port)
                rules.fill_nodes(updated)
                if primary not in {n.id for n in updated.nodes}:
                    # The primary's node was removed with its replica slot: node-0 takes over.
                    primary = PRIMARY_NODE
                rules.set_current_zone(updated, primary)
            auth_string = record.auth_string
            if updated.auth_enabled and not auth_string:
                auth_string = new_auth_string()
            candidate = InstanceRecord(
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
        return self.operations.begin(name, "update").finish(response=self._copy(updated))

    def upgrade(self, name: str, redis_version: str) -> OperationRecord:
        if redis_version not in rules.SUPPORTED_REDIS_VERSIONS:
            raise invalid(
                f"Invalid redis_version '{redis_version}'. Supported: {', '.join(rules.SUPPORTED_REDIS_VERSIONS)}."
            )
        record, previous_state = self._begin(name, State.UPDATING, "upgrade")
        order = rules.SUPPORTED_REDIS_VERSIONS.index
        if order(redis_version) <= order(record.instance.redis_version):
            record.instance.state = previous_state
            raise invalid(
                f"Cannot upgrade from {record.instance.redis_version} to {redis_version}: not a newer version."
            )
        with self.store.lock:
            record.instance.redis_version = redis_version
            record.instance.state = State.READY
            self.store.put(record)
        return self.operations.begin(name, "upgrade").finish(response=self._copy(record.instance))

    def failover(self, name: str) -> OperationRecord:
        """Promote the next node (node-1 after node-0, and round): the primary moves, the data stays.

        One redis-server serves every node of an instance, so no client loses its connection;
        what moves is what Memorystore shows: `currentLocationId` and Monitoring's `role` label.
        """
        with self.store.lock:
            record = self._record(name)
            if record.instance.tier != Tier.STANDARD_HA:
                raise failed_precondition(f"Failover is only possible on STANDARD_HA instances; {name} is BASIC.")
            rules.require_state(record, State.READY, action="fail over")
            nodes = record.node_ids()
            current = nodes.index(record.primary_node) if record.primary_node in nodes else 0
            record.primary_node = nodes[(current + 1) % len(nodes)]
            rules.set_current_zone(record.instance, record.primary_node)
            self.store.put(record)
        self.on_change(name)
        log.info("instance failed over name=%s primary=%s", name, record.primary_node)
        return self.operations.begin(name, "failover").finish(response=self._copy(record.instance))

    def delete(self, name: str) -> OperationRecord:
        record, _ = self._begin(name, State.DELETING, "delete")
        if self.supervisor is not None:
            self.supervisor.stop(name, save=False)
        self._forget(record)
        self.on_change(name)
        log.info("instance deleted name=%s", name)
        return self.operations.begin(name, "delete").finish()

    def auth_string(self, name: str) -> str:
        record = self._record(name)
        return record.auth_string if record.instance.auth_enabled else ""

    def get_operation(self, name: str) -> OperationRecord:
        return self.operations.get(name)

    # ----- control (fault injection) ---------------------------------------------------

    def find(self, region: str, instance_id: str, project: str | None = None) -> InstanceRecord:
        """The instance `instance_id` in `region`: in `project`, else the default project, else the only match."""
        if project:
            return self._record(instance_name(project, region, instance_id))
        default = self.store.get(instance_name(self.settings.project, region, instance_id))
        if default is not None:
            return default
        matches = [r for r in self.store.snapshot() if split_name(r.name)[1:] == (region, instance_id)]
        if len(matches) != 1:
            raise not_found(f"No single instance {instance_id} in {region} ({len(matches)} matches); pass ?project=...")
        return matches[0]

    def kill(self, record: InstanceRecord) -> bool:
        """Stop the instance's redis-server like a crash; the API then shows it REPAIRING."""
        killed = self.supervisor.kill(record.name) if self.supervisor is not None else False
        record.killed = True
        self._mark_repairing(record)
        self.on_change(record.name)
        return killed

    def _mark_repairing(self, record: InstanceRecord) -> None:
        with self.store.lock:
            record.instance.state = State.REPAIRING
            record.instance.status_message = "The Redis node is unavailable and is being repaired."
            self.store.put(record)

    def revive(self, record: InstanceRecord) -> None:
        """Start a killed instance's redis-server again (the repair finished): from its last RDB snapshot, or empty."""
        if self.supervisor is not None and not self._running(record.name):
            self.supervisor.forget(record.name)
            self._drop_unpersisted_data(record)
            self._start_process(record)
        with self.store.lock:
            record.killed = False
            record.instance.state = State.READY
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
            if record.instance.state == State.READY and not self._running(record.name):
                log.warning("redis-server of instance %s is not running", record.name)
                self._mark_repairing(record)
