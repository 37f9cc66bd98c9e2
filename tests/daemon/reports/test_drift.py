"""The drift report: its JSON shape, table and Markdown renderings, and exit codes."""

from __future__ import annotations

import io
import json
import re
from importlib.metadata import version

import pytest
from rich.console import Console

from redisguard.core.text import md_cell
from redisguard.daemon.reports.drift import (
    DriftItem,
    DriftReport,
    PropertyDrift,
    StackReport,
    print_table,
    render,
)
from redisguard.daemon.reports.render import format_duration

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
ERROR = StackReport.failed("production", "pulumi", "the pulumi CLI was not found on PATH", 0.01, kind="permanent")
LOCKED = StackReport.failed("staging", "pulumi", "stack is locked by another update", 0.01, kind="transient")


def test_error_kind_and_summary_are_in_json_table_and_markdown() -> None:
    report = DriftReport(generated_at="2026-11-27T14:00:00Z", stacks=(DRIFT, IN_SYNC, ERROR, LOCKED))
    data = json.loads(render(report, "json"))
    assert [s.get("error_kind") for s in data["stacks"]] == [None, None, "permanent", "transient"]
    assert data["exit_code"] == 1
    assert data["summary"] == {"stacks": 2, "checks": 4, "in_sync": 1, "drift": 1, "errors": 2, "drifted_resources": 3, "not_ready_instances": 0, "pending_changes": 0}
    table = render(report, "table")
    assert "error (permanent)" in table and "error (transient)" in table
    assert "staging (pulumi): error (transient)\n  stack is locked by another update" in table
    markdown = render(report, "markdown")
    assert "| production | pulumi | ❌ error (permanent) |" in markdown
    assert "### staging (pulumi): error (transient)" in markdown
    assert f"by redisguard {version('redisguard')}" in markdown


def test_json_has_the_documented_shape() -> None:
    report = DriftReport(generated_at="2026-11-27T14:00:00Z", stacks=(DRIFT,))
    data = json.loads(render(report, "json"))
    assert data == {
        "schema_version": 1,
        "tool_version": version("redisguard"),
        "generated_at": "2026-11-27T14:00:00Z",
        "exit_code": 2,
        "summary": {"stacks": 1, "checks": 1, "in_sync": 0, "drift": 1, "errors": 0, "drifted_resources": 3, "not_ready_instances": 0, "pending_changes": 0},
        "stacks": [
            {
                "stack": "staging",
                "engine": "live",
                "status": "drift",
                "duration_seconds": 0.4,
                "error": None,
                "error_kind": None,
                "items": [
                    {
                        "resource": "redis-sidekiq",
                        "type": "gcp:redis/instance:Instance",
                        "kind": "changed",
                        "properties": [
                            {"path": "memorySizeGb", "expected": 2, "actual": 3},
                            {"path": "redisConfigs.maxmemory-policy", "expected": "noeviction", "actual": "allkeys|lru"},
                        ],
                        "instance": None,
                        "cause": None,
                    },
                    {
                        "resource": "redis-cache",
                        "type": "gcp:redis/instance:Instance",
                        "kind": "missing",
                        "properties": [],
                        "instance": None,
                        "cause": None,
                    },
                    {
                        "resource": "projects/p/locations/europe-west1/instances/stray",
                        "type": "gcp:redis/instance:Instance",
                        "kind": "unmanaged",
                        "properties": [],
                        "instance": None,
                        "cause": None,
                    },
                ],
                "not_ready": [],
                "source": None,
                "pending": [],
                "notes": [],
                "unmanaged_projects": [],
            }
        ],
    }


def test_exit_codes_follow_the_detailed_exitcode_convention() -> None:
    assert DriftReport(stacks=(IN_SYNC,)).exit_code == 0
    assert DriftReport(stacks=(IN_SYNC, DRIFT)).exit_code == 2
    assert DriftReport(stacks=(DRIFT, ERROR)).exit_code == 1
    assert DriftReport().exit_code == 0


def test_table_lists_each_stack_and_each_drifted_property() -> None:
    text = render(DriftReport(stacks=(DRIFT, IN_SYNC, ERROR)), "table")
    assert "Drift report" in text
    summary = {line.split("│")[1].strip() + "/" + line.split("│")[2].strip(): line for line in text.splitlines() if line.count("│") >= 6}
    assert "drift" in summary["staging/live"] and "3" in summary["staging/live"]
    assert "in_sync" in summary["production/live"]
    assert "error" in summary["production/pulumi"]
    assert text.splitlines()[-2:] == ["production (pulumi): error (permanent)", "  the pulumi CLI was not found on PATH"]
    rows = [line for line in text.splitlines() if "memorySizeGb" in line]
    assert len(rows) == 1 and "redis-sidekiq" in rows[0] and "changed" in rows[0]
    assert [c.strip() for c in rows[0].split("│")[3:6]] == ["memorySizeGb", "2", "3"]
    missing = [line for line in text.splitlines() if "redis-cache" in line]
    assert "missing" in missing[0]


def test_markdown_is_a_pull_request_comment_with_escaped_cells() -> None:
    text = render(DriftReport(generated_at="2026-11-27T14:00:00Z", stacks=(DRIFT, IN_SYNC, ERROR)), "markdown")
    assert text.startswith("## redisguard drift report\n")
    assert "**some checks failed** (exit code 1)" in text
    assert "| staging | live | ⚠️ drift | 3 | 0 | 400 ms |" in text
    assert "| production | live | ✅ in sync | 0 | 0 | 200 ms |" in text
    assert "### production (pulumi): error" in text
    assert "| `redis-sidekiq` | changed | `memorySizeGb` | `2` | `3` |" in text
    # A pipe inside a value must not split the table row.
    assert "| `redis-sidekiq` | changed | `redisConfigs.maxmemory-policy` | `noeviction` | `allkeys\\|lru` |" in text
    assert "| `redis-cache` | missing | | | |" in text


LONG = StackReport.from_items(
    "staging",
    "live",
    [
        DriftItem(
            resource="redis-sidekiq",
            kind="changed",
            properties=(
                PropertyDrift(
                    path="maintenancePolicy.weeklyMaintenanceWindows[0].startTime.hours", expected=8, actual=23
                ),
                PropertyDrift(path="labels.team-owning-this-instance", expected="payments-platform", actual="growth-experiments"),
            ),
        ),
        DriftItem(resource="projects/redisguard-staging/locations/europe-west1/instances/redis-made-by-hand", kind="unmanaged"),
    ],
    0.0062,
)
LONG_TEXTS = (
    "maintenancePolicy.weeklyMaintenanceWindows[0].startTime.hours",
    "labels.team-owning-this-instance",
    "payments-platform",
    "growth-experiments",
    "projects/redisguard-staging/locations/europe-west1/instances/redis-made-by-hand",
)


def test_table_off_a_terminal_never_cuts_paths_or_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI logs and `| cat`: rich assumes 80 columns there; every path and value stays whole on its line."""
    monkeypatch.delenv("COLUMNS", raising=False)
    buffer = io.StringIO()
    print_table(DriftReport(stacks=(LONG,)), Console(file=buffer, force_terminal=False, color_system=None))
    text = buffer.getvalue()
    assert "…" not in text
    for whole in LONG_TEXTS:
        assert any(whole in line for line in text.splitlines()), whole
    assert "6 ms" in text  # not "0.00s"


def test_table_on_a_narrow_terminal_folds_instead_of_cutting() -> None:
    buffer = io.StringIO()
    print_table(DriftReport(stacks=(LONG,)), Console(file=buffer, force_terminal=True, width=70, color_system=None))
    text = buffer.getvalue()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 70
    # Folded cells read back whole when the column's pieces are joined.
    joined = "".join(line.split("│")[3].strip() for line in text.splitlines() if line.count("│") == 6)
    assert "maintenancePolicy.weeklyMaintenanceWindows[0].startTime.hours" in joined


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.0, "<1 ms"), (0.0004, "<1 ms"), (0.006, "6 ms"), (0.4, "400 ms"), (1.5, "1.50 s"), (73.25, "73.25 s")]
)
def test_durations_read_as_measured(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


LONG_PROBLEM = " ".join(["must be a whole number of GB from 1 to 300"] * 8)
STACK_FILE_ERROR = StackReport.failed(
    "staging",
    "live",
    "/work/program/Pulumi.staging.yaml: 2 problems in the stack config\n"
    "  - redis-fleet:redis[0].memory_gb: " + LONG_PROBLEM + "\n"
    "  - redis-fleet:redis[0].tier: must be BASIC or STANDARD_HA (got 'GOLD')",
    0.01,
)


def test_an_error_is_printed_under_the_table_as_written_not_folded_into_a_cell() -> None:
    text = render(DriftReport(stacks=(DRIFT, STACK_FILE_ERROR)), "table")
    lines = text.splitlines()
    assert lines[0] == "Drift report"
    assert all(line == line.rstrip() for line in lines), "no line is padded with trailing spaces"
    [row] = [line for line in lines if "│ staging" in line and "│ error" in line]
    assert len(row) < 80  # the summary stays narrow: the message is not one of its cells
    assert lines[-4:] == [
        "staging (live): error (permanent)",
        "  /work/program/Pulumi.staging.yaml: 2 problems in the stack config",
        "    - redis-fleet:redis[0].memory_gb: " + LONG_PROBLEM,
        "    - redis-fleet:redis[0].tier: must be BASIC or STANDARD_HA (got 'GOLD')",
    ]


def test_markdown_keeps_a_multi_line_error_in_a_code_block() -> None:
    text = render(DriftReport(stacks=(STACK_FILE_ERROR,)), "markdown")
    block = text.split("### staging (live): error (permanent)\n\n", 1)[1].splitlines()
    assert block[:2] == ["```text", "/work/program/Pulumi.staging.yaml: 2 problems in the stack config"]
    assert block[3:5] == ["  - redis-fleet:redis[0].tier: must be BASIC or STANDARD_HA (got 'GOLD')", "```"]


def test_a_markdown_cell_escapes_pipes_and_newlines_and_a_policy_message_keeps_its_code_spans() -> None:
    # One escaper for every report's tables: a value is neutralised (no code span, backslashes
    # shown), a policy message is Markdown already and keeps its `code`.
    assert md_cell("a|b\nc `d` e\\f") == "a\\|b c 'd' e\\\\f"
    assert md_cell("Set `tier: STANDARD_HA`|x\ny", markdown=True) == "Set `tier: STANDARD_HA`\\|x y"


def test_pending_changes_are_shown_apart_from_drift_and_never_change_the_exit_code() -> None:
    from redisguard.daemon.fleet.pending import PendingChange, PendingProperty

    pending = (
        PendingChange(resource="redis-sidekiq", change="update", properties=(PendingProperty(path="memorySizeGb", config=4, deployed=2),)),
        PendingChange(resource="redis-queue", change="create"),
    )
    stack = StackReport.from_items("staging", "live", [], 0.2).model_copy(update={"source": "both", "pending": pending})
    report = DriftReport(generated_at="2026-12-06T21:00:00Z", stacks=(stack,))
    assert report.exit_code == 0 and report.summary()["pending_changes"] == 2

    table = render(report, "table")
    assert "staging: pending (config ahead of the deployed state; not drift)" in table
    assert re.search(r"redis-sidekiq\s+│\s+update\s+│\s+memorySizeGb\s+│\s+4\s+│\s+2", table), table
    assert re.search(r"redis-queue\s+│\s+create", table), table

    markdown = render(report, "markdown")
    assert "**all stacks in sync; 2 pending changes (not drift)** (exit code 0)" in markdown
    assert "| `redis-sidekiq` | update | `memorySizeGb` | 4 | 2 |" in markdown
    assert "| `redis-queue` | create |  |  |  |" in markdown
    assert json.loads(render(report, "json"))["stacks"][0]["pending"][0]["properties"] == [{"path": "memorySizeGb", "config": 4, "deployed": 2}]


def test_values_with_square_brackets_are_printed_as_written_not_read_as_markup() -> None:
    """A label value, a Redis config or an audit log's `[fields]` in brackets: rich would take `[bold]` for
    a style and drop it, so the table would show another value than the JSON."""
    item = DriftItem(resource="redis-[prod]", kind="changed",
                     properties=(PropertyDrift(path="labels.note", expected="[bold]keep[/bold]", actual="[red]"),))  # fmt: skip
    table = render(DriftReport(stacks=(StackReport.from_items("staging", "live", [item], 0.1),)), "table")
    assert "redis-[prod]" in table and "[bold]keep[/bold]" in table and "[red]" in table


def test_what_the_live_engine_did_not_compare_is_a_note_in_every_format() -> None:
    note = "redis-sidekiq: displayName encrypted in the state; not compared"
    stack = StackReport.from_items("staging", "live", [], 0.1).model_copy(update={"source": "state", "notes": (note,)})
    report = DriftReport(stacks=(stack,))
    assert f"note: staging (live): {note}" in render(report, "table")
    assert f"- note: {note}" in render(report, "markdown")
    assert json.loads(render(report, "json"))["stacks"][0]["notes"] == [note]
    assert report.exit_code == 0
