"""The `redisguard emulator` command: parses its arguments and runs the emulator until signalled."""

from __future__ import annotations

import argparse
import fcntl
import ipaddress
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path

from redisguard.core.errors import ConfigError
from redisguard.core.links import doc_url
from redisguard.emulator.settings import (
    DEFAULT_AUDIT_PRINCIPAL,
    DEFAULT_MEMORY_SCALE,
    DEFAULT_MONITORING_PORT,
    DEFAULT_PROJECT,
    DEFAULT_REDIS_API_PORT,
    DEFAULT_REGION,
    DEFAULT_STATE_DIR,
    EmulatorSettings,
)

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "emulator",
        help="run the local Memorystore + Cloud Monitoring emulator",
        description="Local stand-in for the Memorystore admin API (REST v1) and Cloud Monitoring "
        "(gRPC ListTimeSeries). Every instance is a real redis-server on a loopback port. Prints one "
        "ready line on stdout, then serves until SIGTERM, SIGINT (Ctrl-C) or SIGHUP, which save every "
        "instance's data and stop every redis-server: instances and data survive a restart with the same "
        f"--state-dir. Fault injection: POST /_emulator/faults on the REST port (see {doc_url('emulator.md', 'Fault injection')}).",
    )
    _add_listen_options(p)
    _add_fleet_options(p)
    _add_instance_options(p)
    p.set_defaults(func=run)


def _add_listen_options(p: argparse.ArgumentParser) -> None:
    """Where the two APIs listen."""
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="IPv4 loopback address to listen on: 127.0.0.0/8 or localhost (default: %(default)s)",
    )
    p.add_argument(
        "--redis-api-port",
        type=int,
        default=DEFAULT_REDIS_API_PORT,
        metavar="PORT",
        help="port of the REST Memorystore API and the /_emulator control endpoints; 0 picks a free port "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--monitoring-port",
        type=int,
        default=DEFAULT_MONITORING_PORT,
        metavar="PORT",
        help="port of the gRPC Cloud Monitoring API and Cloud Logging's ListLogEntries; 0 picks a free port "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--audit-principal",
        default=DEFAULT_AUDIT_PRINCIPAL,
        metavar="EMAIL",
        help="who the Admin Activity audit log names for a call without the x-emulator-principal header "
        "(default: %(default)s)",
    )


def _add_fleet_options(p: argparse.ArgumentParser) -> None:
    """Which instances exist: the default project and region, the state kept across restarts, the fleets."""
    p.add_argument(
        "--project",
        help="default project id; overrides the fleet files' gcp:project "
        f"(default: the first fleet's, else {DEFAULT_PROJECT})",
    )
    p.add_argument(
        "--region",
        help="default region, such as europe-west1; overrides the fleet files' gcp:region "
        f"(default: the first fleet's, else {DEFAULT_REGION})",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=Path(DEFAULT_STATE_DIR),
        metavar="DIR",
        help="instance records, redis.conf and RDB files; created if missing "
        "(default: %(default)s, relative to the current directory)",
    )
    p.add_argument(
        "--fleet",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="create the clusters of this Pulumi stack file (program/Pulumi.<stack>.yaml) at start "
        "unless they exist (repeatable)",
    )


def _add_instance_options(p: argparse.ArgumentParser) -> None:
    """How instances run and are sampled: their redis-server (or none), memory scale, sampling."""
    p.add_argument(
        "--memory-scale",
        type=int,
        default=DEFAULT_MEMORY_SCALE,
        metavar="BYTES_PER_GB",
        help="redis maxmemory per GB of memorySizeGb (default: %(default)s = 16 MiB)",
    )
    p.add_argument(
        "--no-processes",
        dest="processes",
        action="store_false",
        help="keep instances in the API only (no redis-server; synthetic metrics), for load tests",
    )
    p.add_argument(
        "--sample-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="seconds between two INFO samples per instance (default: %(default)s)",
    )
    p.add_argument(
        "--history",
        type=int,
        default=3600,
        metavar="SAMPLES",
        help="samples kept per instance for ListTimeSeries (default: %(default)s)",
    )
    p.add_argument(
        "--redis-server", default="redis-server", metavar="PATH", help="redis-server binary (default: %(default)s)"
    )


def _loopback_host(host: str) -> str:
    """The IPv4 loopback address to listen on; `localhost` is 127.0.0.1."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or address.version != 4 or not address.is_loopback:
        raise ConfigError(f"--host {host}: the emulator listens on IPv4 loopback only (127.0.0.0/8 or localhost)")
    return host


def _check_ids(project: str | None, region: str | None) -> None:
    """--project and --region as the Memorystore API accepts them in resource names."""
    from redisguard.emulator.memorystore.rules import PROJECT_RE, REGION_RE

    if project is not None and not PROJECT_RE.match(project):
        raise ConfigError(
            f"--project {project}: expected a project id (6-30 lowercase letters, digits and hyphens, "
            "starting with a letter) or a project number"
        )
    if region is not None and not REGION_RE.match(region):
        raise ConfigError(f"--region {region}: expected a region name such as europe-west1")


def _check_ports(redis_api_port: int, monitoring_port: int) -> None:
    for option, port in (("--redis-api-port", redis_api_port), ("--monitoring-port", monitoring_port)):
        if not 0 <= port <= 65535:
            raise ConfigError(f"{option} {port}: expected 0-65535")
    if redis_api_port and redis_api_port == monitoring_port:
        raise ConfigError(
            f"--redis-api-port and --monitoring-port are both {redis_api_port}: the two APIs need two ports"
        )


def _check_instance_options(args: argparse.Namespace) -> None:
    """--memory-scale, the sampling options and --redis-server."""
    if args.memory_scale < 1024 * 1024:
        raise ConfigError(f"--memory-scale {args.memory_scale}: expected at least 1048576 bytes (1 MiB) per GB")
    if not (math.isfinite(args.sample_interval) and args.sample_interval > 0):
        raise ConfigError(f"--sample-interval {args.sample_interval}: expected a positive number of seconds")
    if args.history < 1:
        raise ConfigError(f"--history {args.history}: expected at least 1 sample")
    if args.processes and shutil.which(args.redis_server) is None:
        raise ConfigError(f"--redis-server {args.redis_server}: not found; install redis-server or pass --no-processes")


def _default_ids(project: str | None, region: str | None, fleets: list[Path]) -> tuple[str, str]:
    """The default project and region: as given, else the first fleet file's, else the emulator's own."""
    from redisguard.program.config import load_stack_file

    if fleets and (project is None or region is None):
        first = load_stack_file(fleets[0])
        project = project or first.project
        region = region or first.region
    return project or DEFAULT_PROJECT, region or DEFAULT_REGION


LOCK_FILE = "emulator.lock"


def prepare_state_dir(path: Path) -> int:
    """Create and lock the state directory before any server or redis-server starts; the lock's fd.

    Two emulators on one state dir would overwrite each other's state.json and RDB files;
    the lock (released by the kernel when this process ends, however it ends) refuses the second.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
        fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"--state-dir {path}: exists and is not a directory") from exc
    except OSError as exc:
        raise ConfigError(
            f"--state-dir {path}: cannot use it as the emulator's state directory: {exc.strerror or exc}"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise ConfigError(
            f"--state-dir {path}: another emulator is using it; stop that one or pass another --state-dir"
        ) from exc
    return fd


def settings_from_args(args: argparse.Namespace) -> EmulatorSettings:
    host = _loopback_host(args.host)
    _check_ports(args.redis_api_port, args.monitoring_port)
    _check_ids(args.project, args.region)
    _check_instance_options(args)
    project, region = _default_ids(args.project, args.region, args.fleet)
    return EmulatorSettings(
        host=host,
        redis_api_port=args.redis_api_port,
        monitoring_port=args.monitoring_port,
        project=project,
        region=region,
        state_dir=args.state_dir.resolve(),
        memory_scale=args.memory_scale,
        processes=args.processes,
        redis_server=args.redis_server,
        sample_interval=args.sample_interval,
        history=args.history,
        audit_principal=args.audit_principal,
    )


def run(args: argparse.Namespace) -> int:
    from redisguard.emulator.server import Emulator, serve

    settings = settings_from_args(args)
    lock = prepare_state_dir(settings.state_dir)
    log.info(
        "emulator config host=%s redis_api_port=%d monitoring_port=%d project=%s region=%s state_dir=%s "
        "memory_scale=%d processes=%s fleets=%s",
        settings.host,
        settings.redis_api_port,
        settings.monitoring_port,
        settings.project,
        settings.region,
        settings.state_dir,
        settings.memory_scale,
        settings.processes,
        ",".join(str(f) for f in args.fleet) or "-",
    )
    emulator = Emulator(settings, args.fleet, fleet_project=args.project, fleet_region=args.region)
    try:
        return serve(emulator)
    except OSError as exc:
        raise ConfigError(f"cannot start the emulator: {exc}") from exc
    finally:
        os.close(lock)
