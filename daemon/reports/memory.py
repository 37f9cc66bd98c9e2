"""The memory report: its models, and their table, JSON and Markdown renderings (the drift report's conventions)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator
from rich.console import Console
from rich.table import Table
from rich.text import Text

from redisguard.core.errors import ErrorKind, RedisguardError, error_kind
from redisguard.core.memorystore import READY
from redisguard.core.models import Frozen
from redisguard.core.reports import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, JsonReport, exit_code_of, tool_version
from redisguard.core.text import md_cell
from redisguard.daemon.reports.render import (
    error_block,
    first_few,
    format_bytes,
    format_duration,
    format_ratio,
    format_time_to_full,
    md_error_block,
    plain_text,
    print_tables,
)

Level = Literal["ok", "warning", "critical", "unknown"]
"""`unknown`: the instance has no figures (not READY, or no points yet), so no level either way."""
CROSSED: tuple[Level, ...] = ("warning", "critical")
"""The levels that cross a threshold (a project's `threshold` status, exit code 2)."""
Ownership = Literal["declared", "unmanaged", "unknown"]
ProjectStatus = Literal["ok", "threshold", "error"]


class InstanceMemory(Frozen):
    """One instance's memory as its primary node reports it, at the newest aligned point."""

    project_id: str
    region: str
    instance_id: str = Field(description="The short instance id, e.g. redis-sidekiq.")
    stack: str = Field(default="", description='The stack that holds the instance; "" when none does or it is not known.')
    ownership: Ownership = Field(
        default="unmanaged",
        description="declared: a watched stack holds it; unmanaged: no watched stack does; unknown: a stack "
        "that may hold it could not be read (see unreadable_stacks).",
    )
    unreadable_stacks: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _ownership_from_stack(cls, data: Any) -> Any:
        # An instance built with only its stack: declared when it has one, unmanaged when not.
        if isinstance(data, dict) and "ownership" not in data:
            return {**data, "ownership": "declared" if data.get("stack") else "unmanaged"}
        return data
    tier: str
    redis_version: str
    state: str = Field(description="The API's state name; READY when ready.")
    capacity_bytes: int = Field(description="memorySizeGb × 2^30.")
    used_bytes: float | None = None
    max_bytes: float | None = None
    usage_ratio: float | None = None
    system_memory_usage_ratio: float | None = None
    time_to_full_seconds: float | None = Field(
        default=None, description="None when the trend is flat or shrinking, or has too few points."
    )
    level: Level = "ok"


class ProjectMemoryReport(Frozen):
    """The result of the memory check for one project (one target of the `memory` check)."""

    project_id: str
    status: ProjectStatus
    error: str | None = None
    error_kind: ErrorKind | None = None
    duration_seconds: float
    instances: tuple[InstanceMemory, ...] = ()

    def log_fields(self) -> dict[str, Any]:
        """What the daemon's `check finished` line adds: how many instances crossed a threshold and the first few."""
        crossed = [i for i in self.instances if i.level in CROSSED]
        if not crossed:
            return {}
        return {"crossed": len(crossed), "instances": first_few([f"{i.instance_id} ({i.level})" for i in crossed])}

    @classmethod
    def failed(
        cls, project_id: str, error: RedisguardError | str, duration: float, *, kind: ErrorKind | None = None
    ) -> ProjectMemoryReport:
        """A project whose check failed; `kind` defaults to the error's own (a message alone: permanent)."""
        if kind is None:
            kind = error_kind(error) if isinstance(error, BaseException) else "permanent"
        return cls(
            project_id=project_id,
            status="error",
            error=str(error),
            error_kind=kind,
            duration_seconds=round(duration, 3),
        )


class MemoryReport(JsonReport):
    """Every project's result of one run; `exit_code` follows the drift report's convention."""

    projects: tuple[ProjectMemoryReport, ...] = ()

    @property
    def exit_code(self) -> int:
        """1 if a project's check failed (a partial answer is not an answer), else 2 if a threshold is crossed, else 0."""
        return exit_code_of(p.status for p in self.projects)

    def summary(self) -> dict[str, int]:
        """Counts over the projects (`ok`, `threshold`, `errors`) and over their instances."""
        instances = [i for p in self.projects for i in p.instances]
        return {
            "projects": len(self.projects),
            "ok": sum(p.status == "ok" for p in self.projects),
            "threshold": sum(p.status == "threshold" for p in self.projects),
            "errors": sum(p.status == "error" for p in self.projects),
            "instances": len(instances),
            "warning_instances": sum(i.level == "warning" for i in instances),
            "critical_instances": sum(i.level == "critical" for i in instances),
            "unknown_instances": sum(i.level == "unknown" for i in instances),
            "not_ready_instances": sum(i.state != READY for i in instances),
            "unmanaged_instances": sum(i.ownership == "unmanaged" for i in instances),
            "unknown_owner_instances": sum(i.ownership == "unknown" for i in instances),
        }


# --- renderings --------------------------------------------------------------------------------

_STATUS_STYLE = {"ok": "green", "threshold": "yellow", "error": "red"}
_LEVEL_STYLE = {"ok": "green", "warning": "yellow", "critical": "red", "unknown": "dim"}
_STATUS_ICON = {"ok": "✅ ok", "threshold": "⚠️ threshold", "error": "❌ error"}
_LEVEL_ICON = {"ok": "ok", "warning": "⚠️ warning", "critical": "🛑 critical", "unknown": "❔ unknown"}
_VERDICT = {EXIT_OK: "every instance below its thresholds", EXIT_FINDINGS: "a memory threshold is crossed", EXIT_ERROR: "some checks failed"}



def owner_text(i: InstanceMemory) -> str:
    """The stack column: the stack, `(unmanaged)`, or `(unknown: stack X unreadable)`."""
    if i.ownership == "unknown":
        return f"(unknown: {', '.join(i.unreadable_stacks)} unreadable)"
    return i.stack or "(unmanaged)"


def _instance_cells(i: InstanceMemory) -> list[str]:
    return [
        i.project_id,
        i.region,
        i.instance_id,
        owner_text(i),
        i.tier,
        i.state,
        format_bytes(i.used_bytes),
        format_bytes(i.max_bytes),
        format_bytes(i.capacity_bytes),
        format_ratio(i.usage_ratio),
        format_ratio(i.system_memory_usage_ratio),
        format_time_to_full(i.time_to_full_seconds),
    ]


_INSTANCE_COLUMNS = (
    "project",
    "region",
    "instance",
    "stack",
    "tier",
    "state",
    "used",
    "maxmemory",
    "capacity",
    "usage",
    "system",
    "time to full",
    "level",
)
_NUMERIC = {"used", "maxmemory", "capacity", "usage", "system", "time to full"}


def build_tables(report: MemoryReport) -> list[tuple[str, Table]]:
    """(title, table): a summary per project, then one row per instance; every column folds, none cuts."""
    summary = Table()
    summary.add_column("project", overflow="fold")
    summary.add_column("status", overflow="fold")
    for column in ("instances", "warning", "critical", "unknown", "not ready", "duration"):
        summary.add_column(column, justify="right", overflow="fold")
    for p in report.projects:
        levels = [i.level for i in p.instances]
        summary.add_row(
            p.project_id,
            Text(p.status, style=_STATUS_STYLE[p.status]),
            str(len(p.instances)) if p.status != "error" else "—",
            str(levels.count("warning")),
            str(levels.count("critical")),
            str(levels.count("unknown")),
            str(sum(1 for i in p.instances if i.state != READY)),
            format_duration(p.duration_seconds),
        )
    tables = [("Memory report", summary)]
    rows = [i for p in report.projects for i in p.instances]
    if rows:
        detail = Table()
        for column in _INSTANCE_COLUMNS:
            detail.add_column(column, overflow="fold", justify="right" if column in _NUMERIC else "left")
        for i in rows:
            cells: list[str | Text] = list(_instance_cells(i))
            if i.state != READY:
                cells[5] = Text(i.state, style="red")
            detail.add_row(*cells, Text(i.level, style=_LEVEL_STYLE[i.level]))
        tables.append(("Instances", detail))
    return tables


def error_lines(report: MemoryReport) -> list[str]:
    """Each failed project's error: a heading line, then the message indented."""
    return [
        line
        for p in report.projects
        if p.status == "error"
        for line in error_block(f"{p.project_id} (memory, {p.error_kind or 'permanent'}): error", p.error)
    ]


def print_table(report: MemoryReport, console: Console) -> None:
    print_tables(console, build_tables(report), error_lines(report))


def render_markdown(report: MemoryReport) -> str:
    """A pull-request comment or notification: the project summary, then every instance."""
    code = report.exit_code
    lines = [
        "## redisguard memory report",
        "",
        f"**{_VERDICT[code]}** (exit code {code}) · generated {report.generated_at} by redisguard {tool_version()}",
        "",
        "| project | status | instances | warning | critical | unknown | duration |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for p in report.projects:
        levels = [i.level for i in p.instances]
        lines.append(
            f"| {md_cell(p.project_id)} | {_STATUS_ICON[p.status]} | {len(p.instances) if p.status != 'error' else '—'} "
            f"| {levels.count('warning')} | {levels.count('critical')} | {levels.count('unknown')} "
            f"| {format_duration(p.duration_seconds)} |"
        )
    for p in report.projects:
        if p.status == "error":
            lines += md_error_block(f"{md_cell(p.project_id)}: error ({p.error_kind})", p.error)
    rows = [i for p in report.projects for i in p.instances]
    if rows:
        header = "| " + " | ".join(_INSTANCE_COLUMNS) + " |"
        align = "|" + "|".join("---:" if c in _NUMERIC else "---" for c in _INSTANCE_COLUMNS) + "|"
        lines += ["", "### Instances", "", header, align]
        for i in rows:
            cells = [md_cell(c) for c in _instance_cells(i)]
            cells[2] = f"`{cells[2]}`"
            lines.append("| " + " | ".join(cells) + f" | {_LEVEL_ICON[i.level]} |")
    return "\n".join(lines) + "\n"


def render(report: MemoryReport, fmt: str) -> str:
    if fmt == "json":
        return report.to_json()
    if fmt == "markdown":
        return render_markdown(report)
    return plain_text(lambda console: print_table(report, console))
