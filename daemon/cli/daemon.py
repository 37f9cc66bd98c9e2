"""`redisguard daemon`: its options; the handler is the service's own (daemon/service/app.py), imported when it runs."""

from __future__ import annotations

import argparse

from redisguard.daemon.cli.options import Handler, Subcommands, add_config


def register(sub: Subcommands) -> None:
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
    add_config(daemon)
    daemon.add_argument(
        "--once",
        action="store_true",
        help="run every enabled check once through the daemon's own code, print nothing but the log, and exit (no HTTP server)",
    )
    sharding = daemon.add_argument_group(
        "sharding",
        "Several daemons share a large fleet as kube-state-metrics' shards do: each checks the stacks and "
        "projects whose stable hash falls in its shard. Over the config's `sharding` keys.",
    )
    sharding.add_argument(
        "--shard",
        type=_shard,
        metavar="N|auto",
        help="this daemon's shard, 0 to total shards - 1; auto: the trailing -N of --pod or the hostname (a StatefulSet pod's ordinal)",
    )
    sharding.add_argument(
        "--total-shards",
        type=int,
        metavar="M",
        help="how many daemons share the fleet (a StatefulSet's replicas); the same in every shard",
    )
    sharding.add_argument(
        "--pod",
        metavar="NAME",
        help="the pod name whose trailing -N is the shard with --shard auto (default: the hostname)",
    )
    daemon.set_defaults(func=Handler("daemon.service.app:run_daemon"))


def _shard(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: allowed values: auto or a number from 0 to total shards - 1") from None
