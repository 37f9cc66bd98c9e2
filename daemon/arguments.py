"""The command-line options several subcommands share, each with one help text: --config, --stack, --format/--output, --write."""

from __future__ import annotations

import argparse

from redisguard.daemon.config import DEFAULT_CONFIG_FILE
from redisguard.daemon.report import FORMATS


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
    """`--format` and `--output`, as the report commands render a report (commands.emit_report)."""
    parser.add_argument("--format", choices=list(FORMATS), default="table", help="output format (default: table)")
    parser.add_argument("--output", metavar="FILE", help="write the report to FILE instead of stdout (- for stdout)")


def add_write(parser: argparse.ArgumentParser) -> None:
    """`--write`: apply a proposed stack-file change (remediation.emit) instead of printing its diff."""
    parser.add_argument("--write", action="store_true", help="write the change into the stack file instead of printing it")
