"""What every command shares on its way out: the report on stdout or in a file, a failed check's
line on stderr, the one-line error of a RedisguardError, and what an interrupt prints and returns."""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from redisguard.core.errors import PermanentError, RedisguardError
from redisguard.core.signals import Signalled, exit_on, exit_status

if TYPE_CHECKING:
    from redisguard.daemon.reports.compliance import ComplianceReport
    from redisguard.daemon.reports.drift import DriftReport
    from redisguard.daemon.reports.memory import MemoryReport

    Report = DriftReport | MemoryReport | ComplianceReport
Command = Callable[[argparse.Namespace], int | None]

NOT_WRITTEN = "running checks were stopped, no report written"


def run_command(args: argparse.Namespace) -> int:
    """The parsed command's handler (`args.func`); a RedisguardError is one line on stderr and its
    exit code, an interrupt outside an `interruptible` handler 130."""
    try:
        return int(args.func(args) or 0)
    except RedisguardError as exc:
        from redisguard.core.secrets import scrub, secret_values

        # Scrubbed: a message may quote a value that came from a credential-holding variable.
        print(f"redisguard {args.command}: error: {scrub(str(exc), secret_values())}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return exit_status(signal.SIGINT)
    except BrokenPipeError:
        # The reader went away (`redisguard check-config | head -1`): no traceback, and nothing more
        # written to the closed pipe when the interpreter flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return exit_status(signal.SIGPIPE)


def emit_report(report: Report, fmt: str, output: str | None, config_dir: Path | None = None) -> None:
    """Print the report, or write it to `output` (`-` is stdout, as for most CLI tools).

    JSON and Markdown travel (CI artifacts, PR comments): a drift report's paths are relative to
    `config_dir`, the config file's folder. The table is read where it ran and keeps them whole.
    """
    # Imported here: every command imports this module, and only the report commands render.
    from rich.console import Console

    from redisguard.daemon.reports import compliance, drift, memory

    if isinstance(report, drift.DriftReport):
        if config_dir is not None and fmt in ("json", "markdown"):
            report = report.with_paths_relative_to(config_dir)
        text, table = functools.partial(drift.render, report, fmt), functools.partial(drift.print_table, report)
    elif isinstance(report, compliance.ComplianceReport):
        text, table = functools.partial(compliance.render, report, fmt), functools.partial(compliance.print_table, report)
    else:
        text, table = functools.partial(memory.render, report, fmt), functools.partial(memory.print_table, report)
    if output and output != "-":
        try:
            Path(output).write_text(text(), encoding="utf-8")
        except OSError as exc:
            raise PermanentError(f"cannot write the report to {output}: {exc.strerror}") from exc
        return
    if fmt == "table":
        table(Console(soft_wrap=False))
    else:
        sys.stdout.write(text())
        sys.stdout.flush()


def print_errors(command: str, report: Report) -> None:
    """One line on stderr per failed check (a stack's engine, a project's memory read or compliance check)."""
    from redisguard.daemon.reports import drift

    if isinstance(report, drift.DriftReport):
        for s in report.stacks:
            if s.status == "error":
                print(f"redisguard {command}: error: stack {s.stack} ({s.engine}): {s.error}", file=sys.stderr)
    else:
        for p in report.projects:
            if p.status == "error":
                print(f"redisguard {command}: error: project {p.project_id}: {p.error}", file=sys.stderr)


def interruptible(what: str = NOT_WRITTEN) -> Callable[[Command], Command]:
    """A handler run with SIGTERM unwinding as Ctrl-C does; after either, one line on stderr says
    `what` happened and the exit status says which signal (128 + its number).

    The report of the checks that finished is not printed after an interrupt: a partial report
    would read as an answer.
    """

    def wrap(body: Command) -> Command:
        @functools.wraps(body)
        def run(args: argparse.Namespace) -> int | None:
            try:
                with exit_on(signal.SIGTERM):
                    return body(args)
            except KeyboardInterrupt:
                _print_interrupted(args.command, signal.SIGINT, what)
                return exit_status(signal.SIGINT)
            except Signalled as exc:
                _print_interrupted(args.command, exc.signal, what)
                raise

        return run

    return wrap


def _print_interrupted(command: str, signum: signal.Signals, what: str) -> None:
    print(f"redisguard {command}: interrupted by {signum.name}; {what}", file=sys.stderr, flush=True)
