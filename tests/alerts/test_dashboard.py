"""The Grafana dashboard and its provisioning files: valid JSON, a sound layout, PromQL that parses.

Grafana is not packaged for these machines, so the dashboard is validated, not rendered; every
query is parsed by promtool through a rule file. That every metric it names is one the daemon
serves is checked against a real scrape in tests/e2e/test_alerts.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from redisguard.daemon.config import ThresholdSettings
from tests.fixtures.alerting import ALERTS, dashboard_metric_names, dashboard_queries, run_tool

GRAFANA = ALERTS / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "redisguard.json"
GRID_COLUMNS = 24


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dash["panels"] if p["type"] != "row"]


def test_the_dashboard_is_valid_json_with_an_identity() -> None:
    dash = dashboard()
    assert dash["uid"] == "redisguard"
    assert dash["title"]
    assert isinstance(dash["schemaVersion"], int)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_panels_fit_the_grid_without_overlapping() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard()["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= GRID_COLUMNS, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_every_query_uses_the_datasource_variable_and_has_its_own_ref_id() -> None:
    for panel in panels(dashboard()):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            assert target["expr"].strip(), panel["title"]


def test_template_variables_for_project_stack_and_instance_are_defined_and_used() -> None:
    dash = dashboard()
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert {"datasource", "project", "stack", "instance"} <= set(variables)
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    used = set()
    for expr in dashboard_queries(dash):
        used |= set(re.findall(r"\$(\w+)", expr))
    assert used - {"__all"} <= set(variables), "a query uses a variable the dashboard does not define"
    assert {"project", "stack", "instance"} <= used


def test_the_panels_cover_memory_drift_and_check_health() -> None:
    titles = " | ".join(p["title"].lower() for p in panels(dashboard()))
    names = dashboard_metric_names(dashboard())
    for needed in (
        "redisguard_memory_usage_ratio",
        "redisguard_memory_used_bytes",
        "redisguard_memory_max_bytes",
        "redisguard_memory_capacity_bytes",
        "redisguard_memory_time_to_full_seconds",
        "redisguard_system_memory_usage_ratio",
        "redisguard_drift_status",
        "redisguard_drifted_resource",
        "redisguard_check_up",
        "redisguard_check_duration_seconds",
        "redisguard_check_last_success_timestamp_seconds",
    ):
        assert needed in names, f"no panel shows {needed}"
    for word in (
        "memory usage ratio",
        "time to full",
        "system memory",
        "drift status",
        "drifted resources",
        "check health",
        "check durations",
    ):
        assert word in titles


def test_memory_threshold_lines_are_the_daemons_defaults() -> None:
    defaults = ThresholdSettings()
    ratio_panels = [p for p in panels(dashboard()) if "usage ratio" in p["title"].lower()]
    assert len(ratio_panels) == 2
    for panel in ratio_panels:
        steps = [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]
        assert steps == [None, defaults.memory_warning_ratio, defaults.memory_critical_ratio], panel["title"]
        assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] in ("dashed", "line")


def test_every_promql_expression_parses(tmp_path: Path) -> None:
    """Each panel query and each variable's selector as a recording rule, through `promtool check rules`."""
    exprs = dashboard_queries(dashboard())
    # Grafana substitutes its variables before Prometheus sees the query: a multi-value
    # variable becomes a regex alternation, the built-in intervals a duration.
    concrete = [
        re.sub(r"\$__(rate_interval|interval|range)", "5m", re.sub(r"\$(?!__)\w+", "a|b", expr)) for expr in exprs
    ]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(concrete)],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    result = run_tool(["promtool", "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(concrete)} rules found" in result.stdout


def test_provisioning_loads_the_dashboard_folder_and_a_prometheus_data_source() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "redisguard.yml").read_text())
    assert provider["apiVersion"] == 1
    (p,) = provider["providers"]
    assert p["type"] == "file" and p["options"]["path"] == "/etc/grafana/dashboards"
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (ds,) = sources["datasources"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"


@pytest.mark.parametrize("name", ["project", "stack", "instance"])
def test_variable_queries_read_labels_the_daemon_gives_instance_info(name: str) -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    match = re.fullmatch(r"label_values\((redisguard_instance_info(?:\{.*\})?), (\w+)\)", variables[name]["definition"])
    assert match, variables[name]["definition"]
    assert match.group(2) in {"project_id", "stack", "instance_id"}


# What the checks found (not how the daemon that found it is doing): one value per finding on the
# dashboard, whichever shard exports it and however many replicas of that shard (HA) do.
_FINDINGS = {
    "redisguard_memory_usage_ratio": "project_id, region, instance_id",
    "redisguard_system_memory_usage_ratio": "project_id, region, instance_id",
    "redisguard_memory_used_bytes": "project_id, region, instance_id",
    "redisguard_memory_max_bytes": "project_id, region, instance_id",
    "redisguard_memory_capacity_bytes": "project_id, region, instance_id",
    "redisguard_memory_time_to_full_seconds": "project_id, region, instance_id",
    "redisguard_instance_ready": "project_id, region, instance_id",
    "redisguard_instance_info": "project_id, region, instance_id, stack",
    "redisguard_drift_status": "stack, engine",
    "redisguard_drifted_resource": "stack, engine, resource, type, kind",
    "redisguard_unmanaged_instances": "project_id",
}


def test_findings_are_shown_once_however_many_daemons_export_them() -> None:
    shown = set()
    # The panels' queries (a variable's label_values lists each value once anyway).
    for query in [t["expr"] for p in panels(dashboard()) for t in p.get("targets", [])]:
        for family, labels in _FINDINGS.items():
            for match in re.finditer(rf"\b{family}\{{", query):
                shown.add(family)
                before = query[: match.start()]
                assert before.endswith(f"max by ({labels}) ("), f"{family} not aggregated over the daemons in: {query}"
    assert shown == set(_FINDINGS)


def test_a_shards_panel_counts_each_shard_once_against_the_total() -> None:
    queries = dashboard_queries(dashboard())
    assert 'count(max by (shard_ordinal) (redisguard_shard_ordinal{job="redisguard"}))' in queries
    assert 'max(redisguard_total_shards{job="redisguard"})' in queries
