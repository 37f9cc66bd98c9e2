"""The shipped alert rules and Alertmanager config, checked with promtool, amtool and a real Alertmanager."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redisguard.daemon.config import ThresholdSettings
from redisguard.daemon.service.metrics import FAMILIES
from tests.fixtures.alerting import (
    ALERTMANAGER_CONFIG,
    PROMETHEUS_CONFIG,
    REPO,
    RULE_TESTS,
    RULES,
    Server,
    load_yaml,
    run_tool,
    start_routed_alertmanager,
    start_sink,
)
from tests.fixtures.processes import wait_for

RUNBOOKS = REPO / "docs" / "runbooks.md"
RUNBOOK_BASE = "https://github.com/redisguard/redisguard/blob/main/docs/runbooks.md#"

# The alerts issue 11 asks for; the rules may hold more, never fewer.
REQUIRED_ALERTS = {
    "RedisguardDriftDetected",
    "RedisguardUnmanagedInstance",
    "RedisguardMemoryHigh",
    "RedisguardSystemMemoryHigh",
    "RedisguardMemoryFillingUp",
    "RedisguardInstanceNotReady",
    "RedisguardCheckFailing",
    "RedisguardChecksStale",
    "RedisguardDaemonDown",
}


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"] if "alert" in rule]


def rules_named(name: str) -> list[dict[str, Any]]:
    return [rule for rule in alert_rules() if rule["alert"] == name]


def rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS.glob("*_test.yml"))


# --- promtool ----------------------------------------------------------------------------------


def test_promtool_check_rules_accepts_the_shipped_rules() -> None:
    result = run_tool(["promtool", "check", "rules", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


@pytest.mark.parametrize("test_file", rule_test_files(), ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file: Path) -> None:
    result = run_tool(["promtool", "test", "rules", str(test_file)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_config_accepts_prometheus_yml_and_the_rules_it_loads() -> None:
    result = run_tool(["promtool", "check", "config", str(PROMETHEUS_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout
    doc = load_yaml(PROMETHEUS_CONFIG)
    assert [job["job_name"] for job in doc["scrape_configs"]] == ["redisguard"]
    assert (PROMETHEUS_CONFIG.parent / doc["rule_files"][0]).resolve() == RULES.resolve()


# --- what every alert carries ------------------------------------------------------------------


def test_every_required_alert_exists() -> None:
    assert REQUIRED_ALERTS <= {rule["alert"] for rule in alert_rules()}


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: f"{r['alert']}-{r['labels'].get('severity')}")
def test_every_alert_has_severity_summary_description_and_a_runbook_section(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in ("warning", "critical")
    annotations = rule["annotations"]
    assert set(annotations) >= {"summary", "description", "runbook_url"}
    anchor = rule["alert"].lower()
    assert annotations["runbook_url"] == RUNBOOK_BASE + anchor
    headings = re.findall(r"^## (\S+)\s*$", RUNBOOKS.read_text(), flags=re.MULTILINE)
    assert rule["alert"] in headings, f"docs/runbooks.md has no section '## {rule['alert']}'"
    assert "for" in rule, "every alert waits out a blip before it fires"


def test_runbooks_have_the_four_parts_for_every_alert() -> None:
    text = RUNBOOKS.read_text()
    sections = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    by_name = {s.split("\n", 1)[0].strip(): s for s in sections}
    for name in REQUIRED_ALERTS:
        section = by_name[name]
        for part in ("**Meaning**", "**Confirm**", "**Fix**", "**Silence**"):
            assert part in section, f"runbook {name} lacks {part}"


def test_alerts_on_check_results_outlast_a_failed_run() -> None:
    # A failed run removes the target's series; these alerts must not resolve for that.
    kept = {rule["alert"] for rule in alert_rules() if rule.get("keep_firing_for") == "10m"}
    assert kept == {
        "RedisguardDriftDetected",
        "RedisguardUnmanagedInstance",
        "RedisguardMemoryHigh",
        "RedisguardSystemMemoryHigh",
        "RedisguardMemoryFillingUp",
        "RedisguardInstanceNotReady",
    }


def test_memory_alerts_pair_warning_and_critical_under_one_name() -> None:
    for name in ("RedisguardMemoryHigh", "RedisguardSystemMemoryHigh"):
        assert sorted(rule["labels"]["severity"] for rule in rules_named(name)) == ["critical", "warning"]


def test_every_for_outlasts_the_memorystore_metric_delay() -> None:
    # Memorystore's metrics are visible up to 240 s late.
    seconds = {"s": 1, "m": 60, "h": 3600}
    for rule in alert_rules():
        value = rule["for"]
        total = sum(int(n) * seconds[u] for n, u in re.findall(r"(\d+)([smh])", value))
        assert total >= 240, f"{rule['alert']} for: {value}"


# --- one threshold, two places: the daemon's defaults and the rules -------------------------------


def _threshold(name: str, severity: str) -> float:
    (rule,) = [r for r in rules_named(name) if r["labels"]["severity"] == severity]
    match = re.fullmatch(r"\s*redisguard_\w+\s*>=\s*([0-9.]+)\s*", rule["expr"])
    assert match, f"{name} {severity}: unexpected expression {rule['expr']!r}"
    return float(match.group(1))


def test_memory_thresholds_are_the_daemons_defaults() -> None:
    defaults = ThresholdSettings()
    for name in ("RedisguardMemoryHigh", "RedisguardSystemMemoryHigh"):
        assert _threshold(name, "warning") == defaults.memory_warning_ratio
        assert _threshold(name, "critical") == defaults.memory_critical_ratio


def test_filling_up_looks_back_over_the_daemons_trend_window() -> None:
    window = ThresholdSettings().trend_window
    (rule,) = rules_named("RedisguardMemoryFillingUp")
    match = re.search(r"predict_linear\(redisguard_memory_usage_ratio\[(\d+)h\]", rule["expr"])
    assert match, rule["expr"]
    assert int(match.group(1)) * 3600 == window.total_seconds()


def test_stale_limits_are_three_runs_of_the_daemons_own_schedules_and_at_least_ten_minutes() -> None:
    """The limit comes from the daemon's metric of the schedules it runs (so a team that changes
    `schedules` gets no false stale alert), matched per daemon and check."""
    (rule,) = rules_named("RedisguardChecksStale")
    expr = " ".join(rule["expr"].split())
    assert expr == (
        "time() - redisguard_check_last_success_timestamp_seconds > on(job, instance, check) group_left() "
        "clamp_min(3 * redisguard_check_interval_seconds, 600)"
    )
    assert set(FAMILIES["check_interval_seconds"].labels) == {"check"}


# --- every promtool test is named and has a "not yet" and a "now" ---------------------------------


def test_every_alert_has_a_named_promtool_test_with_a_quiet_and_a_firing_time() -> None:
    quiet: set[str] = set()
    firing: dict[str, set[str]] = {}
    for path in rule_test_files():
        doc = load_yaml(path)
        assert doc["rule_files"] == ["../rules.yml"], f"{path.name} must test the shipped rules"
        for test in doc["tests"]:
            assert test.get("name"), f"{path.name}: a test without a name"
            for case in test.get("alert_rule_test", []):
                if case["exp_alerts"]:
                    for alert in case["exp_alerts"]:
                        assert set(alert["exp_annotations"]) >= {"summary", "description", "runbook_url"}
                        firing.setdefault(case["alertname"], set()).add(alert["exp_labels"]["severity"])
                else:
                    quiet.add(case["alertname"])
    for name in {rule["alert"] for rule in alert_rules()}:
        assert name in quiet, f"no promtool test checks a time where {name} must not fire yet"
        severities = {rule["labels"]["severity"] for rule in rules_named(name)}
        assert firing.get(name) == severities, f"promtool tests do not see {name} fire at every severity"


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
