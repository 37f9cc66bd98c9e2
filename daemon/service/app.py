"""`redisguard daemon`: wires config, checks, results, metrics, the HTTP server and the scheduler, and handles signals."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from redisguard.core.errors import ConfigError
from redisguard.core.reports import EXIT_CONFIG
from redisguard.core.signals import catch_signals, exit_on
from redisguard.daemon.checks.protocol import Check
from redisguard.daemon.checks.registry import budget_seconds, build_checks
from redisguard.daemon.config import DEFAULT_CONFIG_FILE, RedisguardConfig, load_config
from redisguard.daemon.service import logs, scheduler, status_page
from redisguard.daemon.service.health import Expectation
from redisguard.daemon.service.http import DaemonHTTPServer, bind, bound_address, serve_in_thread
from redisguard.daemon.service.logs import event
from redisguard.daemon.service.metrics import Exposition
from redisguard.daemon.service.results import Results
from redisguard.daemon.service.site import Site
from redisguard.daemon.service.webconfig import WebConfig, load_web_config
from redisguard.daemon.sharding import Shard

log = logging.getLogger(__name__)

# SIGTERM/SIGINT to exit: well inside the 10 s a service manager (or Kubernetes' default 30 s) waits.
SHUTDOWN_DEADLINE_SECONDS = 8.0
# How long a stop waits for cancelled checks to end (a refresh's kill takes up to its grace, 0.5 s).
CHECKS_STOP_SECONDS = 5.0
_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)
# The daemon's process name (`pidof redisguard`, `pgrep -x redisguard`): the command's own.
PROCESS_NAME = "redisguard"


@dataclass(frozen=True)
class Loaded:
    """One accepted config and everything built from it."""

    config: RedisguardConfig
    web: WebConfig
    checks: Mapping[str, Check[Any]]
    loaded_at: float
    intervals: Mapping[str, float]
    """enabled check -> seconds between two of its runs: what /healthz and RedisguardChecksStale count in."""
    shard: Shard
    """The part of the fleet this daemon checks (sharding in the config, or --shard/--total-shards/--pod)."""

    def expectations(self) -> list[Expectation]:
        out = []
        for name, check in self.checks.items():
            out.append(
                Expectation(
                    check=name,
                    targets=tuple(check.targets),
                    period_seconds=self.intervals[name],
                    budget_seconds=budget_seconds(name, self.config, len(check.targets)),
                )
            )
        return out


def load(path: str | None, sharding: Mapping[str, Any] | None = None) -> Loaded:
    """Read the config, its web config and build the checks; ConfigError (every problem) before anything starts.

    `sharding`: the command line's sharding keys, over the config's."""
    config = load_config(path)
    if sharding:
        config = config.with_sharding(sharding)
    shard = Shard.of(config.sharding)
    web = load_web_config(config.server.web_config_file)
    checks = build_checks(config, shard)
    # A cron expression that never fires again has no period: judged as if it ran every minute.
    intervals = {name: schedule.period_seconds() or 60.0 for name, schedule in config.schedules.enabled().items()}
    return Loaded(
        config=config, web=web, checks=checks, loaded_at=time.time(), intervals=intervals, shard=shard
    )


def sharding_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The sharding keys given on the command line (--shard, --total-shards, --pod)."""
    given = {"shard": getattr(args, "shard", None), "total_shards": getattr(args, "total_shards", None), "pod": getattr(args, "pod", None)}
    return {key: value for key, value in given.items() if value is not None}


def _one_line(exc: ConfigError) -> str:
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


class Daemon:
    def __init__(self, args: argparse.Namespace, loaded: Loaded) -> None:
        self.args = args
        self.loaded = loaded
        # The status page's sparklines: every memory result as it is published.
        self.history = status_page.UsageHistory()
        self.results = Results(listeners=[self.history.observe])
        self.runner = scheduler.Runner(
            self.results, lambda: self.loaded.config.secrets(), lambda: self.loaded.config.parallelism
        )
        exposition = Exposition(self.results, lambda: self.loaded.intervals, lambda: self.loaded.shard)
        self.site = Site(
            self.results,
            exposition,
            lambda: (self.loaded.expectations(), self.loaded.loaded_at),
            config=lambda: (self.loaded.config, args.config or DEFAULT_CONFIG_FILE),
            history=self.history,
        )
        self.scheduler = scheduler.Scheduler(self.runner)
        self.server: DaemonHTTPServer | None = None

    def log_config(self, what: str) -> None:
        loaded = self.loaded
        event(
            log, logging.INFO, what,
            version=version("redisguard"),
            checks=",".join(loaded.checks) or "none",
            shard=f"{loaded.shard.ordinal}/{loaded.shard.total}",
            config=loaded.config.redacted(),
            web_config=loaded.web.summary(),
        )  # fmt: skip

    def run_once(self) -> int:
        self.log_config("effective config")
        code = scheduler.run_once(self.runner, self.loaded.checks)
        event(log, logging.INFO, "once finished", exit_code=code)
        return code

    def serve(self) -> int:
        config = self.loaded.config
        # Bound before any check starts: a port in use is a start-up error, named, exit 1.
        self.server = bind(config.server.listen, config.server.host, config.server.port, self.site, self.loaded.web)
        self.log_config("effective config")
        serve_in_thread(self.server)
        event(log, logging.INFO, "listening", address=bound_address(self.server))
        self.scheduler.apply(self.loaded.checks, config.schedules.enabled())
        self.scheduler.start()
        return self._wait_for_signals()

    def _wait_for_signals(self) -> int:
        # Acted on here, outside any signal handler: a reload or a stop takes locks.
        with catch_signals(*_SIGNALS) as next_signal:
            while True:
                signum = next_signal()
                if signum == signal.SIGHUP:
                    self.reload()
                else:
                    return self.stop(signum)

    def reload(self) -> None:
        event(log, logging.INFO, "SIGHUP: reloading the config", file=self.args.config or DEFAULT_CONFIG_FILE)
        try:
            loaded = load(self.args.config, sharding_flags(self.args))
        except ConfigError as exc:
            event(log, logging.ERROR, "config reload refused, keeping the running config", problems=_one_line(exc))
            return
        old = self.loaded.config
        if loaded.config.server.listen != old.server.listen:
            event(log, logging.WARNING, "server.listen changes need a restart; still listening on the old address",
                  listen=old.server.listen, requested=loaded.config.server.listen)  # fmt: skip
        if loaded.config.log_format != old.log_format:
            logs.configure(loaded.config.log_format, logging.getLogger().level, lambda: self.loaded.config.secrets())
        self.loaded = loaded
        if self.server is not None:
            self.server.web = loaded.web  # new connections get the new certificate and users
        self.scheduler.apply(loaded.checks, loaded.config.schedules.enabled())
        self.log_config("config reloaded")

    def stop(self, signum: signal.Signals) -> int:
        started = time.monotonic()
        event(log, logging.INFO, "stopping", signal=signum.name)
        # If anything below hangs, the process still ends in time, with status 0 (children die
        # with us through PR_SET_PDEATHSIG).
        watchdog = threading.Timer(SHUTDOWN_DEADLINE_SECONDS, _exit_now)
        watchdog.daemon = True
        watchdog.start()
        self.scheduler.shutdown(wait_seconds=CHECKS_STOP_SECONDS)
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        event(log, logging.INFO, "stopped", duration=time.monotonic() - started)
        return 0


def _exit_now() -> None:
    log.error("shutdown took longer than %ss; exiting now", SHUTDOWN_DEADLINE_SECONDS)
    logging.shutdown()
    os._exit(0)


class DaemonConfigError(ConfigError):
    """The daemon's own config cannot be loaded at start: exit 78 (EX_CONFIG), which the systemd unit
    does not restart. A stack file or a stack's state that cannot be read is not one: the daemon
    starts and reports that stack's failure."""

    exit_code = EXIT_CONFIG


def run_daemon(args: argparse.Namespace) -> int:
    name_process()
    try:
        loaded = load(args.config, sharding_flags(args))
    except ConfigError as exc:
        raise DaemonConfigError(str(exc)) from None
    logs.configure(loaded.config.log_format, getattr(args, "log_level", "INFO"), lambda: loaded.config.secrets())
    daemon = Daemon(args, loaded)
    if args.once:
        return _once(daemon)
    return daemon.serve()


def name_process() -> None:
    """Name this process `redisguard` as `pidof redisguard` and `pgrep -x redisguard` match it (the
    kernel's 15-character name), and show `redisguard daemon --config ...` in ps; otherwise it is
    `python3`, whichever way it was started (the console script, `python -m`, a container).

    Set first, before any thread starts: a thread takes the name of the thread that starts it.
    """
    import setproctitle

    setproctitle.setproctitle(" ".join([PROCESS_NAME, *sys.argv[1:]]))
    setproctitle.setthreadtitle(PROCESS_NAME)  # the main thread's name is the process's


def _once(daemon: Daemon) -> int:
    # SIGTERM or SIGINT during --once: the checks are stopped and the status says which signal.
    with exit_on(signal.SIGTERM, signal.SIGINT, before_exit=lambda: daemon.scheduler.shutdown(wait_seconds=CHECKS_STOP_SECONDS)):
        return daemon.run_once()
