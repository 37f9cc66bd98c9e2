"""What several commands' parsers share: a handler named as `module:function` and imported when it
runs, and the options with one help text each (--config, --stack, the report formats)."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from redisguard.core.reports import FORMATS
from redisguard.daemon.config import DEFAULT_CONFIG_FILE

# The one exit-code rule of every command that proposes stack-file edits (codify, adopt,
# memory-report --recommend; remediation.plan.emit), said the same way in each --help.
PROPOSAL_EXIT_CODES_HELP = (
    "exit status: 0 nothing to propose, 2 a change proposed (its diff on stdout, or written with --write), "
    "1 an error (a check failed or the command could not run; an error wins); warnings and refusals on stderr "
    "do not change it"
)

# The type argparse's add_subparsers returns; private in argparse, so named once here.
Subcommands = argparse._SubParsersAction


@dataclass(frozen=True)
class Handler:
    """A subcommand's handler as `module:function` under `redisguard.`, imported when it runs
    (for a handler whose module is heavy to import, such as the daemon's server)."""

    target: str

    def resolve(self) -> Callable[[argparse.Namespace], int | None]:
        module, _, function = self.target.partition(":")
        handler: Callable[[argparse.Namespace], int | None] = getattr(
            importlib.import_module(f"redisguard.{module}"), function
        )
        return handler

    def __call__(self, args: argparse.Namespace) -> int | None:
        return self.resolve()(args)


def add_config(parser: argparse.ArgumentParser) -> None:
    """`--config FILE`: the redisguard config (REDISGUARD_* environment overrides apply to it)."""
    parser.add_argument("--config", metavar="FILE", help=f"config file (default: ./{DEFAULT_CONFIG_FILE})")


def add_stacks(parser: argparse.ArgumentParser, selects: str) -> None:
    """`--stack NAME`, repeatable, checked against pulumi.stacks (config.default_stack_names);
    `selects` says what one --stack limits the command to."""
    parser.add_argument(
        "--stack",
        metavar="NAME",
        action="append",
        help=f"{selects} (repeatable; default: every stack in pulumi.stacks)",
    )


def add_report_output(parser: argparse.ArgumentParser) -> None:
    """`--format` and `--output`, as the report commands render a report (output.emit_report)."""
    parser.add_argument("--format", choices=list(FORMATS), default="table", help="output format (default: table)")
    parser.add_argument("--output", metavar="FILE", help="write the report to FILE instead of stdout (- for stdout)")
