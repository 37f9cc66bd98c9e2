"""`redisguard drift-report`, `memory-report` (with --recommend) and `compliance-report`: their options and handlers.

The engines (the Google clients, Pulumi's Automation API) are imported when a handler runs, not
with this module: the parser imports it for every command, `--help` included.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from redisguard.core.errors import ConfigError
from redisguard.core.reports import EXIT_ERROR
from redisguard.daemon.cli.options import (
    PROPOSAL_EXIT_CODES_HELP,
    Subcommands,
    add_config,
    add_report_output,
    add_stacks,
)
from redisguard.daemon.cli.output import emit_report, interruptible, print_errors
from redisguard.daemon.config import DEFAULT_CONFIG_FILE, default_stack_names, load_config, parse_duration

if TYPE_CHECKING:
    from redisguard.daemon.reports.drift import StackReport

log = logging.getLogger(__name__)

DRIFT_EXIT_CODES_HELP = (
    "exit status: 0 all stacks in sync, 2 drift found, 1 a check failed or the command could not run "
    "(a bad argument or config too; an error wins over drift)"
)
MEMORY_EXIT_CODES_HELP = (
    "exit status: 0 every instance below its thresholds, 2 a memory threshold crossed, 1 a project's check "
    "failed or the command could not run (a bad argument or config too; an error wins over a threshold)"
)
COMPLIANCE_EXIT_CODES_HELP = (
    "exit status: 0 no mandatory policy violated (advisory findings are listed), 2 a mandatory policy violated "
    "by a live instance, 1 a project's check failed or the command could not run (an error wins over a violation)"
)
DEFAULT_TARGET_RATIO = 0.7
DEFAULT_HORIZON = "30d"


def register(sub: Subcommands) -> None:
    _add_drift_report(sub)
    _add_memory_report(sub)
    _add_compliance_report(sub)


# --- drift-report ------------------------------------------------------------------------------


def _add_drift_report(sub: Subcommands) -> None:
    drift = sub.add_parser(
        "drift-report",
        help="report drift between the stack config, the Pulumi state and the live instances",
        description="Check each configured stack for drift and print one report. The pulumi engine "
        "runs `pulumi refresh --preview-only` through the Automation API (state is never written); "
        "the live engine compares the declared clusters with the instances the Memorystore API lists. "
        + DRIFT_EXIT_CODES_HELP
        + ".",
    )
    add_config(drift)
    add_stacks(drift, "check only this stack")
    drift.add_argument(
        "--engine",
        choices=["pulumi", "live", "all"],
        default="all",
        help="pulumi: refresh preview against the state; live: declared config against the API; all: both (default)",
    )
    add_report_output(drift)
    drift.set_defaults(func=run_drift_report)


@interruptible()
def run_drift_report(args: argparse.Namespace) -> int:
    from redisguard.daemon.checks.drift import engines_for, run_scan

    config = load_config(args.config)
    stacks = default_stack_names(config, args.stack)
    engines = engines_for(args.engine)
    log.debug("effective config %s", config.redacted())
    with _progress(len(stacks) * len(engines)) as advance:
        report = run_scan(config, stacks, engines, on_done=advance)
    config_dir = Path(args.config or DEFAULT_CONFIG_FILE).resolve().parent
    emit_report(report, args.format, args.output, config_dir)
    print_errors("drift-report", report)
    return report.exit_code


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[[StackReport], None] | None]:
    """A progress bar on stderr when it is a terminal and more than one check runs: yields the
    callback that advances it (None when there is no bar)."""
    from rich.console import Console

    err = Console(stderr=True)
    if total < 2 or not err.is_terminal:
        yield None
        return
    # Here: rich's live display is about 20 ms of every command's start-up, for a bar on a terminal only.
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("drift"), BarColumn(), TextColumn("{task.completed}/{task.total} checks"), TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("drift", total=total)

        def advance(_: StackReport) -> None:
            progress.advance(task)

        yield advance


# --- memory-report -----------------------------------------------------------------------------


def _add_memory_report(sub: Subcommands) -> None:
    memory = sub.add_parser(
        "memory-report",
        help="report each instance's memory from Cloud Monitoring and flag those near their limits",
        description="For every project of the configured stacks: one Memorystore listing and one Cloud "
        "Monitoring request per memory metric, read from each instance's primary node. Shows used, "
        "maxmemory and capacity bytes, the usage and system memory ratios, a time-to-full estimate over "
        "thresholds.trend_window, and flags instances at or above thresholds.memory_warning_ratio and "
        "memory_critical_ratio; instances no stack declares are listed as unmanaged. "
        + MEMORY_EXIT_CODES_HELP
        + ". With --recommend the command proposes edits, and its " + PROPOSAL_EXIT_CODES_HELP
        + " (the thresholds' verdict is then the --output report's exit_code).",
    )
    add_config(memory)
    add_stacks(memory, "only this stack's projects, its instances and the projects' unmanaged ones")
    add_report_output(memory)
    # --recommend (daemon/remediation/recommend.py)
    memory.add_argument(
        "--recommend",
        action="store_true",
        help="propose memory_gb changes in the stack files (a unified diff on stdout; the report then goes only to "
        "--output): for instances over thresholds.memory_warning_ratio or filling up within --horizon, the smallest "
        "size that keeps usage under --target-ratio through the horizon; for instances far below, a smaller size; "
        "within Memorystore's limits, the pack's memorystore-memory-bounds and memorystore-stack-memory-budget; "
        + PROPOSAL_EXIT_CODES_HELP,
    )
    memory.add_argument(
        "--target-ratio", type=float, default=DEFAULT_TARGET_RATIO, metavar="RATIO",
        help=f"usage ratio a recommended size keeps under (default: {DEFAULT_TARGET_RATIO:g})",
    )  # fmt: skip
    memory.add_argument(
        "--horizon", default=DEFAULT_HORIZON, metavar="DURATION",
        help=f"how far ahead the trend is projected (default: {DEFAULT_HORIZON})",
    )  # fmt: skip
    memory.add_argument(
        "--policy-config", metavar="FILE",
        help="policy pack config to take the memory bounds and budget from (default: policies/config/<stack>.json)",
    )  # fmt: skip
    memory.add_argument("--write", action="store_true", help="with --recommend: write the change into the stack files")
    memory.set_defaults(func=run_memory_report)


@interruptible()
def run_memory_report(args: argparse.Namespace) -> int:
    # Imported here: the Monitoring client (gRPC) costs every other command's start-up otherwise.
    from redisguard.daemon.checks.memory import run_memory_check

    config = load_config(args.config)
    stacks = default_stack_names(config, args.stack)
    log.debug("effective config %s", config.redacted())
    horizon = _recommend_horizon(args) if args.recommend else None  # checked before any API is called
    report = run_memory_check(config, stacks)
    if horizon is None:
        emit_report(report, args.format, args.output)
        print_errors("memory-report", report)
        return report.exit_code
    from redisguard.daemon.fleet.declared import config_stacks
    from redisguard.daemon.remediation.plan import emit
    from redisguard.daemon.remediation.recommend import plan_recommend

    if args.output:
        emit_report(report, args.format, args.output)
    plan, _ = plan_recommend(
        config, report, config_stacks(config, "memory-report --recommend"), stacks,
        target=args.target_ratio, horizon=horizon,
        policy_config=Path(args.policy_config) if args.policy_config else None,
    )  # fmt: skip
    proposed = emit("memory-report", plan, args.write)
    print_errors("memory-report", report)
    # A project's failed check may hide an instance that needs a change: an error wins.
    return EXIT_ERROR if report.exit_code == EXIT_ERROR else proposed


def _recommend_horizon(args: argparse.Namespace) -> float:
    """--horizon in seconds; ConfigError for a bad --target-ratio or --horizon."""
    if not 0 < args.target_ratio < 1:
        raise ConfigError(f"--target-ratio {args.target_ratio:g}: allowed: a ratio between 0 and 1, e.g. 0.7")
    try:
        horizon = parse_duration(args.horizon).total_seconds()
    except ValueError as exc:
        raise ConfigError(f"--horizon {args.horizon!r}: {exc}") from None
    if horizon <= 0:
        raise ConfigError(f"--horizon {args.horizon!r}: allowed: a positive duration such as 30d")
    return horizon


# --- compliance-report -------------------------------------------------------------------------


def _add_compliance_report(sub: Subcommands) -> None:
    compliance = sub.add_parser(
        "compliance-report",
        help="judge every live instance with the policy pack, as a preview judges a change",
        description="For every project of the configured stacks: one Memorystore listing; each live instance "
        "turned into the gcp:redis/instance inputs that declare it (what codify writes) and judged by the policy "
        "pack over the Analyzer protocol, one pack process for the whole run, with the policy config of the "
        "stack that holds it (policies/config/<stack>.json) or, for an unmanaged instance, the pack's defaults. "
        "An instance whose owner is unknown (a stack that may hold it cannot be read) is listed as not judged. "
        + COMPLIANCE_EXIT_CODES_HELP
        + ".",
    )
    add_config(compliance)
    add_stacks(compliance, "only this stack's projects, its instances and the projects' unmanaged ones")
    add_report_output(compliance)
    compliance.set_defaults(func=run_compliance_report)


@interruptible()
def run_compliance_report(args: argparse.Namespace) -> int:
    # Imported here: the admin API client and the Analyzer's gRPC cost every other command's start-up otherwise.
    from redisguard.daemon.checks.compliance import run_compliance_check

    config = load_config(args.config)
    stacks = default_stack_names(config, args.stack)
    log.debug("effective config %s", config.redacted())
    report = run_compliance_check(config, stacks)
    emit_report(report, args.format, args.output)
    print_errors("compliance-report", report)
    return report.exit_code
