"""Stacks per hour the drift_pulumi check refreshes: one daemon, and the same stacks over 4 shards at once.

Run: ./dev bench shard_refresh   (or .venv/bin/python bench/shard_refresh.py --stacks 16 --shards 4 --parallelism 4)

Deploys `--stacks` stacks of the shipped program (program/ of a user's checkout) with the real
`pulumi` CLI and Python language host built by ./dev, and the stand-in gcp provider
(tests/fixtures/bin/pulumi-resource-gcp) against `redisguard emulator --no-processes`: each stack
one or two of staging's clusters, created by `pulumi up`. Then, side by side in one run, the real
`redisguard daemon --once` with only drift_pulumi enabled (a `pulumi refresh --preview-only` per
stack through the Automation API, `parallelism` at a time: the daemon's own code path):

- one daemon over every stack;
- `--shards` daemons at once (`--shard i --total-shards M`), each over the stacks its hash owns.

Printed for each: wall seconds (every process started to the last one's exit, start-up included),
the checks' seconds (the first daemon's start-up line to the last one's end of checks) and stacks
per hour from those (a running daemon does not start for each run), the mean and worst refresh
seconds per stack (the check's own `duration` in the log), what the sizing rule parallelism x 3600
/ refresh-seconds gives with that mean, the CPU seconds the daemons and what they reaped (the CLI,
its plugins) used, the ceiling CPUs x 3600 / CPU-seconds per stack, and how busy the whole
machine's CPUs were (other jobs included: a shared machine's figures vary).

A refresh is CPU-heavy (the CLI, the language host and the provider start for every stack), so
shards on one machine share its cores: on a 2-core machine both figures are CPU-bound, and shards
add throughput only across machines (pods), each with its own cores.

Figures only: no timing is asserted. A refresh that is not in sync stops the bench (no figure).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _args import positive_int  # noqa: E402 - bench/ is first on sys.path: the script's own folder

from redisguard.daemon.sharding import shard_of  # noqa: E402
from tests.fixtures.daemon import launch_daemon  # noqa: E402
from tests.fixtures.emulator import EmulatorHandle, start_emulator  # noqa: E402
from tests.fixtures.pulumi_engine import Engine, engine_bin_dirs, user_checkout  # noqa: E402
from tests.fixtures.repo import STAGING  # noqa: E402

PROJECT, REGION = "redisguard-bench-shards", "europe-west1"
# Generous: 16 refreshes at once on a loaded 2-core machine take many times their idle length; a timeout is no figure.
REFRESH_TIMEOUT_SECONDS = 1800


def stack_names(count: int) -> list[str]:
    return [f"s{n:02d}" for n in range(count)]


def stack_file(stack: str, index: int, endpoint: str) -> dict[str, Any]:
    """Staging's clusters renamed for this stack: one for even stacks, two for odd ones."""
    clusters = yaml.safe_load(STAGING.read_text())["config"]["redis-fleet:redis"]
    entries = [{**c, "name": f"{c['name']}-{stack}"} for c in (clusters * 2)[index % 3 : index % 3 + 1 + index % 2]]
    return {
        "config": {
            "gcp:project": PROJECT, "gcp:region": REGION,
            "gcp:redisCustomEndpoint": f"{endpoint}/v1/", "redis-fleet:redis": entries,
        }
    }  # fmt: skip


def deploy(engine: Engine, program: Path, names: Sequence[str], endpoint: str) -> int:
    """Each stack created by `pulumi up`, two at a time; returns how many instances they hold."""

    def up(index: int, stack: str) -> int:
        spec = stack_file(stack, index, endpoint)
        (program / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(spec))
        engine.pulumi_ok(program, "stack", "init", stack)
        engine.pulumi_ok(program, "up", "--yes", "--skip-preview", "--stack", stack)
        return len(spec["config"]["redis-fleet:redis"])

    with ThreadPoolExecutor(max_workers=2) as pool:
        return sum(pool.map(up, range(len(names)), names))


@dataclass(frozen=True)
class Phase:
    """One configuration's run: every daemon started at once, then waited for."""

    label: str
    parallelism: int
    per_daemon: list[int]
    wall_seconds: float
    """From starting the processes to the last one's exit."""
    check_seconds: float
    """From the first daemon's start-up line (config loaded) to the last daemon's end of its checks."""
    refresh_seconds: list[float]
    cpu_seconds: float
    machine_busy: float
    load_before: float

    @property
    def stacks(self) -> int:
        return len(self.refresh_seconds)

    @property
    def per_hour(self) -> float:
        """A running daemon does not start for each run: the checks' window, not the process start."""
        return self.stacks * 3600 / self.check_seconds

    @property
    def mean_refresh(self) -> float:
        return statistics.mean(self.refresh_seconds)

    @property
    def rule_per_hour(self) -> float:
        """The sizing rule for one daemon, parallelism x 3600 / refresh-seconds, with this run's mean."""
        return self.parallelism * 3600 / self.mean_refresh


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of every CPU since boot (/proc/stat), for the machine's share that was busy."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


@dataclass(frozen=True)
class DaemonLog:
    refreshes: dict[str, float]
    """Each stack's drift_pulumi duration (the check's own `duration`)."""
    began: float
    """When the daemon logged its effective config (start-up done), as a POSIX time."""
    ended: float
    """When it logged `once finished`."""


def read_log(log: Path) -> DaemonLog:
    """What a daemon's JSON log says of its run; a stack not in sync stops the bench."""
    found: dict[str, float] = {}
    times: dict[str, float] = {}
    for line in log.read_text().splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry.get("message") in ("effective config", "once finished"):
            times[entry["message"]] = datetime.fromisoformat(entry["time"]).timestamp()
        if entry.get("message") != "check finished" or entry.get("check") != "drift_pulumi":
            continue
        if entry.get("status") != "in_sync":
            sys.exit(f"shard_refresh: {entry['target']}: {entry.get('status')} {entry.get('error', '')} (log: {log})")
        found[entry["target"]] = float(entry["duration"])
    return DaemonLog(found, times["effective config"], times["once finished"])


def run_phase(folder: Path, config: dict[str, Any], env: dict[str, str], label: str, shards: int | None) -> Phase:
    """`redisguard daemon --once` unsharded (`shards` None) or as shards 0..shards-1 at once."""
    args = [[]] if shards is None else [["--shard", str(i), "--total-shards", str(shards)] for i in range(shards)]
    names = [label] if shards is None else [f"{label}-{i}" for i in range(shards)]
    load_before = os.getloadavg()[0]
    usage, ticks = resource.getrusage(resource.RUSAGE_CHILDREN), cpu_ticks()
    started = time.monotonic()
    processes = [
        launch_daemon(folder, config, once=True, env=env, name=name, extra_args=extra)
        for name, extra in zip(names, args, strict=True)
    ]
    codes = [p.wait() for p in processes]
    wall = time.monotonic() - started
    after, ticks_after = resource.getrusage(resource.RUSAGE_CHILDREN), cpu_ticks()
    logs = [folder / f"{n}.log" for n in names]
    if any(codes):
        sys.exit(f"shard_refresh: {label}: daemon exit codes {codes} (logs: {', '.join(map(str, logs))})")
    read = [read_log(log) for log in logs]
    found = [r.refreshes for r in read]
    seen = [stack for shard in found for stack in shard]
    if sorted(seen) != sorted(config["pulumi"]["stacks"]):
        sys.exit(f"shard_refresh: {label}: refreshed {sorted(seen)}, not every stack once")
    cpu = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
    busy = (ticks_after[0] - ticks[0]) / max(1, ticks_after[1] - ticks[1])
    return Phase(
        label=label, parallelism=config["parallelism"], per_daemon=[len(shard) for shard in found],
        wall_seconds=wall, check_seconds=max(r.ended for r in read) - min(r.began for r in read),
        refresh_seconds=[s for shard in found for s in shard.values()], cpu_seconds=cpu, machine_busy=busy,
        load_before=load_before,
    )  # fmt: skip


def daemon_config(program: Path, engine: Engine, emulator: EmulatorHandle, names: list[str], parallelism: int) -> dict[str, Any]:
    """A redisguard.yaml with only drift_pulumi on, over every stack."""
    return {
        "pulumi": {
            "work_dir": str(program), "stacks": names, "backend_url": f"file://{engine.backend}",
            "refresh_timeout_seconds": REFRESH_TIMEOUT_SECONDS,
        },
        "gcp": {"redis_endpoint": emulator.redis_endpoint, "monitoring_endpoint": emulator.monitoring_endpoint},
        "schedules": {"drift_pulumi": "1h", "drift_live": "off", "memory": "off", "compliance": "off"},
        "parallelism": parallelism,
        "log_format": "json",
    }  # fmt: skip


def print_phases(phases: Sequence[Phase], instances: int) -> None:
    cpus = os.cpu_count() or 1
    rows = [
        ("daemons", lambda p: f"{len(p.per_daemon)}"),
        ("parallelism (each)", lambda p: f"{p.parallelism}"),
        ("stacks per daemon", lambda p: "/".join(map(str, p.per_daemon))),
        ("wall s, with start-up", lambda p: f"{p.wall_seconds:.1f}"),
        ("checks s, started to done", lambda p: f"{p.check_seconds:.1f}"),
        ("stacks per hour", lambda p: f"{p.per_hour:.0f}"),
        ("refresh s, mean", lambda p: f"{p.mean_refresh:.1f}"),
        ("refresh s, worst", lambda p: f"{max(p.refresh_seconds):.1f}"),
        ("rule per daemon, P*3600/mean", lambda p: f"{p.rule_per_hour:.0f}"),
        ("CPU s (daemons+children)", lambda p: f"{p.cpu_seconds:.0f}"),
        ("CPU s per stack", lambda p: f"{p.cpu_seconds / p.stacks:.1f}"),
        ("CPU ceiling, CPUs*3600/CPU-s", lambda p: f"{cpus * 3600 * p.stacks / p.cpu_seconds:.0f}"),
        ("machine CPUs busy", lambda p: f"{p.machine_busy:.0%}"),
        ("load average before", lambda p: f"{p.load_before:.1f}"),
    ]
    print(f"{'':30}" + "".join(f"{p.label:>14}" for p in phases))
    for title, cell in rows:
        print(f"{title:30}" + "".join(f"{cell(p):>14}" for p in phases))
    base, last = phases[0], phases[-1]
    print(f"{last.label} / {base.label}: {last.per_hour / base.per_hour:.2f}x the stacks per hour "
          f"({base.stacks} stacks, {instances} instances; {cpus} CPUs on this machine)")  # fmt: skip
    bound = [p.label for p in phases if len(p.per_daemon) * p.parallelism > cpus]
    if bound:
        print(f"CPU-bound here: {' and '.join(bound)} run more refreshes at once than the {cpus} CPUs, so the figures "
              "are the CPUs' (the ceiling row), not the sharding's; shards add throughput across machines (pods), "
              "each with its own CPUs, not on one machine")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", type=positive_int, default=16, help="deployed stacks (one or two instances each)")
    parser.add_argument("--shards", type=positive_int, default=4, help="daemons at once in the sharded run")
    parser.add_argument("--parallelism", type=positive_int, default=4, help="refreshes at once per daemon (redisguard.yaml's parallelism)")
    args = parser.parse_args()
    bin_dirs, reason = engine_bin_dirs()
    if not bin_dirs:
        sys.exit(f"shard_refresh: {reason}")
    names = stack_names(args.stacks)
    split = [sum(1 for s in names if shard_of(s, args.shards) == i) for i in range(args.shards)]
    with tempfile.TemporaryDirectory(prefix="redisguard-bench-shards-") as tmp:
        folder = Path(tmp)
        (folder / "state").mkdir()
        engine = Engine(root=folder, bin_dirs=bin_dirs)
        emulator = start_emulator(folder, processes=False, project=PROJECT, region=REGION)
        try:
            program = user_checkout(folder / "checkout") / "program"
            started = time.monotonic()
            instances = deploy(engine, program, names, emulator.redis_endpoint)
            print(f"set-up: {args.stacks} stacks, {instances} instances deployed with `pulumi up` in "
                  f"{time.monotonic() - started:.0f}s; hash split over {args.shards} shards: {'/'.join(map(str, split))}")  # fmt: skip
            config = daemon_config(program, engine, emulator, names, args.parallelism)
            env = engine.subprocess_env()
            phases = [
                run_phase(folder, config, env, "1 daemon", None),
                run_phase(folder, config, env, f"{args.shards} shards", args.shards),
            ]
        finally:
            emulator.stop()
    print_phases(phases, instances)


if __name__ == "__main__":
    main()
