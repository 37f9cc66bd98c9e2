"""`redisguard demo`: the whole monitor on the local emulator (daemon/demo/ holds the scenario)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from redisguard.core.errors import ConfigError
from redisguard.core.reports import EXIT_ERROR
from redisguard.daemon.cli.options import Subcommands
from redisguard.daemon.cli.output import interruptible
from redisguard.program.config import StackConfig, load_stack_file

_STACK_FILE_NAME = re.compile(r"Pulumi\.[A-Za-z0-9_.-]+\.yaml")


def register(sub: Subcommands) -> None:
    demo = sub.add_parser(
        "demo",
        help="run the whole monitor on the local emulator: pack, drift, memory, metrics, alerts",
        description="Run redisguard's monitor on this machine: (1) start, all on 127.0.0.1 on free "
        "ports with each address printed, the emulator with the staging fleet (real redis-server processes), `redisguard daemon`, "
        "Prometheus and Alertmanager (Debian's prometheus and prometheus-alertmanager on PATH). "
        "Then: (2) the policy pack judges a production stack that breaks its rules (`redisguard "
        "policy-check`: the pack as `pulumi preview --policy-pack policies` runs it) and prints the "
        "mandatory violations; (3) one instance is changed out of band through the Memorystore API "
        "and another filled with real writes; (4) the drift and memory reports are printed, then the "
        "alerts Alertmanager holds, as on-call sees them. Prometheus uses the shipped alerts/ rules "
        "with every `for:` shortened to 2s and one-second intervals, generated into a temporary "
        "folder (the shipped files are never edited). Then it keeps running, with the URLs of the "
        "status page, /metrics, Prometheus and Alertmanager, until Ctrl-C, which stops every "
        "process it started. Exit status: 0 when every step worked, 1 naming the step that failed.",
    )
    demo.add_argument(
        "--once",
        action="store_true",
        help="run the scenario and exit (0 when every step worked) instead of running until Ctrl-C",
    )
    demo.add_argument(
        "--fleet",
        metavar="FILE",
        default=str(_program_dir() / "Pulumi.staging.yaml"),
        help="stack file whose clusters the emulator starts with, named Pulumi.<stack>.yaml as Pulumi "
        "names it, with redis-sidekiq and redis-cache among them (default: the staging stack)",
    )
    demo.set_defaults(func=run_demo)


def _program_dir() -> Path:
    import redisguard.program

    return Path(redisguard.program.__file__).resolve().parent


def _demo_stack(fleet: Path) -> StackConfig:
    """The --fleet stack file, checked before anything starts (the reports find a stack's file by its name)."""
    from redisguard.daemon.demo.scenario import DRIFTED, FILLED

    if not _STACK_FILE_NAME.fullmatch(fleet.name):
        raise ConfigError(f"--fleet {fleet}: the file must be named Pulumi.<stack>.yaml, as Pulumi names stack files")
    if not fleet.is_file():
        raise ConfigError(f"--fleet {fleet}: stack file not found")
    stack = load_stack_file(fleet)
    if not stack.project or not stack.region:
        raise ConfigError(f"{fleet}: the demo needs gcp:project and gcp:region in the stack file")
    names = [c.name for c in stack.clusters]
    missing = [n for n in (DRIFTED, FILLED) if n not in names]
    if missing:
        raise ConfigError(f"--fleet {fleet}: the demo changes {DRIFTED} and fills {FILLED}; missing {', '.join(missing)}")
    return stack


@interruptible("every process the demo started was stopped")
def run_demo(args: argparse.Namespace) -> int:
    from rich.console import Console

    from redisguard.daemon.demo.scenario import StepFailed, run

    fleet = Path(args.fleet)
    stack = _demo_stack(fleet)
    # soft_wrap: the narration is not cut into 80-column pieces when stdout is a pipe.
    out = Console(soft_wrap=True)
    try:
        return run(fleet, stack, once=args.once, out=out)
    except StepFailed as exc:
        Console(stderr=True, soft_wrap=True).print(f"redisguard demo: {exc}", markup=False, highlight=False)
        return EXIT_ERROR
