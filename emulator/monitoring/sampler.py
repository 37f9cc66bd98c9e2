"""Samples each instance's INFO on a short interval into a bounded history per instance."""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import itertools
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import redis

from redisguard.emulator.memorystore.processes import connect
from redisguard.emulator.memorystore.service import MemorystoreService
from redisguard.emulator.memorystore.store import PRIMARY_NODE, InstanceRecord, State

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of an instance; counters are cumulative as redis reports them."""

    time: float
    """Unix seconds."""
    used_memory: int
    used_memory_rss: int
    """RSS minus the empty process's own overhead (RedisProcess.rss_overhead), bytes."""
    maxmemory: int
    capacity: int
    """memorySizeGb times the memory scale: the node's memory in the emulator, bytes."""
    connected_clients: int
    blocked_clients: int
    evicted_keys: int
    expired_keys: int
    keyspace_hits: int
    keyspace_misses: int
    connections_received: int
    commands_processed: int
    uptime: int
    keys: int
    nodes: tuple[str, ...] = (PRIMARY_NODE,)
    """The instance's node ids when the sample was taken (node-0, node-1, ...)."""
    primary_node: str = PRIMARY_NODE
    """The node that was primary then: its series carry role=primary, the others role=replica."""
    replica_readings: tuple[tuple[str, Sample], ...] = ()
    """--no-processes: each replica node's own synthetic reading (with processes a replica trails the primary)."""


def sample_time(sample: Sample) -> float:
    """The key that keeps a history in time order (bisect)."""
    return sample.time


def _keys(info: dict[str, Any]) -> int:
    return sum(v.get("keys", 0) for k, v in info.items() if k.startswith("db") and isinstance(v, dict))


class Sampler:
    """Keeps `history` samples per instance, taken every `interval` seconds.

    Clients are cached per instance and rebuilt when the port or AUTH string changes.
    The sampler's own connection is not counted in connected_clients.
    """

    def __init__(self, service: MemorystoreService, interval: float, history: int) -> None:
        self.service = service
        self.interval = interval
        self.history = history
        self._histories: dict[str, deque[Sample]] = {}
        self._clients: dict[str, tuple[tuple[int, str], redis.Redis]] = {}
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)

    def start(self) -> None:
        self.tick()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for _, client in self._clients.values():
            client.close()

    def poke(self, name: str) -> None:
        """Sample instance `name` now (it was created or changed), without waiting for the next round."""
        with self._lock:
            self._pending.add(name)
        self._wake.set()

    def _loop(self) -> None:
        next_round = time.monotonic() + self.interval
        while not self._stopping.is_set():
            self._wake.wait(max(0.0, next_round - time.monotonic()))
            self._wake.clear()
            if self._stopping.is_set():
                return
            with self._lock:
                pending, self._pending = self._pending, set()
            try:
                if time.monotonic() >= next_round:
                    next_round = time.monotonic() + self.interval
                    self.tick()
                elif pending:
                    self.tick(only=pending)
            except Exception:
                log.exception("sampling failed")

    def tick(self, only: set[str] | None = None) -> None:
        """One round over every instance, or over the instances named in `only`."""
        if only is None:
            self.service.check_processes()
        records = self.service.store.snapshot()
        names = {r.name for r in records}
        for record in records:
            if only is not None and record.name not in only:
                continue
            if record.instance.state not in (State.READY, State.UPDATING):
                continue
            nodes = record.node_ids()
            if self.service.supervisor:
                sample = self._sample_process(record)
                replicas: tuple[tuple[str, Sample], ...] = ()
            else:
                sample = self._synthetic(record, record.primary_node)
                replicas = tuple((n, self._synthetic(record, n)) for n in nodes if n != record.primary_node)
            if sample is not None:
                sample = dataclasses.replace(
                    sample, nodes=nodes, primary_node=record.primary_node, replica_readings=replicas
                )
                with self._lock:
                    self._histories.setdefault(record.name, deque(maxlen=self.history)).append(sample)
        with self._lock:
            # Deleted instances disappear from Monitoring (history and client).
            for name in [n for n in self._histories if n not in names]:
                del self._histories[name]
        for name in [n for n in self._clients if n not in names]:
            self._clients.pop(name)[1].close()

    def samples(self, since: float = 0.0) -> dict[str, list[Sample]]:
        """Every instance's samples from the one before `since` on, oldest first (a copy)."""
        with self._lock:
            out = {}
            for name, history in self._histories.items():
                # One sample before `since` too: a DELTA point needs its predecessor.
                first = max(0, bisect.bisect_left(history, since, key=sample_time) - 1)
                out[name] = list(itertools.islice(history, first, None))
            return out

    def _client(self, name: str, port: int, password: str) -> redis.Redis:
        key = (port, password)
        cached = self._clients.get(name)
        if cached and cached[0] == key:
            return cached[1]
        if cached:
            cached[1].close()
        client = connect(self.service.settings.host, port, password, timeout=1.0)
        self._clients[name] = (key, client)
        return client

    def _sample_process(self, record: InstanceRecord) -> Sample | None:
        assert self.service.supervisor is not None
        proc = self.service.supervisor.get(record.name)
        if proc is None or not proc.running():
            return None
        client = self._client(record.name, proc.port, proc.spec.password)
        try:
            # The default sections hold every field sampled; "all" adds per-command stats for nothing.
            info = client.info()
        except redis.RedisError as exc:
            log.debug("INFO failed instance=%s error=%s", record.name, exc)
            return None
        used = int(info["used_memory"])
        rss = int(info["used_memory_rss"])
        # The RSS an empty redis-server needs anyway is left out, so that
        # system_memory_usage_ratio reflects the data, not the scaled-down node size.
        overhead = proc.rss_overhead
        return Sample(
            time=time.time(),
            used_memory=used,
            used_memory_rss=max(0, rss - overhead),
            maxmemory=int(info["maxmemory"]),
            capacity=record.instance.memory_size_gb * self.service.settings.memory_scale,
            connected_clients=max(0, int(info["connected_clients"]) - 1),
            blocked_clients=int(info.get("blocked_clients", 0)),
            evicted_keys=int(info.get("evicted_keys", 0)),
            expired_keys=int(info.get("expired_keys", 0)),
            keyspace_hits=int(info.get("keyspace_hits", 0)),
            keyspace_misses=int(info.get("keyspace_misses", 0)),
            connections_received=int(info.get("total_connections_received", 0)),
            commands_processed=int(info.get("total_commands_processed", 0)),
            uptime=int(info.get("uptime_in_seconds", 0)),
            keys=_keys(info),
        )

    def _synthetic(self, record: InstanceRecord, node: str) -> Sample:
        """--no-processes: a stable, node-specific usage between 15% and 75% with a slow wave."""
        inst = record.instance
        scale = self.service.settings.memory_scale
        capacity = inst.memory_size_gb * scale
        maxmemory = int(float(inst.redis_configs.get("maxmemory-gb", inst.memory_size_gb)) * scale)
        # Each node has its own figures: after a failover the instance shows the new primary's.
        key = record.name if node == PRIMARY_NODE else f"{record.name}/{node}"
        seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big")
        now = time.time()
        ratio = 0.15 + 0.6 * (seed % 1000) / 1000 + 0.02 * math.sin(now / 60 + seed)
        used = int(maxmemory * ratio)
        return Sample(
            time=now,
            used_memory=used,
            used_memory_rss=int(used * 1.1),
            maxmemory=maxmemory,
            capacity=capacity,
            connected_clients=seed % 7,
            blocked_clients=0,
            evicted_keys=0,
            expired_keys=0,
            keyspace_hits=0,
            keyspace_misses=0,
            connections_received=seed % 7,
            commands_processed=0,
            uptime=int(now - inst.create_time.seconds),
            keys=seed % 10_000,
        )
