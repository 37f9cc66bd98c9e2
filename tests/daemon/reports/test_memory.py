"""The memory report: exit codes, table/JSON/Markdown renderings, and memory-report's errors as a user meets them."""

from __future__ import annotations

import io
import json
from importlib.metadata import version
from pathlib import Path

import pytest
from rich.console import Console

from redisguard.core.errors import TransientError
from redisguard.core.memorystore import GIB
from redisguard.daemon.cli.main import main
from redisguard.daemon.reports.memory import (
    InstanceMemory,
    MemoryReport,
    ProjectMemoryReport,
    print_table,
    render,
)
from redisguard.daemon.reports.render import format_bytes, format_time_to_full
from tests.fixtures.processes import free_port
from tests.fixtures.repo import REPO

LONG_ID = "redis-a-very-long-instance-name-of-40-ch"


def _instance(instance_id: str, ratio: float | None, level: str = "ok", **fields: object) -> InstanceMemory:
    values: dict[str, object] = {
        "project_id": "redisguard-staging",
        "region": "europe-west1",
        "instance_id": instance_id,
        "stack": "staging",
        "tier": "BASIC",
        "redis_version": "REDIS_7_2",
        "state": "READY",
        "capacity_bytes": GIB,
        "used_bytes": None if ratio is None else ratio * 16 * 2**20,
        "max_bytes": None if ratio is None else 16.0 * 2**20,
        "usage_ratio": ratio,
        "system_memory_usage_ratio": None if ratio is None else ratio / 2,
        "level": level,
        **fields,
    }
    return InstanceMemory.model_validate(values)


OK = ProjectMemoryReport(
    project_id="redisguard-staging",
    status="threshold",
    duration_seconds=0.05,
    instances=(
        _instance(LONG_ID, 0.85, "warning", time_to_full_seconds=93_784.0),
        _instance("redis-cache", 0.2, stack=""),
        _instance("redis-sessions", None, "unknown", state="REPAIRING", tier="STANDARD_HA"),
    ),
)
FAILED = ProjectMemoryReport.failed(
    "redisguard-production", TransientError("list_time_series projects/redisguard-production: no answer"), 1.0
)


def test_exit_codes() -> None:
    assert MemoryReport(projects=()).exit_code == 0
    fine = OK.model_copy(update={"status": "ok", "instances": OK.instances[1:]})
    assert MemoryReport(projects=(fine,)).exit_code == 0
    assert MemoryReport(projects=(OK,)).exit_code == 2
    # An error wins over a threshold: a partial answer is not an answer.
    assert MemoryReport(projects=(OK, FAILED)).exit_code == 1
    assert FAILED.error_kind == "transient" and FAILED.instances == ()


def test_table_cuts_nothing_in_a_narrow_terminal() -> None:
    buffer = io.StringIO()
    print_table(MemoryReport(projects=(OK, FAILED)), Console(file=buffer, width=60, force_terminal=True, color_system=None))
    out = buffer.getvalue()
    # rich marks a cut cell or header with an ellipsis; folded ones keep every character.
    assert "…" not in out
    assert "redisguard-production (memory, transient): error" in out
    assert "  list_time_series projects/redisguard-production: no answer" in out


def test_plain_table_and_markdown_and_json() -> None:
    report = MemoryReport(generated_at="2026-12-01T12:00:00Z", projects=(OK, FAILED))
    table = render(report, "table")
    row = next(line for line in table.splitlines() if LONG_ID in line)
    assert "warning" in row and "85.0 %" in row and "13.6 MiB" in row and "1d 2h" in row
    assert "(unmanaged)" in next(line for line in table.splitlines() if "redis-cache" in line)
    assert "REPAIRING" in next(line for line in table.splitlines() if "redis-sessions" in line)
    markdown = render(report, "markdown")
    # A PR comment or notification says which redisguard wrote it, as the drift report's does.
    assert f"**some checks failed** (exit code 1) · generated 2026-12-01T12:00:00Z by redisguard {version('redisguard')}" in markdown
    assert f"`{LONG_ID}`" in markdown and "⚠️ warning" in markdown
    assert "```text\nlist_time_series projects/redisguard-production: no answer\n```" in markdown
    data = json.loads(render(report, "json"))
    # The head every redisguard report's JSON starts with (the drift report's too), then the projects.
    assert list(data) == ["schema_version", "tool_version", "generated_at", "exit_code", "summary", "projects"]
    assert data["schema_version"] == 1 and data["generated_at"] == "2026-12-01T12:00:00Z" and data["exit_code"] == 1
    assert data["summary"] == {
        "projects": 2,
        "ok": 0,
        "threshold": 1,
        "errors": 1,
        "instances": 3,
        "warning_instances": 1,
        "critical_instances": 0,
        "unknown_instances": 1,
        "not_ready_instances": 1,
        "unmanaged_instances": 1,
        "unknown_owner_instances": 0,
    }
    assert data["projects"][1] == {
        "project_id": "redisguard-production",
        "status": "error",
        "error": "list_time_series projects/redisguard-production: no answer",
        "error_kind": "transient",
        "duration_seconds": 1.0,
        "instances": [],
    }
    assert data["projects"][0]["instances"][2]["usage_ratio"] is None


def test_formats() -> None:
    assert format_bytes(None) == "—"
    assert format_bytes(512) == "512 B"
    assert format_bytes(3 * GIB) == "3.0 GiB"
    assert format_time_to_full(None) == "—"
    assert format_time_to_full(59) == "0m"
    assert format_time_to_full(3 * 3600 + 120) == "3h 2m"


def test_unknown_stack_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["memory-report", "--config", str(REPO / "redisguard.yaml"), "--stack", "prod"]) == 1
    err = capsys.readouterr().err
    assert "--stack prod: not in pulumi.stacks; allowed: staging, production" in err


def test_unreachable_apis_fail_each_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "redisguard.yaml"
    config.write_text(
        f"pulumi:\n  work_dir: {REPO / 'program'}\n  stacks: [staging, production]\n"
        f"gcp:\n  redis_endpoint: http://127.0.0.1:{free_port()}\n  monitoring_endpoint: 127.0.0.1:{free_port()}\n"
        "  request_timeout_seconds: 1\n"
    )
    output = tmp_path / "memory.json"
    assert main(["memory-report", "--config", str(config), "--format", "json", "--output", str(output)]) == 1
    data = json.loads(output.read_text())
    assert data["exit_code"] == 1 and data["tool_version"] == version("redisguard")
    assert data["summary"]["projects"] == 2 and data["summary"]["errors"] == 2
    assert [p["status"] for p in data["projects"]] == ["error", "error"]
    assert all(p["instances"] == [] and p["error_kind"] == "permanent" for p in data["projects"])
    err = capsys.readouterr().err
    assert "redisguard memory-report: error: project redisguard-staging:" in err
