"""Supervisor of the redis-server child processes that back emulated instances."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redisguard.core.processes import die_with_parent_argv

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 10.0
RDB_FILE = "dump.rdb"
"""The instance's RDB snapshot, in its data dir."""
STOP_TIMEOUT_SECONDS = 10.0
# Settings a redis-server build may lack (activedefrag needs Redis's own jemalloc; Debian's
# build refuses it). They are applied after start and a refusal is logged, not fatal: the
# API still records them.
BEST_EFFORT_SETTINGS = frozenset({"activedefrag"})
# How redis-server words a refusal that is its build's limit, not a bad value: a documented limit
# of the emulator (docs/emulator.md), said once at INFO; any other refusal is a warning.
BUILD_LIMITS = ("compiled with a modified Jemalloc",)


class ProcessError(Exception):
    """A redis-server could not be started or reconfigured."""


@dataclass(frozen=True)
class RedisSpec:
    """How one redis-server must run; derived from the instance resource."""

    port: int
    data_dir: Path
    password: str
    """AUTH string, empty when AUTH is off."""
    maxmemory: int
    """Bytes: memorySizeGb (or maxmemory-gb) times the emulator's memory scale."""
    save: str
    """The redis `save` setting: "" (no snapshots) or "SECONDS CHANGES"."""
    settings: dict[str, str] = field(default_factory=dict)
    """Other redis settings applied with CONFIG SET (maxmemory-policy, activedefrag, ...)."""

    def config_values(self) -> dict[str, str]:
        values = {"maxmemory": str(self.maxmemory), "save": self.save, "requirepass": self.password}
        values.update(self.settings)
        return values


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(spec: RedisSpec, host: str) -> Path:
    """redis.conf in the instance's data dir, readable by the owner only (it holds the AUTH string)."""
    # The data dir holds the RDB file (instance data): owner only.
    spec.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    lines = [
        f"bind {host}",
        f"port {spec.port}",
        "daemonize no",
        "appendonly no",
        f"dir {_quote(str(spec.data_dir))}",
        f"dbfilename {RDB_FILE}",
        f"logfile {_quote(str(spec.data_dir / 'redis.log'))}",
        # Listing every config key keeps the child's view independent of its build defaults.
        *(f"{key} {_quote(value)}" for key, value in spec.config_values().items() if key not in BEST_EFFORT_SETTINGS),
    ]
    path = spec.data_dir / "redis.conf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now (a listener there, not TIME_WAIT, makes it busy)."""
    with socket.socket() as s:
        # As redis-server and the API servers bind: connections left in TIME_WAIT by the
        # previous run must not count as "in use".
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class RedisProcess:
    key: str
    spec: RedisSpec
    popen: subprocess.Popen
    host: str
    rss_overhead: int = 0
    """RSS beyond used_memory of the freshly started, empty server (allocator, code, buffers)."""

    @property
    def port(self) -> int:
        return self.spec.port

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def client(self, timeout: float = 2.0) -> redis.Redis:
        return connect(self.host, self.spec.port, self.spec.password, timeout)


def connect(host: str, port: int, password: str | None = None, timeout: float = 2.0) -> redis.Redis:
    """A client without redis-py's default retries: a dead instance must fail fast, not stall a thread."""
    return redis.Redis(
        host=host,
        port=port,
        password=password or None,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


class Supervisor:
    """Starts, reconfigures and stops redis-server children; none outlives the emulator.

    Children are spawned from one long-lived thread: PR_SET_PDEATHSIG fires when the
    *thread* that forked the child exits, so spawning from short-lived HTTP handler
    threads would kill instances at the end of each request.
    """

    def __init__(self, binary: str = "redis-server", host: str = "127.0.0.1") -> None:
        self.binary = binary
        self.host = host
        self._procs: dict[str, RedisProcess] = {}
        self._lock = threading.Lock()
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="redis-spawner")
        # Settings this redis-server build refused once: it refuses them for every instance.
        self._refused: set[tuple[str, str]] = set()

    def get(self, key: str) -> RedisProcess | None:
        with self._lock:
            return self._procs.get(key)

    def all(self) -> list[RedisProcess]:
        with self._lock:
            return list(self._procs.values())

    def pick_port(self, preferred: int | None) -> int:
        if preferred and port_is_free(self.host, preferred):
            return preferred
        return free_port(self.host)

    def start(self, key: str, spec: RedisSpec) -> RedisProcess:
        """Start redis-server for `key` and wait until it answers PING."""
        conf = write_config(spec, self.host)
        out = open(spec.data_dir / "redis-server.out", "ab")  # noqa: SIM115 - handed to the child
        try:
            popen = self._spawner.submit(
                subprocess.Popen,
                die_with_parent_argv([self.binary, str(conf)]),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Own process group: a Ctrl-C on the emulator's terminal must not reach the
                # children before the emulator has saved and stopped them in order.
                process_group=0,
            ).result()
        except OSError as exc:
            raise ProcessError(f"cannot run {self.binary}: {exc}") from exc
        finally:
            out.close()
        proc = RedisProcess(key=key, spec=spec, popen=popen, host=self.host)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        client = proc.client(timeout=0.5)
        try:
            while True:
                if popen.poll() is not None:
                    raise ProcessError(f"redis-server for {key} exited with {popen.returncode}: {_log_tail(spec)}")
                try:
                    if client.ping():
                        memory = client.info("memory")
                        proc.rss_overhead = max(0, int(memory["used_memory_rss"]) - int(memory["used_memory"]))
                        break
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    popen.kill()
                    popen.wait()
                    raise ProcessError(f"redis-server for {key} did not answer within {START_TIMEOUT_SECONDS}s")
                time.sleep(0.01)
        finally:
            client.close()
        self._apply_best_effort(proc, spec.config_values())
        with self._lock:
            self._procs[key] = proc
        log.info("redis-server started instance=%s pid=%d port=%d", key, popen.pid, spec.port)
        return proc

    def _apply_best_effort(self, proc: RedisProcess, values: dict[str, str]) -> None:
        client = proc.client()
        try:
            for k in BEST_EFFORT_SETTINGS & values.keys():
                try:
                    client.config_set(k, values[k])
                except redis.ResponseError as exc:
                    first = (k, values[k]) not in self._refused
                    self._refused.add((k, values[k]))
                    level = logging.INFO if any(limit in str(exc) for limit in BUILD_LIMITS) else logging.WARNING
                    log.log(
                        level if first else logging.DEBUG,
                        "redis-server cannot apply setting=%s value=%s instance=%s (the API still shows it): %s",
                        k,
                        values[k],
                        proc.key,
                        exc,
                    )
        finally:
            client.close()

    def reconfigure(self, key: str, spec: RedisSpec) -> None:
        """Apply the settings of `spec` that differ from the running process (CONFIG SET)."""
        proc = self.get(key)
        if proc is None or not proc.running():
            # Not running (killed): the new settings apply at the next start.
            if proc is not None:
                proc.spec = spec
            return
        old = proc.spec.config_values()
        changed = {k: v for k, v in spec.config_values().items() if old.get(k) != v}
        if not changed:
            return
        best_effort = {k: changed.pop(k) for k in BEST_EFFORT_SETTINGS & changed.keys()}
        client = proc.client()
        try:
            # requirepass last, so the other settings go through the current password.
            for k in sorted(changed, key=lambda k: k == "requirepass"):
                client.config_set(k, changed[k])
        except redis.RedisError as exc:
            raise ProcessError(f"redis-server for {key} rejected the new settings: {exc}") from exc
        finally:
            client.close()
        proc.spec = spec
        self._apply_best_effort(proc, best_effort)
        write_config(spec, self.host)
        log.info("redis-server reconfigured instance=%s settings=%s", key, ",".join(sorted(changed)))

    def stop(self, key: str, *, save: bool) -> None:
        """Stop the process for `key` (saving an RDB snapshot first if `save`)."""
        with self._lock:
            proc = self._procs.pop(key, None)
        if proc is None or not proc.running():
            return
        saved = False
        if save:
            client = proc.client(timeout=STOP_TIMEOUT_SECONDS)
            try:
                saved = bool(client.save())
            except redis.RedisError as exc:
                log.warning("redis-server did not save instance=%s error=%s", key, exc)
            finally:
                client.close()
        if saved:
            proc.popen.terminate()
        else:
            # Deleted (nothing to keep), or it did not save: a SIGTERM would only wait for it
            # (a redis whose final save fails even refuses to shut down).
            proc.popen.kill()
        try:
            proc.popen.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait()
        log.info("redis-server stopped instance=%s saved=%s", key, saved)

    def kill(self, key: str) -> bool:
        """SIGKILL the process for `key` (a crash: nothing saved). False if none was running."""
        proc = self.get(key)
        if proc is None or not proc.running():
            return False
        proc.popen.kill()
        proc.popen.wait()
        log.info("redis-server killed instance=%s", key)
        return True

    def forget(self, key: str) -> None:
        with self._lock:
            self._procs.pop(key, None)

    def stop_all(self, *, save: bool) -> None:
        keys = [p.key for p in self.all()]
        # Shut children down in parallel: with dozens of instances a serial stop would
        # outlast a supervisor's stop timeout.
        threads = [threading.Thread(target=self.stop, args=(k,), kwargs={"save": save}) for k in keys]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self._spawner.shutdown(wait=True)


def _log_tail(spec: RedisSpec, lines: int = 5) -> str:
    text = ""
    for name in ("redis-server.out", "redis.log"):
        with contextlib.suppress(OSError):
            text += (spec.data_dir / name).read_text(errors="replace")
    return " | ".join(text.strip().splitlines()[-lines:]) or "no output"
