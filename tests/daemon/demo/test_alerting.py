"""The demo's alerting configs: derived from the shipped alerts/ files, valid for the real tools, the shipped files untouched."""

from __future__ import annotations

from pathlib import Path

import yaml

from redisguard.daemon.demo import alerting
from tests.fixtures.alerting import ALERTMANAGER_CONFIG, PROMETHEUS_CONFIG, RULES, run_tool


def test_alerts_dir_is_the_checkouts() -> None:
    assert alerting.alerts_dir() == RULES.parent


def test_the_demo_alertmanager_config_keeps_the_shipped_routes_and_sends_nowhere(tmp_path: Path) -> None:
    shipped = ALERTMANAGER_CONFIG.read_text()
    out = alerting.derive_silent_alertmanager_config(ALERTMANAGER_CONFIG, tmp_path / "alertmanager.yml")
    assert ALERTMANAGER_CONFIG.read_text() == shipped
    result = run_tool(["amtool", "check-config", str(out)])
    assert result.returncode == 0, result.stdout + result.stderr
    derived, original = yaml.safe_load(out.read_text()), yaml.safe_load(shipped)
    assert [r["name"] for r in derived["receivers"]] == [r["name"] for r in original["receivers"]]
    assert all(set(r) == {"name"} for r in derived["receivers"])  # no Slack, PagerDuty or webhook: no secrets
    assert derived["inhibit_rules"] == original["inhibit_rules"]
    assert derived["route"]["routes"] == original["route"]["routes"]
    assert "/run/secrets/" not in out.read_text()


def test_the_demo_prometheus_config_and_rules_pass_promtool(tmp_path: Path) -> None:
    shipped = PROMETHEUS_CONFIG.read_text(), RULES.read_text()
    rules = alerting.derive_rules(RULES, tmp_path / "rules.yml", "2s")
    config = alerting.derive_prometheus_config(
        PROMETHEUS_CONFIG, tmp_path / "prometheus.yml",
        daemon_target="127.0.0.1:9", alertmanager_target="127.0.0.1:10", rule_files=[rules],
    )  # fmt: skip
    assert (PROMETHEUS_CONFIG.read_text(), RULES.read_text()) == shipped
    result = run_tool(["promtool", "check", "config", str(config)])
    assert result.returncode == 0, result.stdout + result.stderr
    fors = {r["for"] for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"] if "for" in r}
    assert fors == {"2s"}
