"""Command-line entry point `redisguard`: the parser, assembled from each command family's module
(reports, check_config, demo, policy, remediation, daemon, and the emulator's own), and `main`.

The handlers pull in the Google clients, Pulumi's Automation API, gRPC and the daemon's server:
seconds of start-up that `redisguard --help`, `check-config` or `policy-check` must not pay for
another command's sake. So the family modules import only what their declarations need (the
config's defaults, the report formats) and each handler imports its engines when it runs
(the daemon's handler is named as `module:function`, options.Handler).
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any, NoReturn

from redisguard.core.links import DOCS_URL
from redisguard.daemon.cli import check_config, daemon, demo, policy, remediation, reports
from redisguard.daemon.cli.output import run_command

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


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


class _Version(argparse.Action):
    """argparse's `version` action, with the version looked up only when asked for (reading the
    installed distribution's metadata costs every other command's start-up a few milliseconds)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:  # noqa: A002 - argparse's name
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        print(f"{parser.prog} {version('redisguard')}")  # on stdout, as argparse's own
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    # The emulator's own options come from its part (light to import); one part's import error
    # names that part.
    from redisguard.emulator import command as emulator_command

    parser = _Parser(
        prog="redisguard",
        # README.md's first paragraph, word for word (tests/test_readme.py).
        description=(
            "redisguard keeps a fleet of Redis instances on Google Cloud Memorystore, managed with Pulumi, "
            "the way the team declared it, and tells you before one fills up. A CrossGuard policy pack blocks "
            "an unsafe instance before pulumi up (no AUTH, no TLS, no persistence or HA in production); a "
            "daemon then compares every stack's declared instances with what runs, every few minutes, finds "
            "instances nobody declared, reads their memory from Cloud Monitoring and estimates when each will "
            "be full, and serves it all as Prometheus metrics, alerts routed through Alertmanager and a "
            "status page. It works with any Pulumi program in any language (it reads the stack's state), and "
            "everything can be tried without a Google Cloud account, on a local emulator where each instance "
            "is a real redis-server."
        ),
        epilog=f"Documentation: {DOCS_URL} (every command's options: redisguard COMMAND --help).",
    )
    parser.add_argument("--version", action=_Version, help="show the program's version number and exit")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=LOG_LEVELS,
        help="log verbosity on stderr (default: %(default)s); also accepted after the command",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # In the order `--help` lists them.
    emulator_command.register(sub)
    reports.register(sub)
    check_config.register(sub)
    demo.register(sub)
    daemon.register(sub)
    policy.register(sub)
    remediation.register(sub)
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
    code = run_command(args)
    if argv is None and args.command == "policy-check":
        # The process ends now (the console script, `python -m`): its last garbage collections
        # would walk every object of Pulumi's, Google's and gRPC's modules, a quarter of a second
        # of a pre-commit hook; frozen, they are left to the operating system. Not for a caller
        # that passes argv (tests, in process), whose process goes on.
        gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(main())
