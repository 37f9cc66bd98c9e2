"""Command-line entry point `redisguard`: the parser (every subcommand's options and help texts) and
the dispatch to each subcommand's handler, imported only when that subcommand runs.

The handlers' modules pull in the Google clients, Pulumi's Automation API, gRPC and the daemon's
server: seconds of start-up that `redisguard --help` or `policy-check` must not pay for another
command's sake. So this module imports only what the declarations need (the config's defaults and
the report formats), and each handler is named as `module:function` (Handler).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, NoReturn

from redisguard.core.errors import RedisguardError
from redisguard.daemon.config import DEFAULT_CONFIG_FILE
from redisguard.daemon.reports.drift import FORMATS

log = logging.getLogger(__name__)

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]

DRIFT_EXIT_CODES_HELP = (
    "exit status: 0 all stacks in sync, 2 drift found, 1 a check failed or the command could not run "
    "(a bad argument or config too; an error wins over drift)"
)
MEMORY_EXIT_CODES_HELP = (
    "exit status: 0 every instance below its thresholds, 2 a memory threshold crossed, 1 a project's check "
    "failed or the command could not run (a bad argument or config too; an error wins over a threshold)"
)
POLICY_EXIT_CODES_HELP = (
    "exit status: 0 no mandatory violation, 2 a mandatory violation (the preview would be blocked), "
    "1 a stack could not be checked (an error wins over a violation)"
)
REMEDIATION_EXIT_CODES_HELP = (
    "exit status: 0 nothing to change (or the change was written with --write), 2 a change is proposed "
    "(the diff on stdout), 1 the command could not run"
)
DEFAULT_TARGET_RATIO = 0.7
DEFAULT_HORIZON = "30d"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors and exit status 1.

    argparse exits 2 on a usage error, but 2 is what `drift-report` returns for "drift found"
    (the `terraform plan -detailed-exitcode` convention), so a CI job would read a typo in
    `--engine` as drift. Subcommand parsers (every part's, the emulator's too) inherit this class,
    and with it allow_abbrev=False, through add_subparsers.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviations (`--engin live` as `--engine`): a prefix that works today breaks
        # silently once a second option shares it, in a CI script nobody rereads.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


@dataclass(frozen=True)
class Handler:
    """A subcommand's handler as `module:function` under `redisguard.`, imported when it runs."""

    target: str

    def resolve(self) -> Callable[[argparse.Namespace], int | None]:
        module, _, function = self.target.partition(":")
        handler: Callable[[argparse.Namespace], int | None] = getattr(
            importlib.import_module(f"redisguard.{module}"), function
        )
        return handler

    def __call__(self, args: argparse.Namespace) -> int | None:
        return self.resolve()(args)


# --- options several subcommands share, each with one help text --------------------------------


def _add_config(parser: argparse.ArgumentParser) -> None:
    """`--config FILE`: the redisguard config (REDISGUARD_* environment overrides apply to it)."""
    parser.add_argument("--config", metavar="FILE", help=f"config file (default: ./{DEFAULT_CONFIG_FILE})")


def _add_stacks(parser: argparse.ArgumentParser, selects: str) -> None:
    """`--stack NAME`, repeatable, checked against pulumi.stacks (config.default_stack_names);
    `selects` says what one --stack limits the command to."""
    parser.add_argument(
        "--stack",
        metavar="NAME",
        action="append",
        help=f"{selects} (repeatable; default: every stack in pulumi.stacks)",
    )


def _add_report_output(parser: argparse.ArgumentParser) -> None:
    """`--format` and `--output`, as the report commands render a report (commands.emit_report)."""
    parser.add_argument("--format", choices=list(FORMATS), default="table", help="output format (default: table)")
    parser.add_argument("--output", metavar="FILE", help="write the report to FILE instead of stdout (- for stdout)")


def _add_write(parser: argparse.ArgumentParser) -> None:
    """`--write`: apply a proposed stack-file change (remediation.emit) instead of printing its diff."""
    parser.add_argument("--write", action="store_true", help="write the change into the stack file instead of printing it")


def _program_dir() -> Path:
    import redisguard.program

    return Path(redisguard.program.__file__).resolve().parent


# --- the subcommands ---------------------------------------------------------------------------


def _add_reports(sub: argparse._SubParsersAction) -> None:
    """drift-report, memory-report, check-config and demo (daemon/cli/reports.py)."""
    drift = sub.add_parser(
        "drift-report",
        help="report drift between the stack config, the Pulumi state and the live instances",
        description="Check each configured stack for drift and print one report. The pulumi engine "
        "runs `pulumi refresh --preview-only` through the Automation API (state is never written); "
        "the live engine compares the declared clusters with the instances the Memorystore API lists. "
        + DRIFT_EXIT_CODES_HELP
        + ".",
    )
    _add_config(drift)
    _add_stacks(drift, "check only this stack")
    drift.add_argument(
        "--engine",
        choices=["pulumi", "live", "all"],
        default="all",
        help="pulumi: refresh preview against the state; live: declared config against the API; all: both (default)",
    )
    _add_report_output(drift)
    drift.set_defaults(func=Handler("daemon.cli.reports:run_drift_report"))

    memory = sub.add_parser(
        "memory-report",
        help="report each instance's memory from Cloud Monitoring and flag those near their limits",
        description="For every project of the configured stacks: one Memorystore listing and one Cloud "
        "Monitoring request per memory metric, read from each instance's primary node. Shows used, "
        "maxmemory and capacity bytes, the usage and system memory ratios, a time-to-full estimate over "
        "thresholds.trend_window, and flags instances at or above thresholds.memory_warning_ratio and "
        "memory_critical_ratio; instances no stack declares are listed as unmanaged. "
        + MEMORY_EXIT_CODES_HELP
        + ".",
    )
    _add_config(memory)
    _add_stacks(memory, "only this stack's projects, its instances and the projects' unmanaged ones")
    _add_report_output(memory)
    # --recommend (daemon/remediation/recommend.py)
    memory.add_argument(
        "--recommend",
        action="store_true",
        help="propose memory_gb changes in the stack files (a unified diff on stdout; the report then goes only to "
        "--output): for instances over thresholds.memory_warning_ratio or filling up within --horizon, the smallest "
        "size that keeps usage under --target-ratio through the horizon; for instances far below, a smaller size; "
        "within Memorystore's limits, the pack's memorystore-memory-bounds and memorystore-stack-memory-budget",
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
    memory.set_defaults(func=Handler("daemon.cli.reports:run_memory_report"))

    check = sub.add_parser(
        "check-config",
        help="validate redisguard.yaml and the stack files it points at",
        description="Validate the config file (with REDISGUARD_* environment overrides applied) and "
        "every Pulumi.<stack>.yaml it names; list every problem at once. Exit 0 valid, 1 invalid.",
    )
    _add_config(check)
    check.set_defaults(func=Handler("daemon.cli.reports:run_check_config"))

    demo = sub.add_parser(
        "demo",
        help="start the emulator with the staging fleet, drift one instance and report it",
        description="Start the local emulator with the staging fleet on free ports in a temporary "
        "state folder, change one instance behind Pulumi's back through the Memorystore API, run the "
        "live drift report against it and stop the emulator. Exits 0 when the demo ran (the drift "
        "report's own exit code 2 is expected there).",
    )
    demo.add_argument(
        "--fleet",
        metavar="FILE",
        default=str(_program_dir() / "Pulumi.staging.yaml"),
        help="stack file whose clusters the emulator starts with, named Pulumi.<stack>.yaml as Pulumi "
        "names it (the report looks for the stack's file by that name; default: the staging stack)",
    )
    demo.add_argument(
        "--format",
        choices=list(FORMATS),
        default="table",
        help="report format (default: table); with json or markdown stdout holds only the report and "
        "the narration goes to stderr",
    )
    demo.add_argument(
        "--no-processes",
        action="store_true",
        help="run the emulator without redis-server processes (API only)",
    )
    demo.set_defaults(func=Handler("daemon.cli.reports:run_demo"))


def _add_daemon(sub: argparse._SubParsersAction) -> None:
    """The daemon (daemon/service/app.py)."""
    daemon = sub.add_parser(
        "daemon",
        help="run the checks on their schedules and serve /metrics, /healthz, /report",
        description="Run the enabled checks (schedules.drift_pulumi, drift_live, memory) on their "
        "schedules and serve Prometheus metrics on server.listen. SIGHUP re-reads the config (an "
        "invalid one is refused and the running one kept); SIGTERM or SIGINT stops the checks, kills "
        "running pulumi processes and exits 0. With --once: every enabled check runs once and the "
        "daemon exits 0 all fine, 2 drift found or a memory threshold crossed, 1 a check failed "
        "(or the config is invalid).",
    )
    _add_config(daemon)
    daemon.add_argument(
        "--once",
        action="store_true",
        help="run every enabled check once through the daemon's own code, print nothing but the log, and exit (no HTTP server)",
    )
    daemon.set_defaults(func=Handler("daemon.service.app:run_daemon"))


def _add_policy_check(sub: argparse._SubParsersAction) -> None:
    """`policy-check`: the pack (policies/check.py) over the program's resources under the SDK's mocks."""
    parser = sub.add_parser(
        "policy-check",
        help="run the policy pack on each stack's resources, without a cloud or a Pulumi CLI",
        description="Build each stack's resources from the program under the Pulumi SDK's mocks and have "
        "the policy pack judge them as `pulumi preview --policy-pack` does (the pack started as "
        "Pulumi's Python host starts it, over the Analyzer protocol). For pre-commit and CI before "
        "any preview. " + POLICY_EXIT_CODES_HELP + ".",
    )
    parser.add_argument("--config", metavar="FILE", help="redisguard config file for pulumi.work_dir and "
                        "pulumi.stacks (default: ./redisguard.yaml if it exists, else program/ with "
                        "staging and production)")  # fmt: skip
    _add_stacks(parser, "check only this stack")
    parser.add_argument("--policy-config", metavar="FILE", type=Path,
                        help="--policy-pack-config file for every checked stack (default: "
                        "policies/config/<stack>.json where it exists, else the pack's defaults)")  # fmt: skip
    parser.add_argument("--format", choices=list(FORMATS), default="table", help="output format (default: %(default)s)")
    parser.set_defaults(func=Handler("daemon.cli.policy:run_policy_check"))


def _add_remediation(sub: argparse._SubParsersAction) -> None:
    """codify and adopt (daemon/remediation/codify.py)."""
    codify = sub.add_parser(
        "codify",
        help="propose stack-file entries that bring hand-made (unmanaged) instances under Pulumi",
        description="For each instance of the watched projects that no stack declares (or the ones --instance "
        "names), propose a cluster entry in the original flat format that declares exactly what runs, with "
        "`import_existing: true` so the next `pulumi up` adopts the instance instead of creating one. Prints a "
        "unified diff of Pulumi.<stack>.yaml; --write applies it (comments and order kept). Nothing changes in "
        "the cloud. " + REMEDIATION_EXIT_CODES_HELP + ".",
    )
    _add_config(codify)
    codify.add_argument(
        "--stack", metavar="NAME", help="the stack whose file gets the entries (required when several stacks watch the project)"
    )
    codify.add_argument("--instance", metavar="NAME", action="append", help="only this instance id (repeatable)")
    _add_write(codify)
    codify.set_defaults(func=Handler("daemon.remediation.codify:run_codify"))

    adopt = sub.add_parser(
        "adopt",
        help="propose stack-file changes that accept live drift (the live value becomes the declared one)",
        description="For each `changed` property the live drift engine finds (or the one --resource/--path "
        "names), rewrite the declared value to the live one. Properties the flat config cannot express, or "
        "whose live value breaks a secure default or a mandatory policy, are listed with the reason and left "
        "alone (revert those with `pulumi up`). Prints a unified diff; --write applies it. Nothing changes in "
        "the cloud. " + REMEDIATION_EXIT_CODES_HELP + ".",
    )
    _add_config(adopt)
    _add_stacks(adopt, "only this stack")
    adopt.add_argument("--resource", metavar="NAME", help="only this cluster")
    adopt.add_argument("--path", metavar="PATH", help="only this property path, as the drift report names it (e.g. memorySizeGb)")
    _add_write(adopt)
    adopt.set_defaults(func=Handler("daemon.remediation.codify:run_adopt"))


def build_parser() -> argparse.ArgumentParser:
    # The emulator's own options come from its part (light to import); one part's import error
    # names that part.
    from redisguard.emulator import command as emulator_command

    parser = _Parser(
        prog="redisguard",
        description="Keep Memorystore Redis fleets managed with Pulumi in line with their "
        "declared config: drift reports, the policy pack without a cloud, and a local emulator.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('redisguard')}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=LOG_LEVELS,
        help="log verbosity on stderr (default: %(default)s); also accepted after the command",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    emulator_command.register(sub)
    _add_reports(sub)
    _add_daemon(sub)
    _add_policy_check(sub)
    _add_remediation(sub)
    # `redisguard drift-report --log-level DEBUG` works as well as before the command. SUPPRESS:
    # a subcommand that is not given it leaves the top-level value (or default) alone.
    for command in sub.choices.values():
        command.add_argument(
            "--log-level", default=argparse.SUPPRESS, choices=LOG_LEVELS, help="log verbosity on stderr (default: INFO)"
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except RedisguardError as exc:
        from redisguard.core.secrets import scrub, secret_values

        # Scrubbed: a message may quote a value that came from a credential-holding variable.
        print(f"redisguard {args.command}: error: {scrub(str(exc), secret_values())}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
