"""Prometheus and Alertmanager as the demo runs them: configs derived from the shipped alerts/ files, children on loopback.

The shipped files are read and never written: the demo's variants (short `for`, one-second
intervals, loopback targets, receivers that deliver nowhere) go to the demo's temporary folder.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from redisguard.core.errors import ConfigError, PermanentError, TransientError
from redisguard.core.processes import die_with_parent_argv, kill_group

START_TIMEOUT = 30.0
"""Seconds for Prometheus or Alertmanager to answer /-/ready on a busy machine."""
STOP_GRACE = 10.0
"""Seconds between SIGTERM and SIGKILL: neither server keeps state the demo needs."""
INSTALL_HINT = "`./dev demo` installs Debian's prometheus and prometheus-alertmanager"


def alerts_dir() -> Path:
    """The checkout's alerts/ folder (beside program/), which the demo derives its configs from."""
    import redisguard.program

    folder = Path(redisguard.program.__file__).resolve().parent.parent / "alerts"
    if not (folder / "rules.yml").is_file():
        raise ConfigError(f"{folder}: the demo reads the shipped alerts/rules.yml and prometheus.yml; run it from a checkout")
    return folder


def tool(name: str) -> str:
    """The path of a Prometheus tool on PATH, or an error that says how to get it."""
    path = shutil.which(name)
    if path is None:
        raise PermanentError(f"{name} is not on PATH: {INSTALL_HINT}")
    return path


def _load(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}") from exc


def derive_rules(shipped: Path, out: Path, for_duration: str) -> Path:
    """The shipped rules with every `for` replaced by `for_duration`, written to `out`."""
    doc = _load(shipped)
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = for_duration
    out.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return out


def derive_prometheus_config(
    shipped: Path,
    out: Path,
    *,
    daemon_target: str,
    alertmanager_target: str,
    rule_files: Sequence[Path],
    interval: str = "1s",
) -> Path:
    """The shipped prometheus.yml with loopback targets, `interval` for scrapes and evaluations, and `rule_files`."""
    doc = _load(shipped)
    doc["global"]["scrape_interval"] = interval
    doc["global"]["evaluation_interval"] = interval
    doc["rule_files"] = [str(p) for p in rule_files]
    for am in doc["alerting"]["alertmanagers"]:
        am["static_configs"] = [{"targets": [alertmanager_target]}]
    jobs = [job for job in doc["scrape_configs"] if job["job_name"] == "redisguard"]
    if len(jobs) != 1:
        raise ConfigError(f"{shipped}: expected exactly one scrape job named redisguard, found {len(jobs)}")
    jobs[0]["static_configs"] = [{"targets": [daemon_target]}]
    jobs[0]["scrape_interval"] = interval  # the shipped job sets no scrape_timeout: it follows the interval
    out.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return out


def derive_silent_alertmanager_config(shipped: Path, out: Path, *, group_wait: str = "1s") -> Path:
    """The shipped alertmanager.yml with its routes and inhibitions, every receiver delivering nowhere.

    The demo shows what Alertmanager holds; it has no Slack, PagerDuty or webhook secrets to send with.
    """
    doc = _load(shipped)
    doc.pop("global", None)  # the Slack URL and other settings read from secret files
    doc["route"]["group_wait"] = group_wait
    doc["receivers"] = [{"name": receiver["name"]} for receiver in doc["receivers"]]
    out.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return out


@dataclass
class Server:
    """A Prometheus or Alertmanager child on a loopback port, in its own process group."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def get_json(self, path: str, timeout: float = 10) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
            return json.loads(resp.read())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, grace: float = STOP_GRACE) -> int:
        """SIGTERM its group, SIGKILL what is left after `grace` s; its exit status."""
        if self.process.poll() is None:
            kill_group(self.process, grace)
        return self.process.wait()


def start_server(
    name: str,
    argv: Sequence[str],
    url: str,
    log_path: Path,
    *,
    timeout: float = START_TIMEOUT,
    ready: Callable[[], bool] | None = None,
) -> Server:
    """Start `argv` (SIGKILLed if this process dies, however it dies) and wait until GET url/-/ready is 200."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            die_with_parent_argv(list(argv), signal.SIGKILL), stdout=log, stderr=log, start_new_session=True
        )
    server = Server(name, process, url, log_path)

    def answering() -> bool:
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=2) as resp:
                return resp.status == 200
        except urllib.error.HTTPError as exc:  # 503 while it loads
            exc.close()
            return False
        except OSError:
            return False

    check = ready or answering
    deadline = time.monotonic() + timeout
    try:
        while not check():
            if process.poll() is not None:
                tail = server.log().strip().splitlines()[-1:] or ["see its log"]
                raise PermanentError(f"{name} exited with status {process.returncode} before it was ready: {tail[0]}")
            if time.monotonic() > deadline:
                raise TransientError(f"{name} was not ready within {timeout:g}s (log: {log_path})")
            time.sleep(0.1)
    except BaseException:
        server.stop()
        raise
    return server


def start_alertmanager(executable: str, config: Path, workdir: Path, port: int, *, log_level: str = "info") -> Server:
    # --cluster.listen-address empty: no gossip port for a single instance.
    flags = {"storage.path": workdir / "alertmanager-data", "cluster.listen-address": ""}
    return _start_tool("alertmanager", executable, config, workdir, port, flags, log_level)


def start_prometheus(executable: str, config: Path, workdir: Path, port: int, *, log_level: str = "info") -> Server:
    flags = {"storage.tsdb.path": workdir / "prometheus-data"}
    return _start_tool("prometheus", executable, config, workdir, port, flags, log_level)


def _start_tool(
    name: str, executable: str, config: Path, workdir: Path, port: int, flags: dict[str, Any], log_level: str
) -> Server:
    """Prometheus or Alertmanager (the same flag conventions) on 127.0.0.1:`port`, logging to workdir/NAME.log."""
    argv = [
        executable,
        f"--config.file={config}",
        *(f"--{flag}={value}" for flag, value in flags.items()),
        f"--web.listen-address=127.0.0.1:{port}",
        f"--log.level={log_level}",
    ]
    return start_server(name, argv, f"http://127.0.0.1:{port}", workdir / f"{name}.log")


@dataclass(frozen=True)
class HeldAlert:
    """An alert as on-call sees it in Alertmanager."""

    name: str
    severity: str
    summary: str
    runbook_url: str
    labels: dict[str, str]


def held_alerts(alertmanager: Server) -> list[HeldAlert]:
    """The active alerts Alertmanager holds (API v2), inhibited and silenced ones left out."""
    raw = alertmanager.get_json("/api/v2/alerts?active=true&silenced=false&inhibited=false")
    return sorted(
        (
            HeldAlert(
                name=a["labels"].get("alertname", ""),
                severity=a["labels"].get("severity", ""),
                summary=a.get("annotations", {}).get("summary", ""),
                runbook_url=a.get("annotations", {}).get("runbook_url", ""),
                labels=dict(a["labels"]),
            )
            for a in raw
        ),
        key=lambda a: (a.name, a.summary),
    )
