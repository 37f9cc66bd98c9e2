"""End to end with real processes on loopback: Prometheus scraping the daemon with the shipped
rules, Alertmanager with the shipped routes, and the notifications arriving at the test.

The configs are generated from the shipped files (tests/fixtures/alerting.py): every `for`
shortened, one-second intervals, loopback addresses, secrets in temporary files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fixtures.alerting import (
    ROUTING_KEY,
    SHORT_FOR,
    WEBHOOK_TOKEN,
    NotificationSink,
    Server,
    derive_prometheus_config,
    derive_rules,
    firing,
    loaded_rules,
    shipped_alerts,
    start_prometheus,
    start_routed_alertmanager,
    start_sink,
)
from tests.fixtures.processes import free_port

pytestmark = pytest.mark.slow

ARRIVAL_TIMEOUT = 60.0


@dataclass
class AlertingStack:
    sink: NotificationSink
    alertmanager: Server
    prometheus: Server
    daemon_target: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertingStack]:
    workdir = tmp_path_factory.mktemp("alerting-e2e")
    sink = start_sink()
    alertmanager = start_routed_alertmanager(workdir, sink)
    # Nothing listens here: the daemon is down.
    daemon_target = f"127.0.0.1:{free_port()}"
    rules = derive_rules(workdir / "rules.yml", SHORT_FOR)
    prom_config = derive_prometheus_config(
        workdir / "prometheus.yml",
        daemon_target=daemon_target,
        alertmanager_target=alertmanager.url.removeprefix("http://"),
        rule_files=[rules],
    )
    prometheus = start_prometheus(prom_config, workdir)
    try:
        yield AlertingStack(sink, alertmanager, prometheus, daemon_target)
    finally:
        prometheus.stop()
        alertmanager.stop()
        sink.close()


def test_daemon_down_pages_and_reaches_webhook_slack_and_pagerduty(stack: AlertingStack) -> None:
    webhook = stack.sink.wait_for(
        lambda n: any(firing("RedisguardDaemonDown", instance=stack.daemon_target)(a) for a in n.body["alerts"]),
        path="/webhook",
        timeout=ARRIVAL_TIMEOUT,
        what="RedisguardDaemonDown at the webhook",
    )
    # The bearer token came from the secret file the config names.
    assert webhook.headers["authorization"] == f"Bearer {WEBHOOK_TOKEN}"
    (alert,) = [a for a in webhook.body["alerts"] if a["labels"]["alertname"] == "RedisguardDaemonDown"]
    assert alert["labels"] == {
        "alertname": "RedisguardDaemonDown",
        "severity": "critical",
        "job": "redisguard",
        "instance": stack.daemon_target,
    }
    assert alert["annotations"]["summary"] == f"The redisguard daemon {stack.daemon_target} is down or not scraped."
    assert alert["annotations"]["runbook_url"].endswith("/docs/runbooks.md#redisguarddaemondown")
    assert webhook.body["receiver"] == "webhook"
    assert webhook.body["groupLabels"] == {"alertname": "RedisguardDaemonDown"}

    # Critical: PagerDuty (Events API v2, routing key from its file) and Slack both get it.
    page = stack.sink.wait_for(
        lambda n: n.body.get("event_action") == "trigger" and "RedisguardDaemonDown" in n.body["payload"]["summary"],
        path="/pagerduty",
        timeout=ARRIVAL_TIMEOUT,
        what="the RedisguardDaemonDown page",
    )
    assert page.body["routing_key"] == ROUTING_KEY
    assert page.body["payload"]["summary"] == (
        f"RedisguardDaemonDown: The redisguard daemon {stack.daemon_target} is down or not scraped."
    )
    assert page.body["links"][0]["href"].endswith("#redisguarddaemondown")
    chat = stack.sink.wait_for(
        lambda n: "RedisguardDaemonDown" in n.body["attachments"][0]["title"],
        path="/slack",
        timeout=ARRIVAL_TIMEOUT,
        what="RedisguardDaemonDown in Slack",
    )
    message = chat.body["attachments"][0]
    assert chat.body["channel"] == "#redis-alerts"
    assert message["title"] == "[FIRING:1] RedisguardDaemonDown"
    assert f"*critical*: The redisguard daemon {stack.daemon_target} is down or not scraped." in message["text"]
    assert "Runbook: https://" in message["text"]


def test_the_generated_configs_keep_the_shipped_rules_and_routes(stack: AlertingStack) -> None:
    # Prometheus loaded every shipped rule, and only `for` differs.
    loaded, durations = loaded_rules(stack.prometheus)
    assert loaded == shipped_alerts()
    assert durations == {2.0}
    status = stack.alertmanager.get_json("/api/v2/status")
    assert "RedisguardDaemonDown" in status["config"]["original"]
