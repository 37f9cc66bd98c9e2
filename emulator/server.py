"""Wires the emulator: state, redis-server supervisor, REST and gRPC servers (Monitoring and Logging), sampler, signals, ready line."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from redisguard.core.errors import ConfigError
from redisguard.core.signals import catch_signals
from redisguard.emulator.faults import Faults
from redisguard.emulator.launcher import format_ready_line
from redisguard.emulator.logging.audit import AuditLog
from redisguard.emulator.logging.server import LoggingService
from redisguard.emulator.memorystore.api import RedisApi, RedisApiServer
from redisguard.emulator.memorystore.service import MemorystoreService
from redisguard.emulator.monitoring.sampler import Sampler
from redisguard.emulator.monitoring.server import MonitoringServer
from redisguard.emulator.settings import EmulatorSettings

log = logging.getLogger(__name__)

# A shutdown that takes longer than this is cut short: the children still die with us
# (PR_SET_PDEATHSIG), only their final RDB save is lost.
SHUTDOWN_DEADLINE_SECONDS = 30.0


class Emulator:
    """The whole emulator: one service and its state, the two API servers, the sampler; start and stop in order."""

    def __init__(
        self,
        settings: EmulatorSettings,
        fleets: Sequence[Path] = (),
        fleet_project: str | None = None,
        fleet_region: str | None = None,
    ) -> None:
        """`fleet_project`/`fleet_region` override each fleet file's gcp:project/gcp:region when given."""
        self.settings = settings
        self.fleets = list(fleets)
        self.fleet_project = fleet_project
        self.fleet_region = fleet_region
        self.faults = Faults()
        self.service = MemorystoreService(settings)
        self.sampler = Sampler(self.service, settings.sample_interval, settings.history)
        self.service.on_change = self.sampler.poke
        self.audit = AuditLog(settings.audit_principal)
        self.redis_api: RedisApiServer | None = None
        self.monitoring: MonitoringServer | None = None

    def start(self) -> None:
        from redisguard.emulator.fleet import apply_fleet

        # Bind the ports first: a port in use is reported before any redis-server starts.
        host = self.settings.host
        with _port_error("--redis-api-port", host, self.settings.redis_api_port):
            api = RedisApi(self.service, self.faults, audit=self.audit.record)
            self.redis_api = RedisApiServer(api, host, self.settings.redis_api_port)
        with _port_error("--monitoring-port", host, self.settings.monitoring_port):
            self.monitoring = MonitoringServer(self.sampler, self.faults, host, self.settings.monitoring_port)
        # Cloud Logging's ListLogEntries shares the gRPC port: one more port for one call would be
        # one more thing to configure.
        self.monitoring.server.add_generic_rpc_handlers((LoggingService(self.audit, self.faults).handler(),))
        self.service.start()
        for path in self.fleets:
            apply_fleet(self.service, path, self.fleet_project, self.fleet_region)
        self.sampler.start()
        self.redis_api.start()
        self.monitoring.start()

    def ready_line(self) -> str:
        assert self.redis_api is not None and self.monitoring is not None
        return format_ready_line(
            host=self.settings.host,
            redis_api_port=self.redis_api.port,
            monitoring_port=self.monitoring.port,
            project=self.settings.project,
            region=self.settings.region,
            instances=len(self.service.store),
        )

    def stop(self) -> None:
        self.faults.stopping.set()
        if self.redis_api is not None:
            self.redis_api.stop()
        if self.monitoring is not None:
            self.monitoring.stop()
        self.sampler.stop()
        self.service.stop()


def serve(emulator: Emulator) -> int:
    """Run until SIGTERM, SIGINT or SIGHUP; the main thread shuts down, outside any signal handler."""
    # SIGHUP too: closing the terminal the emulator runs in must save the data like Ctrl-C does.
    with catch_signals(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as next_signal:
        try:
            emulator.start()
            print(emulator.ready_line(), flush=True)
            log.info("%s", emulator.ready_line())
            log.info("signal received signal=%s", next_signal().name)
        finally:
            watchdog = threading.Timer(SHUTDOWN_DEADLINE_SECONDS, _force_exit)
            watchdog.daemon = True
            watchdog.start()
            emulator.stop()
            watchdog.cancel()
    log.info("emulator stopped")
    return 0


@contextlib.contextmanager
def _port_error(option: str, host: str, port: int) -> Iterator[None]:
    """Turn a failed bind into one line that names the option and the address."""
    try:
        yield
    except OSError as exc:
        reason = "already in use" if exc.errno in (errno.EADDRINUSE, None) else (exc.strerror or str(exc))
        raise ConfigError(
            f"{option} {port}: cannot listen on {host}:{port}: {reason} (pass another port, or 0 for a free one)"
        ) from exc


def _force_exit() -> None:
    print("redisguard emulator: shutdown took too long, exiting", file=sys.stderr, flush=True)
    os._exit(1)
