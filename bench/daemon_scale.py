"""The daemon at 10, 100 and 1000 instances over several projects against the emulator (API only).

Run: ./dev bench daemon_scale   (or .venv/bin/python bench/daemon_scale.py --sizes 10 100 1000 --projects 4 --runs 5)

For each size it writes one stack file per project (the instances spread evenly, every fourth
STANDARD_HA, so Monitoring serves a replica node too), starts `redisguard emulator
--no-processes` with them as fleets (instances exist in the API only, with synthetic
metrics), and measures:

- memory check: one `memory` check run over every project the way the daemon and
  `memory-report` run it (`run_memory_check`), median and worst of `--runs` runs, the
  slowest single project, and the CPU time the checking process spent (the wall time also
  holds the emulator computing Monitoring's answers in Python, which Google does elsewhere);
- API calls per project of one memory check run, counted by the emulator (Memorystore
  ListInstances, Monitoring ListTimeSeries): they must not grow with the instance count;
- the daemon: the real `redisguard daemon` process over the same fleet (drift_live and memory
  every 5 s), once every check has published: `/metrics` latency (median, max) over
  `--scrapes` scrapes while the checks keep running, and its resident memory (VmRSS).

Figures only: nothing is asserted. Goals at 1000 instances (issue 10): memory check under 1 s,
API calls per project independent of the instance count, a scrape under 50 ms, RSS under 150 MB.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml
from _args import positive_int  # bench/ is first on sys.path: the script's own folder
from prometheus_client.parser import text_string_to_metric_families

from redisguard.daemon.checks.memory import MemoryCheck, run_memory_check
from redisguard.daemon.config import RedisguardConfig, config_from_mapping
from redisguard.emulator.launcher import LaunchedEmulator, launch

REGION = "europe-west1"


def project_id(n: int) -> str:
    return f"redisguard-bench-{n}"


def write_stacks(work_dir: Path, size: int, projects: int) -> list[str]:
    """One Pulumi.<stack>.yaml per project; the stack names."""
    stacks = []
    for p in range(projects):
        count = size // projects + (1 if p < size % projects else 0)
        clusters = [
            {
                "name": f"bench-{p}-{i:04d}",
                "memory_gb": 1 + i % 4,
                "tier": "STANDARD_HA" if i % 4 == 3 else "BASIC",
                "redis_version": "REDIS_7_2",
                "max_memory_policy": "allkeys-lru",
                "persistence_mode": "RDB",
                "snapshot_period": "SIX_HOURS",
                "maintenance_window_day": "SUNDAY",
                "maintenance_start_hours": 3,
                "labels": {"env": "bench"},
            }
            for i in range(count)
        ]
        stack = f"bench{p}"
        document = {"config": {"gcp:project": project_id(p), "gcp:region": REGION, "redis-fleet:redis": clusters}}
        (work_dir / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
        stacks.append(stack)
    return stacks


def start(work_dir: Path, stacks: list[str], state_dir: Path) -> LaunchedEmulator:
    options = [
        "emulator", "--host", "127.0.0.1", "--redis-api-port", "0", "--monitoring-port", "0",
        "--state-dir", str(state_dir), "--no-processes",
        # Denser than Google's 60 s, sparse enough that the emulator's own work (it computes every
        # point of every series in Python) does not dominate what is measured: the daemon's side.
        "--sample-interval", "5",
    ]  # fmt: skip
    for stack in stacks:
        options += ["--fleet", str(work_dir / f"Pulumi.{stack}.yaml")]
    return launch(options, timeout=120)


def control(endpoint: str, method: str, path: str) -> dict[str, dict[str, int]]:
    request = urllib.request.Request(f"{endpoint}{path}", method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


@dataclass(frozen=True)
class MemoryFigures:
    median_seconds: float
    worst_seconds: float
    slowest_project_seconds: float
    cpu_seconds: float
    """Median CPU time of this process (the checking side) per run: the emulator's own work excluded."""
    calls_per_project: dict[str, float]
    instances: int


def bench_memory(config: RedisguardConfig, endpoint: str, projects: int, runs: int) -> MemoryFigures:
    check = MemoryCheck(config)
    report = run_memory_check(config, check=check)  # warm-up: imports, clients, connections
    times, cpu, slowest = [], [], 0.0
    calls: dict[str, int] = {}
    for _ in range(runs):
        control(endpoint, "DELETE", "/_emulator/requests")
        started, started_cpu = time.perf_counter(), time.process_time()
        report = run_memory_check(config, check=check)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        if report.exit_code == 1:
            failed = next(p for p in report.projects if p.status == "error")
            raise SystemExit(f"memory check of {failed.project_id} failed: {failed.error}")
        slowest = max(slowest, *(p.duration_seconds for p in report.projects))
        counts = control(endpoint, "GET", "/_emulator/requests")
        calls = {**counts.get("redis", {}), **counts.get("monitoring", {})}
    return MemoryFigures(
        median_seconds=statistics.median(times),
        worst_seconds=max(times),
        slowest_project_seconds=slowest,
        cpu_seconds=statistics.median(cpu),
        calls_per_project={name: count / projects for name, count in sorted(calls.items())},
        instances=sum(len(p.instances) for p in report.projects),
    )


@dataclass(frozen=True)
class DaemonFigures:
    scrape_median_ms: float
    scrape_max_ms: float
    samples: int
    body_bytes: int
    rss_mb: float


def _scrape(url: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    return time.perf_counter() - started, body


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_daemon(
    base: Path, work_dir: Path, stacks: list[str], emulator: LaunchedEmulator, projects: int, scrapes: int
) -> DaemonFigures:
    """The real `redisguard daemon` process over the fleet: /metrics latency once every check has
    published, and its resident memory then."""
    port = _free_port()
    config = base / "redisguard.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "pulumi": {"work_dir": str(work_dir), "stacks": stacks},
                "gcp": {"redis_endpoint": emulator.redis_endpoint, "monitoring_endpoint": emulator.monitoring_endpoint},
                "server": {"listen": f"127.0.0.1:{port}"},
                # Checks keep running during the scrapes: a scrape must not wait for them.
                "schedules": {"drift_pulumi": "off", "drift_live": "5s", "memory": "5s"},
            }
        )
    )
    log = (base / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "redisguard.daemon.cli", "daemon", "--config", str(config)], stdout=subprocess.DEVNULL, stderr=log
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        expected = {("drift_live", s) for s in stacks} | {("memory", project_id(p)) for p in range(projects)}
        deadline = time.monotonic() + 300
        while True:
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the daemon did not publish every check in time: {(base / 'daemon.log').read_text()[-2000:]}")
            try:
                body = _scrape(url)[1].decode()
            except OSError:
                time.sleep(0.2)
                continue
            up = {
                (s.labels["check"], s.labels["target"])
                for f in text_string_to_metric_families(body)
                if f.name == "redisguard_check_up"
                for s in f.samples
                if s.value == 1
            }
            if expected <= up:
                break
            time.sleep(0.2)
        times = []
        for _ in range(scrapes):
            elapsed, raw = _scrape(url)
            times.append(elapsed)
        samples = sum(1 for line in raw.decode().splitlines() if line and not line.startswith("#"))
        return DaemonFigures(
            scrape_median_ms=statistics.median(times) * 1000,
            scrape_max_ms=max(times) * 1000,
            samples=samples,
            body_bytes=len(raw),
            rss_mb=_rss_mb(daemon.pid),
        )
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        log.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=positive_int, nargs="+", default=[10, 100, 1000], help="instances per run")
    parser.add_argument("--projects", type=positive_int, default=4, help="projects the instances spread over (default: 4)")
    parser.add_argument("--runs", type=positive_int, default=5, help="timed runs per size (default: 5)")
    parser.add_argument("--scrapes", type=positive_int, default=50, help="timed /metrics scrapes of the daemon per size (default: 50)")
    args = parser.parse_args()
    print(
        f"{'instances':>9}  {'projects':>8}  {'memory check median s':>21}  {'worst s':>7}  "
        f"{'slowest project s':>17}  {'checker CPU s':>13}  API calls per project and check"
    )
    with tempfile.TemporaryDirectory(prefix="redisguard-bench-") as tmp:
        for size in args.sizes:
            base = Path(tmp) / f"size-{size}"
            work_dir = base / "program"
            work_dir.mkdir(parents=True)
            projects = min(args.projects, size)
            stacks = write_stacks(work_dir, size, projects)
            emulator = start(work_dir, stacks, base / "state")
            try:
                config = config_from_mapping(
                    {
                        "pulumi": {"work_dir": str(work_dir), "stacks": stacks},
                        "gcp": {"redis_endpoint": emulator.redis_endpoint, "monitoring_endpoint": emulator.monitoring_endpoint},
                        "parallelism": 4,
                    }
                )
                memory = bench_memory(config, emulator.redis_endpoint, projects, args.runs)
                daemon = bench_daemon(base, work_dir, stacks, emulator, projects, args.scrapes)
            finally:
                emulator.stop()
            calls = ", ".join(f"{name} {count:g}" for name, count in memory.calls_per_project.items())
            print(
                f"{memory.instances:>9}  {projects:>8}  {memory.median_seconds:>21.3f}  {memory.worst_seconds:>7.3f}  "
                f"{memory.slowest_project_seconds:>17.3f}  {memory.cpu_seconds:>13.3f}  {calls}",
                flush=True,
            )
            print(
                f"{'':>9}  daemon: /metrics median {daemon.scrape_median_ms:.1f} ms, max {daemon.scrape_max_ms:.1f} ms "
                f"({daemon.samples} samples, {daemon.body_bytes / 1024:.0f} KiB), RSS {daemon.rss_mb:.0f} MB",
                flush=True,
            )


if __name__ == "__main__":
    main()
