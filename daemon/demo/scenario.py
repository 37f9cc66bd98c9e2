"""The demo's scenario: start the monitor on loopback, have the pack judge a bad stack, change and fill the
fleet, show both reports and the alerts Alertmanager holds; every process it starts stopped however it ends."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from redisguard.core.errors import PermanentError, RedisguardError, TransientError
from redisguard.core.processes import die_with_parent_argv
from redisguard.core.reports import EXIT_DRIFT
from redisguard.daemon.config import RedisguardConfig, config_from_mapping
from redisguard.daemon.demo import alerting, console
from redisguard.daemon.demo.alerting import HeldAlert, Server
from redisguard.emulator.launcher import LaunchedEmulator, launch
from redisguard.emulator.memorystore.processes import free_port
from redisguard.program.config import StackConfig

T = TypeVar("T")

HOST = "127.0.0.1"
SCHEDULE = "2s"
"""The demo daemon's drift_live and memory schedules (shipped defaults: 5m and 1m)."""
RULE_FOR = "2s"
"""Every alert rule's `for:` in the demo (shipped: 5m to 1h)."""
INTERVAL = "1s"
"""Prometheus' scrape and evaluation interval in the demo (shipped: 30s)."""
FILL_RATIO = 0.85
"""How full the demo writes one instance: over the 0.8 warning, under the 0.9 critical."""
REPORT_TIMEOUT = 45.0
"""Seconds for the filled instance's memory to show in Cloud Monitoring's samples."""
ALERT_TIMEOUT = 60.0
"""Seconds for both alerts to reach Alertmanager: a check run, a scrape, two evaluations."""
EXPECTED_ALERTS = ("RedisguardDriftDetected", "RedisguardMemoryHigh")
DRIFTED = "redis-sidekiq"
FILLED = "redis-cache"

# A production stack that breaks the pack's mandatory rules (BASIC tier, no RDB, too small, no
# CMEK, the default network), as a pull request might propose it.
BAD_CLUSTER: dict[str, Any] = {
    "name": "redis-payments",
    "memory_gb": 1,
    "tier": "BASIC",
    "redis_version": "REDIS_7_2",
    "persistence_mode": "DISABLED",
    "labels": {"env": "production", "team": "payments", "service": "checkout"},
}
BAD_STACK_NAME = "production"


class StepFailed(RedisguardError):
    """A step of the scenario failed; the message names it."""


@dataclass
class Step:
    number: int
    title: str


STEPS = {
    "start": Step(1, "start the emulator, the daemon, Prometheus and Alertmanager"),
    "policy": Step(2, "the policy pack judges a stack that breaks the rules"),
    "change": Step(3, "change one instance out of band and fill another"),
    "reports": Step(4, "the drift report and the memory report"),
    "alerts": Step(5, "wait until Alertmanager holds the drift and memory alerts"),
}


@dataclass
class Monitor:
    """What step 1 started, stopped in reverse order by `stop`."""

    emulator: LaunchedEmulator | None = None
    servers: list[Server] = field(default_factory=list)
    daemon_url: str = ""
    prometheus: Server | None = None
    alertmanager: Server | None = None

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        if self.emulator is not None:
            self.emulator.stop()


@dataclass
class Demo:
    out: Console
    fleet: Path
    stack: StackConfig
    workdir: Path
    monitor: Monitor = field(default_factory=Monitor)
    _progress: Progress | None = None
    _task: Any = None

    # --- the display ------------------------------------------------------------------------

    @contextlib.contextmanager
    def step(self, key: str) -> Iterator[None]:
        """Run one step under the progress display; a failure becomes StepFailed naming the step."""
        step = STEPS[key]
        label = f"step {step.number}/{len(STEPS)} ({key}): {step.title}"
        self.out.print(f"\n[bold]{step.number}. {step.title}[/]")
        started = time.monotonic()
        progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=self.out, transient=True,
            disable=not self.out.is_terminal,  # a log gets each step's heading and its time, not a blank line
        )  # fmt: skip
        self._progress, self._task = progress, progress.add_task(label)
        try:
            with progress:
                yield
        except RedisguardError as exc:
            raise StepFailed(f"{label} failed: {exc}") from exc
        except OSError as exc:
            raise StepFailed(f"{label} failed: {exc}") from exc
        finally:
            self._progress = None
        self.out.print(f"   [green]done[/] in {time.monotonic() - started:.1f} s")

    def waiting(self, what: str) -> None:
        """Say what the running step waits for (the elapsed time beside it counts)."""
        if self._progress is not None:
            self._progress.update(self._task, description=what)

    def poll(self, what: str, condition: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
        """Poll `condition` until it returns a value, showing `what` in the progress display."""
        self.waiting(what)
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value is not None:
                return value
            if time.monotonic() > deadline:
                raise TransientError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(interval)

    # --- the steps --------------------------------------------------------------------------

    def start(self) -> None:
        # Every executable first: a missing one fails the step before anything runs.
        prometheus_bin, alertmanager_bin = alerting.tool("prometheus"), alerting.tool("prometheus-alertmanager")
        shipped = alerting.alerts_dir()
        names = [c.name for c in self.stack.clusters]
        self.waiting(f"the emulator starts {len(names)} redis-servers")
        emulator = start_emulator(
            self.fleet, self.workdir / "emulator", project=self.stack.project or "", region=self.stack.region or ""
        )
        self.monitor.emulator = emulator
        self.out.print(f"   emulator: Memorystore API {emulator.redis_endpoint}, Cloud Monitoring {emulator.monitoring_endpoint} "
                       f"({self.stack.stack} fleet: {', '.join(names)}, each a real redis-server)")  # fmt: skip

        port = free_port(HOST)
        config_path = self.workdir / "redisguard.yaml"
        config_path.write_text(yaml.safe_dump(self.daemon_settings(port)), encoding="utf-8")
        self.waiting("the daemon starts")
        daemon = _start_daemon(config_path, self.workdir, port)
        self.monitor.servers.append(daemon)
        self.monitor.daemon_url = daemon.url
        self.out.print(f"   daemon: {daemon.url} (drift_live and memory every {SCHEDULE}; config {config_path})")

        self.waiting("Alertmanager starts")
        am_config = alerting.derive_silent_alertmanager_config(shipped / "alertmanager.yml", self.workdir / "alertmanager.yml")
        am = alerting.start_alertmanager(alertmanager_bin, am_config, self.workdir, free_port(HOST))
        self.monitor.servers.append(am)
        self.monitor.alertmanager = am
        self.out.print(f"   Alertmanager: {am.url} (the shipped routes; receivers send nowhere in the demo)")

        self.waiting("Prometheus starts")
        rules = alerting.derive_rules(shipped / "rules.yml", self.workdir / "rules.yml", RULE_FOR)
        prom_config = alerting.derive_prometheus_config(
            shipped / "prometheus.yml", self.workdir / "prometheus.yml",
            daemon_target=daemon.url.removeprefix("http://"), alertmanager_target=am.url.removeprefix("http://"),
            rule_files=[rules], interval=INTERVAL,
        )  # fmt: skip
        prom = alerting.start_prometheus(prometheus_bin, prom_config, self.workdir, free_port(HOST))
        self.monitor.servers.append(prom)
        self.monitor.prometheus = prom
        self.out.print(f"   Prometheus: {prom.url} (the shipped rules and scrape job)")
        self.out.print(
            f"   [dim]demo settings, generated into {self.workdir} from the shipped alerts/rules.yml, prometheus.yml "
            f"and alertmanager.yml (never edited): every alert's for: {RULE_FOR}, scrape and evaluation every "
            f"{INTERVAL}, checks every {SCHEDULE}[/]"
        )

    def daemon_settings(self, port: int) -> dict[str, Any]:
        emulator = self.monitor.emulator
        assert emulator is not None
        return {
            "pulumi": {"work_dir": str(self.fleet.resolve().parent), "stacks": [self.stack.stack]},
            "gcp": {"redis_endpoint": emulator.redis_endpoint, "monitoring_endpoint": emulator.monitoring_endpoint},
            "server": {"listen": f"{HOST}:{port}"},
            # compliance off: the demo's steps and alerts are drift and memory (`compliance-report`
            # judges the same fleet on demand).
            "schedules": {"drift_pulumi": "off", "drift_live": SCHEDULE, "memory": SCHEDULE, "compliance": "off"},
        }

    def config(self) -> RedisguardConfig:
        return config_from_mapping(self.daemon_settings(0), source="demo config")

    def policy(self) -> None:
        folder = self.workdir / "policy"
        folder.mkdir()
        bad_stack = {"config": {"gcp:project": "redisguard-demo", "gcp:region": "europe-west1", "redis-fleet:redis": [BAD_CLUSTER]}}
        (folder / f"Pulumi.{BAD_STACK_NAME}.yaml").write_text(yaml.safe_dump(bad_stack, sort_keys=False), encoding="utf-8")
        (folder / "redisguard.yaml").write_text(
            yaml.safe_dump({"pulumi": {"work_dir": ".", "stacks": [BAD_STACK_NAME]}}), encoding="utf-8"
        )
        cluster = BAD_CLUSTER
        self.out.print(
            f"   stack {BAD_STACK_NAME} proposes {cluster['name']}: tier {cluster['tier']}, {cluster['memory_gb']} GB, "
            f"persistence {cluster['persistence_mode']}, no CMEK key, the default network"
        )
        self.out.print("   redisguard policy-check --stack production  [dim](the pack as `pulumi preview --policy-pack "
                       "policies` runs it, over the program under the SDK's mocks)[/]")  # fmt: skip
        self.waiting("the policy pack judges the stack")
        argv = [sys.executable, "-m", "redisguard.daemon.cli", "policy-check", "--config", "redisguard.yaml", "--format", "json"]
        result = subprocess.run(die_with_parent_argv(argv), cwd=folder, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != EXIT_DRIFT:
            tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise PermanentError(f"policy-check exited {result.returncode}, expected 2 (blocked): {tail}")
        report = json.loads(result.stdout)
        mandatory = [v for s in report["stacks"] for v in s["violations"] if v["level"] == "mandatory"]
        for v in mandatory:
            # The message's last line is the finding; the lines before it state the rule.
            finding = v["message"].strip().splitlines()[-1]
            self.out.print(f"   [red]mandatory[/] {v['policy']}: {finding}", highlight=False)
        advisory = report["summary"]["advisory_violations"]
        self.out.print(f"   BLOCKED: {len(mandatory)} mandatory violations ({advisory} advisory): `pulumi up` would refuse this stack")

    def change(self) -> None:
        emulator = self.monitor.emulator
        assert emulator is not None
        client = console.redis_client(emulator.redis_endpoint)
        path = f"projects/{emulator.project}/locations/{emulator.region}/instances/"
        self.waiting(f"changing {DRIFTED} through the Memorystore API")
        changes = console.change_out_of_band(client, path + DRIFTED)
        self.out.print(f"   {DRIFTED} changed behind Pulumi's back through the Memorystore API: {', '.join(changes)}")
        self.waiting(f"writing to {FILLED}'s redis-server")
        ratio = console.fill(client, path + FILLED, FILL_RATIO)
        self.out.print(f"   {FILLED} filled with real writes to {ratio:.0%} of its maxmemory (4 KiB values; AUTH read from the API, not shown)")

    def reports(self) -> None:
        from redisguard.daemon.checks.drift import run_scan
        from redisguard.daemon.checks.memory import run_memory_check
        from redisguard.daemon.reports import drift as drift_tables
        from redisguard.daemon.reports import memory as memory_tables

        config = self.config()
        stack = self.stack.stack
        self.out.print(f"   redisguard drift-report --engine live --stack {stack}")
        self.waiting("the live drift report")
        drift = run_scan(config, [stack], ["live"])
        drift_tables.print_table(drift, Console(soft_wrap=False))
        if drift.exit_code != EXIT_DRIFT:
            raise PermanentError(f"the drift report exited {drift.exit_code}, expected 2: the change was not found")

        def filled() -> Any:
            report = run_memory_check(config, [stack])
            levels = {i.instance_id: i.level for p in report.projects for i in p.instances}
            return report if levels.get(FILLED) in ("warning", "critical") else None

        self.out.print(f"   redisguard memory-report --stack {stack}")
        memory = self.poll(f"Cloud Monitoring to show {FILLED} over the warning level", filled, REPORT_TIMEOUT)
        memory_tables.print_table(memory, Console(soft_wrap=False))

    def alerts(self) -> list[HeldAlert]:
        am = self.monitor.alertmanager
        assert am is not None

        def held() -> list[HeldAlert] | None:
            try:
                alerts = alerting.held_alerts(am)
            except (OSError, ValueError):
                return None
            names = {a.name for a in alerts}
            missing = [n for n in EXPECTED_ALERTS if n not in names]
            self.waiting(f"Alertmanager holds {len(names & set(EXPECTED_ALERTS))} of {len(EXPECTED_ALERTS)}: waiting for {', '.join(missing)}"
                         if missing else "done")  # fmt: skip
            return alerts if not missing else None

        alerts = self.poll("Alertmanager to hold the drift and memory alerts", held, ALERT_TIMEOUT)
        self.out.print(f"   Alertmanager {am.url} holds {len(alerts)} alerts, as on-call sees them:")
        for alert in alerts:
            self.out.print(f"   [bold]{alert.name}[/] ({alert.severity}): {alert.summary}", highlight=False)
            self.out.print(f"      runbook: {alert.runbook_url}", highlight=False)
        return alerts

    def urls(self) -> None:
        m = self.monitor
        assert m.prometheus is not None and m.alertmanager is not None
        self.out.print(f"\n   status page   {m.daemon_url}/\n   metrics       {m.daemon_url}/metrics\n"
                       f"   Prometheus    {m.prometheus.url}/alerts\n   Alertmanager  {m.alertmanager.url}/#/alerts")  # fmt: skip


def start_emulator(
    fleet: Path, state_dir: Path, *, project: str, region: str, no_processes: bool = False
) -> LaunchedEmulator:
    """Start `redisguard emulator` with `fleet` on free loopback ports and wait for its ready line.

    SIGKILL reaches the emulator if this process dies, however it dies, so no emulator and,
    through the emulator's own wrapper, no redis-server outlives the demo. Its own session:
    a Ctrl-C on the terminal reaches the demo only, which then stops the emulator in order.
    """
    options = [
        "emulator",
        "--host", HOST, "--redis-api-port", "0", "--monitoring-port", "0",
        "--project", project, "--region", region,
        "--state-dir", str(state_dir), "--fleet", str(fleet),
    ]  # fmt: skip
    if no_processes:
        options.append("--no-processes")
    return launch(options, die_signal=signal.SIGKILL, new_session=True)


def _start_daemon(config_path: Path, workdir: Path, port: int) -> Server:
    """`redisguard daemon --config config_path`, ready when /metrics answers."""
    url = f"http://{HOST}:{port}"

    def answering() -> bool:
        try:
            with urllib.request.urlopen(url + "/metrics", timeout=2) as resp:
                return resp.status == 200
        except (OSError, urllib.error.HTTPError):
            return False

    argv = [sys.executable, "-m", "redisguard.daemon.cli", "daemon", "--config", str(config_path)]
    return alerting.start_server("the daemon", argv, url, workdir / "daemon.log", ready=answering)


def run(fleet: Path, stack: StackConfig, *, once: bool, out: Console) -> int:
    """The scenario; with `once`, exit 0 after step 5, else keep everything running until Ctrl-C."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="redisguard-demo-") as workdir:
        demo = Demo(out, fleet, stack, Path(workdir))
        try:
            for key in STEPS:
                with demo.step(key):
                    getattr(demo, key)()
            out.print(f"\nscenario done in {time.monotonic() - started:.1f} s")
            demo.urls()
            if not once:
                out.print("   running until Ctrl-C (every process the demo started is stopped then)")
                signal.pause()
        finally:
            demo.monitor.stop()
            out.print("stopped the emulator, the daemon, Prometheus and Alertmanager")
    return 0
