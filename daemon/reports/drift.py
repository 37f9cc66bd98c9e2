"""The drift report both engines produce, and its table, JSON and Markdown renderings."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from redisguard.core.errors import ErrorKind
from redisguard.core.models import Frozen
from redisguard.core.pulumi import INSTANCE_TYPE
from redisguard.core.reports import EXIT_DRIFT, EXIT_ERROR, EXIT_IN_SYNC, JsonReport, exit_code_of, tool_version
from redisguard.core.text import md_cell
from redisguard.daemon.config import DriftKind, SourceName
from redisguard.daemon.fleet.pending import PendingChange
from redisguard.daemon.reports.cause import Cause
from redisguard.daemon.reports.render import (
    error_block,
    first_few,
    format_duration,
    format_value,
    md_error_block,
    plain_text,
    print_tables,
)

Status = Literal["in_sync", "drift", "error"]
Engine = Literal["pulumi", "live"]


class PropertyDrift(Frozen):
    """One property whose live value differs from the declared (or recorded) one.

    `expected` is the value the stack state or config holds, `actual` the one the cloud has;
    None on either side means the property is absent there.
    """

    path: str
    expected: Any = None
    actual: Any = None


class DriftItem(Frozen):
    """One drifted resource: `changed` (properties differ), `deleted` (in the Pulumi state,
    gone from the cloud), `missing` (declared, not live) or `unmanaged` (live, declared nowhere)."""

    resource: str
    type: str = INSTANCE_TYPE
    kind: DriftKind
    properties: tuple[PropertyDrift, ...] = ()
    instance: str | None = None
    """The instance's API name (projects/P/locations/R/instances/I, R `-` when the stack does not say)
    when the live engine knows it; what the audit log is searched for."""
    cause: Cause | None = None
    """Who changed it, from the project's Admin Activity audit log (live engine; None when not read)."""


class InstanceState(Frozen):
    """A declared instance the API does not show as READY (CREATING, UPDATING, REPAIRING, MAINTENANCE, ...).

    Health, not drift: its config may well match. The report shows it so nobody reads "in sync"
    as "all is well"; the daemon's `redisguard_instance_ready` gauge is what alerts on it.
    """

    resource: str
    state: str


def _by_kind_and_resource(item: DriftItem) -> tuple[str, str]:
    return item.kind, item.resource


def _by_resource(state: InstanceState) -> str:
    return state.resource


class StackReport(Frozen):
    """The result of one engine on one stack; `not_ready` lists its declared instances that are not READY."""

    stack: str
    engine: Engine
    status: Status
    duration_seconds: float
    error: str | None = None
    error_kind: ErrorKind | None = None
    items: tuple[DriftItem, ...] = ()
    not_ready: tuple[InstanceState, ...] = ()
    source: SourceName | None = None
    """Where the live engine read the stack's declared side (config, state or both); None for the pulumi engine."""
    pending: tuple[PendingChange, ...] = ()
    """With source `both`: the config ahead of the deployed state (not drift; the status ignores it)."""
    notes: tuple[str, ...] = ()
    """What the live engine did not compare and why (a secret input the state holds encrypted, a resource with no id)."""
    unmanaged_projects: tuple[str, ...] = ()
    """The projects whose unmanaged instances this (live) result reports: each project is reported by one stack."""

    @classmethod
    def from_items(
        cls,
        stack: str,
        engine: Engine,
        items: Iterable[DriftItem],
        duration: float,
        not_ready: Iterable[InstanceState] = (),
        **fields: Any,
    ) -> StackReport:
        """A check that ran; `fields` are the other fields the engine fills (the live engine's source, pending, ...)."""
        ordered = tuple(sorted(items, key=_by_kind_and_resource))
        return cls(
            stack=stack,
            engine=engine,
            status="drift" if ordered else "in_sync",
            duration_seconds=round(duration, 3),
            items=ordered,
            not_ready=tuple(sorted(not_ready, key=_by_resource)),
            **fields,
        )

    def log_fields(self) -> dict[str, Any]:
        """What the daemon's `check finished` line adds: how many resources drifted and the first few."""
        if not self.items:
            return {}
        return {"drifted": len(self.items), "resources": first_few([f"{i.resource} ({i.kind})" for i in self.items])}

    @classmethod
    def failed(
        cls,
        stack: str,
        engine: Engine,
        error: str,
        duration: float,
        items: Iterable[DriftItem] = (),
        *,
        kind: ErrorKind = "permanent",
        not_ready: Iterable[InstanceState] = (),
        **fields: Any,
    ) -> StackReport:
        """A check that failed; `items` is what it did find before the part that failed (the live
        engine's changed and missing clusters when only the unmanaged part could not be decided)."""
        return cls(
            stack=stack,
            engine=engine,
            status="error",
            duration_seconds=round(duration, 3),
            error=error,
            error_kind=kind,
            items=tuple(sorted(items, key=lambda i: (i.kind, i.resource))),
            not_ready=tuple(sorted(not_ready, key=lambda i: i.resource)),
            **fields,
        )


class DriftReport(JsonReport):
    """Every stack's result of one run; `exit_code` follows `terraform plan -detailed-exitcode`."""

    stacks: tuple[StackReport, ...] = ()

    @property
    def exit_code(self) -> int:
        """1 if any stack errored (a partial answer is not an answer), else 2 on drift, else 0."""
        return exit_code_of(s.status for s in self.stacks)

    def with_paths_relative_to(self, folder: Path) -> DriftReport:
        """The report with `folder/` taken off the paths in its errors: a JSON file or PR comment
        shows `program/Pulumi.staging.yaml`, not the runner's /tmp/... or /home/... checkout."""
        prefix = str(folder).rstrip("/") + "/"
        stacks = tuple(
            s.model_copy(update={"error": s.error.replace(prefix, "")}) if s.error and prefix in s.error else s
            for s in self.stacks
        )
        return self.model_copy(update={"stacks": stacks})

    def summary(self) -> dict[str, int]:
        """Counts over every (stack, engine) check: `stacks` distinct stacks, `checks` results."""
        return {
            "stacks": len({s.stack for s in self.stacks}),
            "checks": len(self.stacks),
            "in_sync": sum(s.status == "in_sync" for s in self.stacks),
            "drift": sum(s.status == "drift" for s in self.stacks),
            "errors": sum(s.status == "error" for s in self.stacks),
            "drifted_resources": sum(len(s.items) for s in self.stacks),
            "not_ready_instances": sum(len(s.not_ready) for s in self.stacks),
            "pending_changes": sum(len(s.pending) for s in self.stacks),
        }


def status_text(s: StackReport) -> str:
    """A check's status for people: `error (transient)` / `error (permanent)` with its kind."""
    if s.status == "error" and s.error_kind:
        return f"error ({s.error_kind})"
    return s.status


# --- table (rich) ---------------------------------------------------------------------------

_STATUS_STYLE = {"in_sync": "green", "drift": "yellow", "error": "red"}
_KIND_STYLE = {"changed": "yellow", "deleted": "red", "missing": "red", "unmanaged": "magenta"}


def build_tables(report: DriftReport) -> list[tuple[str, Table]]:
    """(title, table): a summary, the instances not READY per stack, then one table of drifted
    properties per stack with drift.

    Titles are separate lines, not rich table titles: rich pads a title to the table's width,
    which off a terminal leaves a line of trailing spaces in a CI log. An error is not a cell:
    its full (possibly multi-line) text follows the tables, see error_lines(). Every column
    folds rather than cuts: a report that shows "redisConfigs.maxmemory…" has lost the one
    thing it was asked for.
    """
    tables = [("Drift report", _summary_table(report))]
    tables += [(f"{s.stack} ({s.engine}): instances not READY", _not_ready_table(s)) for s in report.stacks if s.not_ready]
    tables += [(f"{s.stack} ({s.engine})", _drift_table(s)) for s in report.stacks if s.items]
    tables += [(f"{s.stack}: pending (config ahead of the deployed state; not drift)", _pending_table(s)) for s in report.stacks if s.pending]
    tables += [
        (f"{s.stack} ({s.engine}): who changed it (Admin Activity audit log)", _cause_table(s))
        for s in report.stacks
        if any(i.cause for i in s.items)
    ]
    return tables


def _summary_table(report: DriftReport) -> Table:
    summary = Table(show_lines=False)
    summary.add_column("stack", overflow="fold")
    summary.add_column("engine")
    summary.add_column("status")
    summary.add_column("drifted", justify="right")
    summary.add_column("not ready", justify="right")
    summary.add_column("duration", justify="right", no_wrap=True)
    for s in report.stacks:
        summary.add_row(
            s.stack,
            s.engine,
            Text(status_text(s), style=_STATUS_STYLE[s.status]),
            str(len(s.items)),
            Text(str(len(s.not_ready)), style="yellow" if s.not_ready else ""),
            format_duration(s.duration_seconds),
        )
    return summary


def _not_ready_table(s: StackReport) -> Table:
    states = Table()
    states.add_column("resource", overflow="fold")
    states.add_column("state")
    for instance in s.not_ready:
        states.add_row(instance.resource, Text(instance.state, style="yellow"))
    return states


def _drift_table(s: StackReport) -> Table:
    """One row per drifted property; a resource's name and kind on its first row only."""
    detail = Table()
    detail.add_column("resource", overflow="fold")
    detail.add_column("kind")
    detail.add_column("property", overflow="fold")
    detail.add_column("expected", overflow="fold")
    detail.add_column("actual", overflow="fold")
    for item in s.items:
        kind = Text(item.kind, style=_KIND_STYLE[item.kind])
        if not item.properties:
            detail.add_row(item.resource, kind, "", "", "")
            continue
        for n, prop in enumerate(item.properties):
            detail.add_row(
                item.resource if n == 0 else "",
                kind if n == 0 else "",
                prop.path,
                format_value(prop.expected),
                format_value(prop.actual),
            )
    return detail


def _pending_rows(s: StackReport) -> list[tuple[str, str, str, str, str]]:
    """(resource, change, property, in the config, deployed): one row per property of an update, one per create or delete."""
    rows: list[tuple[str, str, str, str, str]] = []
    for change in s.pending:
        if not change.properties:
            rows.append((change.resource, change.change, "", "", ""))
        for n, prop in enumerate(change.properties):
            rows.append((change.resource if n == 0 else "", change.change if n == 0 else "", prop.path,
                         format_value(prop.config), format_value(prop.deployed)))  # fmt: skip
    return rows


def _pending_table(s: StackReport) -> Table:
    pending = Table()
    for column in ("resource", "change", "property", "in the config", "deployed"):
        pending.add_column(column, overflow="fold")
    for row in _pending_rows(s):
        pending.add_row(*row)
    return pending


def _cause_table(s: StackReport) -> Table:
    """One row per drifted resource whose cause was read: its changes, newest first, or why unknown."""
    causes = Table()
    causes.add_column("resource", overflow="fold")
    causes.add_column("cause", overflow="fold")
    for item in s.items:
        if item.cause is not None:
            causes.add_row(item.resource, "\n".join(item.cause.lines()))
    return causes


def error_lines(report: DriftReport) -> list[str]:
    """Each failed check's error as it reads in a log (error_block), then each stack's notes."""
    errors = [
        line for s in report.stacks if s.status == "error" for line in error_block(f"{s.stack} ({s.engine}): {status_text(s)}", s.error)
    ]
    return errors + [f"note: {s.stack} ({s.engine}): {note}" for s in report.stacks for note in s.notes]


def print_table(report: DriftReport, console: Console) -> None:
    """Print the tables, then the errors (see print_tables)."""
    print_tables(console, build_tables(report), error_lines(report))


def render_table(report: DriftReport) -> str:
    """The table rendering as plain text (for --output FILE and tests)."""
    return plain_text(lambda console: print_table(report, console))


# --- markdown ------------------------------------------------------------------------------

_STATUS_ICON = {"in_sync": "✅ in sync", "drift": "⚠️ drift", "error": "❌ error"}


def _md_status(s: StackReport) -> str:
    return f"{_STATUS_ICON[s.status]} ({s.error_kind})" if s.status == "error" and s.error_kind else _STATUS_ICON[s.status]


def _md_code(value: Any) -> str:
    return "—" if value is None else f"`{md_cell(format_value(value))}`"


def render_markdown(report: DriftReport) -> str:
    """A pull-request comment: a summary table, then the drifted properties per stack."""
    code = report.exit_code
    verdict = {EXIT_IN_SYNC: "all stacks in sync", EXIT_DRIFT: "drift found", EXIT_ERROR: "some checks failed"}[code]
    not_ready = report.summary()["not_ready_instances"]
    if not_ready:
        verdict += f"; {not_ready} instance{'s' if not_ready != 1 else ''} not READY"
    pending = report.summary()["pending_changes"]
    if pending:
        verdict += f"; {pending} pending change{'s' if pending != 1 else ''} (not drift)"
    lines = [
        "## redisguard drift report",
        "",
        f"**{verdict}** (exit code {code}) · generated {report.generated_at} by redisguard {tool_version()}",
        "",
        "| stack | engine | status | drifted | not ready | duration |",
        "|---|---|---|---:|---:|---:|",
    ]
    for s in report.stacks:
        lines.append(
            f"| {md_cell(s.stack)} | {s.engine} | {_md_status(s)} | {len(s.items)} | {len(s.not_ready)} | {format_duration(s.duration_seconds)} |"
        )
    for s in report.stacks:
        if s.not_ready:
            lines += ["", f"### {md_cell(s.stack)} ({s.engine}): instances not READY", "", "| resource | state |", "|---|---|"]
            lines += [f"| `{md_cell(i.resource)}` | {md_cell(i.state)} |" for i in s.not_ready]
        if s.status == "error":
            lines += md_error_block(f"{md_cell(s.stack)} ({s.engine}): {status_text(s)}", s.error)
        if s.notes:
            lines += ["", *(f"- note: {md_cell(note)}" for note in s.notes)]
        if s.pending:
            lines += ["", f"### {md_cell(s.stack)}: pending (the config ahead of the deployed state; not drift)", "",
                      "| resource | change | property | in the config | deployed |", "|---|---|---|---|---|"]  # fmt: skip
            lines += [
                f"| {f'`{md_cell(r)}`' if r else ''} | {c} | {f'`{md_cell(p)}`' if p else ''} | {md_cell(want)} | {md_cell(have)} |"
                for r, c, p, want, have in _pending_rows(s)
            ]
        if not s.items:
            continue
        lines += [
            "",
            f"### {md_cell(s.stack)} ({s.engine}): {len(s.items)} drifted resource{'s' if len(s.items) != 1 else ''}",
            "",
            "| resource | kind | property | expected | actual |",
            "|---|---|---|---|---|",
        ]
        for item in s.items:
            name = f"`{md_cell(item.resource)}`"
            if not item.properties:
                lines.append(f"| {name} | {item.kind} | | | |")
            for prop in item.properties:
                lines.append(
                    f"| {name} | {item.kind} | `{md_cell(prop.path)}` | {_md_code(prop.expected)} | {_md_code(prop.actual)} |"
                )
        explained = [item for item in s.items if item.cause is not None]
        if explained:
            lines += ["", "**Who changed it** (Admin Activity audit log, newest first)", "", "| resource | cause |", "|---|---|"]
            lines += [
                f"| `{md_cell(item.resource)}` | {'<br>'.join(md_cell(line) for line in item.cause.lines())} |"
                for item in explained
                if item.cause is not None
            ]
    return "\n".join(lines) + "\n"




def render(report: DriftReport, fmt: str) -> str:
    if fmt == "json":
        return report.to_json()
    if fmt == "markdown":
        return render_markdown(report)
    return render_table(report)
