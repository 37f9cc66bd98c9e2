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
  ListInstances, Monitoring ListTimeSeries): they must not grow with the instance count.

Figures only: nothing is asserted. Goals at 1000 instances (issue 10): memory check under 1 s,
API calls per project independent of the instance count.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from redisguard.daemon.config import RedisguardConfig, config_from_mapping
from redisguard.daemon.memory import MemoryCheck, run_memory_check
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000], help="instances per run")
    parser.add_argument("--projects", type=int, default=4, help="projects the instances spread over (default: 4)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per size (default: 5)")
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
            finally:
                emulator.stop()
            calls = ", ".join(f"{name} {count:g}" for name, count in memory.calls_per_project.items())
            print(
                f"{memory.instances:>9}  {projects:>8}  {memory.median_seconds:>21.3f}  {memory.worst_seconds:>7.3f}  "
                f"{memory.slowest_project_seconds:>17.3f}  {memory.cpu_seconds:>13.3f}  {calls}",
                flush=True,
            )


if __name__ == "__main__":
    main()
