"""End to end with the real daemon, real processes on loopback: the emulator with the staging fleet, the real
`redisguard daemon` watching it, Prometheus scraping the daemon with the shipped rules,
Alertmanager with the shipped routes, and the notifications arriving at the test.

The configs are generated from the shipped files (tests/fixtures/alerting.py): every `for`
shortened, one-second intervals, loopback addresses, secrets in temporary files. The tests
run in order on one set of processes: memory, drift, compliance, then the daemon is stopped. How the three
receivers format a page is asserted in tests/e2e/test_alerts.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from google.cloud import redis_v1
from google.protobuf import field_mask_pb2
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.alerting import (
    DASHBOARD,
    PROMETHEUS_MADE,
    SHORT_FOR,
    WEBHOOK_TOKEN,
    Notification,
    NotificationSink,
    Server,
    dashboard_metric_names,
    derive_prometheus_config,
    derive_rules,
    firing,
    loaded_rules,
    shipped_alerts,
    start_prometheus,
    start_routed_alertmanager,
    start_sink,
)
from tests.fixtures.daemon import DaemonHandle, daemon_config, launch_daemon
from tests.fixtures.emulator import EmulatorHandle, start_emulator
from tests.fixtures.processes import free_port, wait_for
from tests.fixtures.repo import STAGING

pytestmark = pytest.mark.slow


ARRIVAL_TIMEOUT = 120.0
"""Seconds for a change to become a notification: the daemon's next check run (every 2s), the
Monitoring alignment it reads, a scrape, two rule evaluations and Alertmanager's group_wait."""
FILLED = "redis-cache"
DRIFTED = "redis-sessions"
HAND_MADE = "console-made"


@dataclass
class AlertingStack:
    emulator: EmulatorHandle
    daemon: DaemonHandle
    daemon_target: str
    prometheus: Server
    alertmanager: Server
    sink: NotificationSink


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertingStack]:
    workdir = tmp_path_factory.mktemp("alerting-e2e")
    started: list[Any] = []
    try:
        emulator = start_emulator(workdir, STAGING)
        started.append(emulator)
        port = free_port()
        # drift_pulumi stays off (it needs the pulumi CLI and a backend): the live engine drifts here.
        config = daemon_config(emulator, port, schedules={"drift_live": "2s", "memory": "2s", "compliance": "5s"})
        daemon = DaemonHandle(launch_daemon(workdir, config), port, workdir / "daemon.yaml", workdir / "daemon.log")
        started.append(daemon)
        wait_for(lambda: daemon.get("/metrics", timeout=2)[0] == 200, timeout=30, what="the daemon's /metrics")
        sink = start_sink()
        started.append(sink)
        alertmanager = start_routed_alertmanager(workdir, sink)
        started.append(alertmanager)
        daemon_target = f"127.0.0.1:{port}"
        prom_config = derive_prometheus_config(
            workdir / "prometheus.yml",
            daemon_target=daemon_target,
            alertmanager_target=alertmanager.url.removeprefix("http://"),
            rule_files=[derive_rules(workdir / "rules.yml", SHORT_FOR)],
        )
        prometheus = start_prometheus(prom_config, workdir)
        started.append(prometheus)
        yield AlertingStack(emulator, daemon, daemon_target, prometheus, alertmanager, sink)
    finally:
        for thing in reversed(started):
            if isinstance(thing, NotificationSink):
                thing.close()
            else:
                thing.stop()


def webhook_alert(
    stack: AlertingStack, alertname: str, what: str, /, **labels: str
) -> tuple[Notification, dict[str, Any]]:
    """The first webhook notification carrying a firing `alertname` with `labels`, and that alert."""
    match = firing(alertname, **labels)
    note = stack.sink.wait_for(
        lambda n: any(match(a) for a in n.body["alerts"]), path="/webhook", timeout=ARRIVAL_TIMEOUT, what=what
    )
    return note, next(a for a in note.body["alerts"] if match(a))


def scrape(daemon: DaemonHandle) -> str:
    status, text = daemon.get("/metrics")
    assert status == 200, text
    return text


def test_the_generated_configs_keep_the_shipped_rules_and_routes(stack: AlertingStack) -> None:
    loaded, durations = loaded_rules(stack.prometheus)
    assert loaded == shipped_alerts()
    assert durations == {2.0}

    # Prometheus scrapes the real daemon as job redisguard.
    def scraped() -> list[dict[str, Any]]:
        targets = stack.prometheus.get_json("/api/v1/targets")["data"]["activeTargets"]
        return targets if targets and targets[0]["health"] == "up" else []

    (target,) = wait_for(scraped, timeout=30, what="Prometheus scraping the daemon")
    assert target["labels"] == {"job": "redisguard", "instance": stack.daemon_target}


def test_filling_an_instance_makes_memory_high_arrive_with_its_labels(stack: AlertingStack) -> None:
    emulator = stack.emulator
    # About 85% of maxmemory with real writes: over the 0.8 warning, under the 0.9 critical.
    ratio = emulator.fill(FILLED, 0.85)
    assert 0.85 <= ratio < 0.88

    labels = {"project_id": emulator.project, "region": emulator.region, "instance_id": FILLED}
    note, alert = webhook_alert(stack, "RedisguardMemoryHigh", f"RedisguardMemoryHigh for {FILLED}", **labels)
    assert alert["labels"] == {
        "alertname": "RedisguardMemoryHigh",
        "severity": "warning",
        "job": "redisguard",
        "instance": stack.daemon_target,
        **labels,
    }
    assert alert["annotations"]["summary"].startswith(f"Redis {FILLED} uses 8")
    assert f"(project {emulator.project}, region {emulator.region})" in alert["annotations"]["description"]
    assert alert["annotations"]["runbook_url"].endswith("/docs/runbooks.md#redisguardmemoryhigh")
    # The webhook's bearer token came from the secret file the config names.
    assert note.headers["authorization"] == f"Bearer {WEBHOOK_TOKEN}"
    assert note.body["groupLabels"] == {"alertname": "RedisguardMemoryHigh", **labels}

    # A warning goes to chat (Slack's format, from its secret URL), and pages nobody.
    chat = stack.sink.wait_for(
        lambda n: (
            n.body["attachments"][0]["title"].endswith("RedisguardMemoryHigh")
            and FILLED in n.body["attachments"][0]["text"]
        ),
        path="/slack",
        timeout=ARRIVAL_TIMEOUT,
        what="RedisguardMemoryHigh in Slack",
    )
    assert chat.body["channel"] == "#redis-alerts"
    assert f"*warning*: Redis {FILLED} uses 8" in chat.body["attachments"][0]["text"]
    assert not [n for n in stack.sink.notifications("/pagerduty") if FILLED in json.dumps(n.body)]


def test_an_out_of_band_change_makes_drift_detected_arrive_naming_the_resource(stack: AlertingStack) -> None:
    emulator = stack.emulator
    client = emulator.redis_client()
    name = emulator.instance_name(DRIFTED)
    before = client.get_instance(name=name)
    configs = dict(before.redis_configs)
    configs["maxmemory-policy"] = "allkeys-lfu"  # declared: volatile-lru
    client.update_instance(
        update_mask=field_mask_pb2.FieldMask(paths=["redis_configs"]),
        instance=redis_v1.Instance(name=name, redis_configs=configs),
    ).result(timeout=60)

    _, alert = webhook_alert(stack, "RedisguardDriftDetected", "RedisguardDriftDetected for staging", stack="staging")
    assert alert["labels"] == {
        "alertname": "RedisguardDriftDetected",
        "severity": "warning",
        "stack": "staging",
        "engine": "live",
        "job": "redisguard",
        "instance": stack.daemon_target,
    }
    description = alert["annotations"]["description"]
    # Prometheus filled the list from redisguard_drifted_resource when it fired.
    assert f"{DRIFTED} (changed)" in description, description
    assert f"http://{stack.daemon_target}/report?format=markdown" in description


def test_a_production_instance_breaking_a_mandatory_policy_makes_the_compliance_alert_arrive(stack: AlertingStack) -> None:
    """An instance made by hand in the console, labelled production, without AUTH: the pack judges it
    with its defaults (no stack holds it), production by its label, and the page names it."""
    emulator = stack.emulator
    emulator.redis_client().create_instance(
        parent=emulator.parent(),
        instance_id=HAND_MADE,
        instance=redis_v1.Instance(tier="BASIC", memory_size_gb=1, labels={"env": "production"}),
    ).result(timeout=60)

    labels = {"instance_id": HAND_MADE, "policy": "memorystore-auth-required"}
    _, alert = webhook_alert(stack, "RedisguardPolicyViolationInProduction", f"the compliance alert for {HAND_MADE}", **labels)
    assert alert["labels"] == {
        "alertname": "RedisguardPolicyViolationInProduction",
        "severity": "critical",
        "project_id": emulator.project,
        "region": emulator.region,
        # No `stack`: no stack holds it, and Prometheus drops an empty label.
        "level": "mandatory",
        "production": "true",
        "job": "redisguard",
        "instance": stack.daemon_target,
        **labels,
    }
    assert alert["annotations"]["summary"] == (
        f"Instance {HAND_MADE} (unmanaged) breaks mandatory policy memorystore-auth-required in production."
    )
    assert f"http://{stack.daemon_target}/report?format=markdown" in alert["annotations"]["description"]
    assert alert["annotations"]["runbook_url"].endswith("/docs/runbooks.md#redisguardpolicyviolationinproduction")


def test_the_dashboard_reads_only_metrics_the_daemon_serves(stack: AlertingStack) -> None:
    families = list(text_string_to_metric_families(scrape(stack.daemon)))
    served = {f.name for f in families} | {s.name for f in families for s in f.samples}
    served |= {f.name + "_total" for f in families if f.type == "counter"}
    dash = json.loads(DASHBOARD.read_text())
    names = dashboard_metric_names(dash)
    missing = names - served - PROMETHEUS_MADE
    assert not missing, f"the dashboard queries metrics the daemon does not serve: {sorted(missing)}"
    # The drift and memory panels have something to show by now.
    assert {"redisguard_drifted_resource", "redisguard_memory_usage_ratio"} <= {
        s.name for f in families for s in f.samples
    }


def test_stopping_the_daemon_makes_daemon_down_arrive_and_page(stack: AlertingStack) -> None:
    assert stack.daemon.stop() == 0
    _, alert = webhook_alert(stack, "RedisguardDaemonDown", "RedisguardDaemonDown", instance=stack.daemon_target)
    assert alert["labels"] == {
        "alertname": "RedisguardDaemonDown",
        "severity": "critical",
        "job": "redisguard",
        "instance": stack.daemon_target,
    }
    assert alert["annotations"]["summary"] == f"The redisguard daemon {stack.daemon_target} is down or not scraped."

    # A critical alert pages: PagerDuty gets it (its format: tests/e2e/test_alerts.py).
    stack.sink.wait_for(
        lambda n: n.body.get("event_action") == "trigger" and stack.daemon_target in n.body["payload"]["summary"],
        path="/pagerduty",
        timeout=ARRIVAL_TIMEOUT,
        what="the RedisguardDaemonDown page",
    )
