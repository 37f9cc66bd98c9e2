"""The `redisguard emulator` command (placeholder until the emulator lands)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("emulator", help="run the local Memorystore + Cloud Monitoring emulator")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError
