"""The shipped Alertmanager config: amtool accepts it, holds no secret, routes each alert to its receivers,
and a real Alertmanager inhibits and groups as docs/alerts.md says."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.alerting import (
    ALERTMANAGER_CONFIG,
    Server,
    load_yaml,
    run_tool,
    start_routed_alertmanager,
    start_sink,
)
from tests.fixtures.processes import wait_for

# --- Alertmanager: config, routes -----------------------------------------------------------------


def test_amtool_check_config_accepts_alertmanager_yml() -> None:
    result = run_tool(["amtool", "check-config", str(ALERTMANAGER_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_no_secret_in_the_committed_alertmanager_config() -> None:
    text = ALERTMANAGER_CONFIG.read_text()
    doc = load_yaml(ALERTMANAGER_CONFIG)
    for key in (
        "slack_api_url",
        "pagerduty_url_key",
        "routing_key",
        "service_key",
        "credentials",
        "api_url",
        "password",
    ):
        assert re.search(rf"^\s*{key}:", text, flags=re.MULTILINE) is None, f"{key} must come from a *_file"
    assert doc["global"]["slack_api_url_file"].startswith("/run/secrets/")
    (pager,) = [r for r in doc["receivers"] if r["name"] == "pager"]
    assert pager["pagerduty_configs"][0]["routing_key_file"].startswith("/run/secrets/")
    (hook,) = [r for r in doc["receivers"] if r["name"] == "webhook"]
    assert hook["webhook_configs"][0]["http_config"]["authorization"]["credentials_file"].startswith("/run/secrets/")


ROUTES = [
    pytest.param(
        ["alertname=RedisguardMemoryHigh", "severity=critical", "instance_id=redis-sidekiq"],
        "webhook,pager,chat",
        id="critical-pages-and-posts-to-chat",
    ),
    pytest.param(
        ["alertname=RedisguardMemoryHigh", "severity=warning", "instance_id=redis-sidekiq"],
        "webhook,chat",
        id="warning-goes-to-chat-only",
    ),
    pytest.param(
        ["alertname=RedisguardDaemonDown", "severity=critical", "job=redisguard"],
        "webhook,pager,chat",
        id="daemon-down-pages",
    ),
    pytest.param(
        ["alertname=RedisguardDriftDetected", "severity=warning", "stack=production", "engine=pulumi"],
        "webhook,chat",
        id="drift-warning-to-chat",
    ),
    pytest.param(
        ["alertname=SomeoneElsesAlert", "severity=critical"],
        "pager,chat",
        id="other-critical-pages-without-the-redisguard-webhook",
    ),
    pytest.param(["alertname=SomeoneElsesAlert"], "chat", id="no-severity-falls-back-to-chat"),
]


@pytest.mark.parametrize(("labels", "receivers"), ROUTES)
def test_amtool_routes(labels: list[str], receivers: str) -> None:
    result = run_tool(
        [
            "amtool",
            "config",
            "routes",
            "test",
            f"--config.file={ALERTMANAGER_CONFIG}",
            f"--verify.receivers={receivers}",
            *labels,
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


# --- Alertmanager: inhibition and grouping, with the real server ------------------------------------


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The shipped routes and inhibition rules in a real Alertmanager; receivers at a loopback sink."""
    workdir = tmp_path_factory.mktemp("alertmanager")
    sink = start_sink()
    server = start_routed_alertmanager(workdir, sink)
    yield server
    server.stop()
    sink.close()


def add_alert(am: Server, **labels: str) -> None:
    """Post one firing alert with `labels`, as Prometheus would, through amtool."""
    argv = ["amtool", f"--alertmanager.url={am.url}", "alert", "add", *[f"{k}={v}" for k, v in labels.items()]]
    result = run_tool(argv)
    assert result.returncode == 0, result.stdout + result.stderr


def query_alerts(am: Server, *matchers: str) -> dict[str, list[dict[str, Any]]]:
    """Active and inhibited alerts matching `matchers`, keyed by their state."""
    argv = [
        "amtool",
        f"--alertmanager.url={am.url}",
        "alert",
        "query",
        "--active",
        "--inhibited",
        "-o",
        "json",
        *matchers,
    ]
    result = run_tool(argv)
    assert result.returncode == 0, result.stdout + result.stderr
    by_state: dict[str, list[dict[str, Any]]] = {"active": [], "suppressed": []}
    for alert in json.loads(result.stdout):
        by_state[alert["status"]["state"]].append(alert["labels"])
    return by_state


MEMORY = {"job": "redisguard", "instance": "10.0.0.1:9464", "project_id": "p-inhibit", "region": "europe-west1"}


@pytest.mark.slow
def test_critical_memory_mutes_the_warning_of_the_same_instance_only(alertmanager: Server) -> None:
    for severity, instance_id in (("critical", "redis-a"), ("warning", "redis-a"), ("warning", "redis-b")):
        add_alert(alertmanager, alertname="RedisguardMemoryHigh", severity=severity, instance_id=instance_id, **MEMORY)
    # The same instance's *system* memory warning is another alert: not muted.
    add_alert(alertmanager, alertname="RedisguardSystemMemoryHigh", severity="warning", instance_id="redis-a", **MEMORY)
    alerts = query_alerts(alertmanager, "project_id=p-inhibit")
    assert [(a["alertname"], a["instance_id"]) for a in alerts["suppressed"]] == [("RedisguardMemoryHigh", "redis-a")]
    assert alerts["suppressed"][0]["severity"] == "warning"
    active = sorted((a["alertname"], a["severity"], a["instance_id"]) for a in alerts["active"])
    assert active == [
        ("RedisguardMemoryHigh", "critical", "redis-a"),
        ("RedisguardMemoryHigh", "warning", "redis-b"),
        ("RedisguardSystemMemoryHigh", "warning", "redis-a"),
    ]


@pytest.mark.slow
def test_critical_memory_mutes_the_filling_up_forecast_of_that_instance(alertmanager: Server) -> None:
    labels = {**MEMORY, "project_id": "p-forecast"}
    add_alert(alertmanager, alertname="RedisguardMemoryHigh", severity="critical", instance_id="redis-a", **labels)
    for instance_id in ("redis-a", "redis-b"):
        add_alert(
            alertmanager, alertname="RedisguardMemoryFillingUp", severity="warning", instance_id=instance_id, **labels
        )
    alerts = query_alerts(alertmanager, "alertname=RedisguardMemoryFillingUp", "project_id=p-forecast")
    assert [a["instance_id"] for a in alerts["suppressed"]] == ["redis-a"]
    assert [a["instance_id"] for a in alerts["active"]] == ["redis-b"]


@pytest.mark.slow
def test_daemon_down_mutes_its_failing_and_stale_checks_but_not_another_daemons(alertmanager: Server) -> None:
    down, other = "10.0.0.7:9464", "10.0.0.8:9464"
    add_alert(alertmanager, alertname="RedisguardDaemonDown", severity="critical", job="redisguard", instance=down)
    for instance in (down, other):
        for alertname in ("RedisguardCheckFailing", "RedisguardChecksStale"):
            labels = {"alertname": alertname, "severity": "warning", "job": "redisguard", "instance": instance}
            add_alert(alertmanager, **labels, check="memory", target="p-daemon")
    # A drift alert from the same daemon is not caused by it being down: kept.
    add_alert(
        alertmanager,
        alertname="RedisguardDriftDetected",
        severity="warning",
        job="redisguard",
        instance=down,
        stack="s-daemon",
        engine="live",
    )
    alerts = query_alerts(alertmanager, "job=redisguard", "instance=~10.0.0.[78]:9464")
    suppressed = sorted((a["alertname"], a["instance"]) for a in alerts["suppressed"])
    assert suppressed == [("RedisguardCheckFailing", down), ("RedisguardChecksStale", down)]
    active = sorted((a["alertname"], a["instance"]) for a in alerts["active"])
    assert active == [
        ("RedisguardCheckFailing", other),
        ("RedisguardChecksStale", other),
        ("RedisguardDaemonDown", down),
        ("RedisguardDriftDetected", down),
    ]


@pytest.mark.slow
def test_groups_are_per_alert_and_stack_or_instance_across_daemons(alertmanager: Server) -> None:
    # Both engines' drift of one stack share a notification, from either of two daemons.
    for engine, instance in (("live", "10.0.0.1:9464"), ("pulumi", "10.0.0.2:9464")):
        add_alert(
            alertmanager,
            alertname="RedisguardDriftDetected",
            severity="warning",
            job="redisguard",
            instance=instance,
            stack="s-group",
            engine=engine,
        )
    add_alert(
        alertmanager,
        alertname="RedisguardDriftDetected",
        severity="warning",
        job="redisguard",
        instance="10.0.0.1:9464",
        stack="s-group-2",
        engine="live",
    )
    expected = {
        "s-group": {("live", "webhook"), ("pulumi", "webhook"), ("live", "chat"), ("pulumi", "chat")},
        "s-group-2": {("live", "webhook"), ("live", "chat")},
    }

    def drift_groups() -> list[dict[str, Any]]:
        return [
            g for g in alertmanager.get_json("/api/v2/alerts/groups")
            if g["labels"].get("alertname") == "RedisguardDriftDetected" and g["labels"].get("stack", "").startswith("s-group")
        ]  # fmt: skip

    def by_stack() -> dict[str, set[tuple[str, str]]]:
        found: dict[str, set[tuple[str, str]]] = {}
        for g in drift_groups():
            found.setdefault(g["labels"]["stack"], set()).update(
                (a["labels"]["engine"], g["receiver"]["name"]) for a in g["alerts"]
            )
        return found

    # The dispatcher groups alerts shortly after the API accepts them.
    try:
        wait_for(lambda: by_stack() == expected, timeout=10, what="the drift alerts grouped per stack")
    except TimeoutError:
        assert by_stack() == expected
    groups = drift_groups()
    assert len(groups) == 4  # two stacks, each routed to the webhook and to chat
    assert all(
        set(g["labels"]) <= {"alertname", "stack", "project_id", "region", "instance_id", "check", "target"}
        for g in groups
    )
