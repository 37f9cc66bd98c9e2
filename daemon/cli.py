"""Command-line entry point `redisguard`: builds the parser and dispatches to each part's command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any, NoReturn

from redisguard.core.errors import RedisguardError

log = logging.getLogger(__name__)

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


def build_parser() -> argparse.ArgumentParser:
    # Imported here so `redisguard --help` stays fast and one part's import error
    # names that part.
    from redisguard.daemon import commands as drift_commands
    from redisguard.daemon import remediation
    from redisguard.daemon import service as daemon_service
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
    drift_commands.register(sub)
    daemon_service.register(sub)
    drift_commands.register_policy_check(sub)
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
