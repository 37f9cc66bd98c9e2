"""The drift report: its JSON shape, table and Markdown renderings, and exit codes."""

from __future__ import annotations

import json

from redisguard.daemon.report import DriftItem, DriftReport, PropertyDrift, StackReport, render

DRIFT = StackReport.from_items(
    "staging",
    "live",
    [
        DriftItem(
            resource="redis-sidekiq",
            kind="changed",
            properties=(
                PropertyDrift(path="memorySizeGb", expected=2, actual=3),
                PropertyDrift(path="redisConfigs.maxmemory-policy", expected="noeviction", actual="allkeys|lru"),
            ),
        ),
        DriftItem(resource="projects/p/locations/europe-west1/instances/stray", kind="unmanaged"),
        DriftItem(resource="redis-cache", kind="missing"),
    ],
    0.4,
)
IN_SYNC = StackReport.from_items("production", "live", [], 0.2)
ERROR = StackReport.failed("production", "pulumi", "the pulumi CLI was not found on PATH", 0.01)


def test_json_has_the_documented_shape() -> None:
    report = DriftReport(generated_at="2026-11-27T14:00:00Z", stacks=(DRIFT,))
    data = json.loads(render(report, "json"))
    assert data == {
        "generated_at": "2026-11-27T14:00:00Z",
        "stacks": [
            {
                "stack": "staging",
                "engine": "live",
                "status": "drift",
                "duration_seconds": 0.4,
                "error": None,
                "items": [
                    {
                        "resource": "redis-sidekiq",
                        "type": "gcp:redis/instance:Instance",
                        "kind": "changed",
                        "properties": [
                            {"path": "memorySizeGb", "expected": 2, "actual": 3},
                            {"path": "redisConfigs.maxmemory-policy", "expected": "noeviction", "actual": "allkeys|lru"},
                        ],
                    },
                    {"resource": "redis-cache", "type": "gcp:redis/instance:Instance", "kind": "missing", "properties": []},
                    {
                        "resource": "projects/p/locations/europe-west1/instances/stray",
                        "type": "gcp:redis/instance:Instance",
                        "kind": "unmanaged",
                        "properties": [],
                    },
                ],
            }
        ],
    }


def test_exit_codes_follow_the_detailed_exitcode_convention() -> None:
    assert DriftReport(stacks=(IN_SYNC,)).exit_code == 0
    assert DriftReport(stacks=(IN_SYNC, DRIFT)).exit_code == 2
    assert DriftReport(stacks=(DRIFT, ERROR)).exit_code == 1
    assert DriftReport().exit_code == 0


def test_table_lists_each_stack_and_each_drifted_property() -> None:
    text = render(DriftReport(stacks=(DRIFT, IN_SYNC, ERROR)), "table", width=160)
    assert "Drift report" in text
    summary = {line.split("│")[1].strip() + "/" + line.split("│")[2].strip(): line for line in text.splitlines() if line.count("│") >= 6}
    assert "drift" in summary["staging/live"] and "3" in summary["staging/live"]
    assert "in_sync" in summary["production/live"]
    assert "the pulumi CLI was not found on PATH" in summary["production/pulumi"]
    rows = [line for line in text.splitlines() if "memorySizeGb" in line]
    assert len(rows) == 1 and "redis-sidekiq" in rows[0] and "changed" in rows[0]
    assert [c.strip() for c in rows[0].split("│")[3:6]] == ["memorySizeGb", "2", "3"]
    missing = [line for line in text.splitlines() if "redis-cache" in line]
    assert "missing" in missing[0]


def test_markdown_is_a_pull_request_comment_with_escaped_cells() -> None:
    text = render(DriftReport(generated_at="2026-11-27T14:00:00Z", stacks=(DRIFT, IN_SYNC, ERROR)), "markdown")
    assert text.startswith("## redisguard drift report\n")
    assert "**some checks failed** (exit code 1)" in text
    assert "| staging | live | ⚠️ drift | 3 | 0.40s |" in text
    assert "| production | live | ✅ in sync | 0 | 0.20s |" in text
    assert "### production (pulumi): error" in text
    assert "| `redis-sidekiq` | changed | `memorySizeGb` | `2` | `3` |" in text
    # A pipe inside a value must not split the table row.
    assert "| `redis-sidekiq` | changed | `redisConfigs.maxmemory-policy` | `noeviction` | `allkeys\\|lru` |" in text
    assert "| `redis-cache` | missing | | | |" in text
