"""`redisguard daemon`: its options; the handler is the service's own (daemon/service/app.py), imported when it runs."""

from __future__ import annotations

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
    daemon.set_defaults(func=Handler("daemon.service.app:run_daemon"))
