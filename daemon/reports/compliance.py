"""The compliance report: the policy pack's verdict on what runs, per instance and policy; its models and their table, JSON and Markdown renderings (the memory report's conventions)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from rich.console import Console
from rich.table import Table
from rich.text import Text

from redisguard.core.errors import ErrorKind, RedisguardError, error_kind
from redisguard.core.models import Frozen
from redisguard.core.reports import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, JsonReport, exit_code_of, tool_version
from redisguard.core.text import md_cell
from redisguard.daemon.reports.cause import Cause
from redisguard.daemon.reports.memory import Ownership
from redisguard.daemon.reports.render import (
    error_block,
    first_few,
    format_duration,
    md_error_block,
    plain_text,
    print_tables,
)

FindingLevel = Literal["mandatory", "advisory", "remediate"]
"""The pack's enforcement level of the policy for that instance's stack (its policy config)."""
ComplianceStatus = Literal["compliant", "advisory", "violation", "error"]
"""A project's: violation (a mandatory finding: exit 2, as `policy-check` blocks), advisory (advisory
findings only: exit 0, as `pulumi up` goes on), compliant, or error (its check failed)."""
VIOLATION: ComplianceStatus = "violation"


class ComplianceFinding(Frozen):
    """One policy an instance breaks, as the pack words it. (A later "likely cause" — who changed the
    instance, from the audit logs — attaches here, per finding.)"""

    policy: str
    level: FindingLevel
    message: str


class InstanceCompliance(Frozen):
    """One live instance judged by the pack, with the policy config of the stack that holds it."""

    project_id: str
    region: str
    instance_id: str
    stack: str = Field(default="", description='The stack that holds the instance; "" when none does or it is not known.')
    ownership: Ownership = "unmanaged"
    unreadable_stacks: tuple[str, ...] = ()
    policy_config: str | None = Field(
        default=None, description="The policy config it was judged with; None for the pack's defaults."
    )
    production: bool = Field(
        default=False,
        description="The pack holds it to be production (policies/config.py's decision with its stack's policy "
        "config: a production stack glob or a production label).",
    )
    judged: bool = Field(
        default=True,
        description="False when its owner is unknown (a stack that may hold it cannot be read): which config "
        "applies is not known, so it is not judged rather than judged with the wrong one.",
    )
    findings: tuple[ComplianceFinding, ...] = ()
    cause: Cause | None = None
    """Who changed the instance since it was last seen in sync (the Admin Activity audit log), for an
    instance with findings; None when it has none or audit.enabled is off."""

    @property
    def name(self) -> str:
        return f"projects/{self.project_id}/locations/{self.region}/instances/{self.instance_id}"


class ProjectComplianceReport(Frozen):
    """The result of the compliance check for one project (one target of the `compliance` check)."""

    project_id: str
    status: ComplianceStatus
    error: str | None = None
    error_kind: ErrorKind | None = None
    duration_seconds: float
    instances: tuple[InstanceCompliance, ...] = ()

    def findings(self) -> list[tuple[InstanceCompliance, ComplianceFinding]]:
        return [(i, f) for i in self.instances for f in i.findings]

    def log_fields(self) -> dict[str, Any]:
        """What the daemon's `check finished` line adds: the mandatory findings and the first few."""
        mandatory = [(i, f) for i, f in self.findings() if f.level == "mandatory"]
        if not mandatory:
            return {}
        return {"mandatory": len(mandatory), "findings": first_few([f"{i.instance_id} ({f.policy})" for i, f in mandatory])}

    @classmethod
    def failed(
        cls, project_id: str, error: RedisguardError | str, duration: float, *, kind: ErrorKind | None = None
    ) -> ProjectComplianceReport:
        """A project whose check failed; `kind` defaults to the error's own (a message alone: permanent)."""
        if kind is None:
            kind = error_kind(error) if isinstance(error, BaseException) else "permanent"
        return cls(project_id=project_id, status="error", error=str(error), error_kind=kind,
                   duration_seconds=round(duration, 3))  # fmt: skip


def status_of(instances: tuple[InstanceCompliance, ...]) -> ComplianceStatus:
    levels = {f.level for i in instances for f in i.findings}
    if "mandatory" in levels:
        return VIOLATION
    return "advisory" if levels else "compliant"


class PackRun(Frozen):
    """The policy pack one run used: one process for every judgement of the run."""

    pack: str
    starts: int = Field(description="Pack processes started by the run: 1 when it judged anything, else 0.")
    startup_seconds: float = 0.0


class ComplianceReport(JsonReport):
    """Every project's result of one run; `exit_code` follows the report convention (core/reports.py)."""

    projects: tuple[ProjectComplianceReport, ...] = ()
    pack: PackRun | None = None

    @property
    def exit_code(self) -> int:
        """1 if a project's check failed, else 2 if a mandatory policy is violated, else 0."""
        return exit_code_of(p.status for p in self.projects)

    def summary(self) -> dict[str, int]:
        instances = [i for p in self.projects for i in p.instances]
        findings = [f for i in instances for f in i.findings]
        return {
            "projects": len(self.projects),
            "errors": sum(p.status == "error" for p in self.projects),
            "instances": len(instances),
            "not_judged_instances": sum(not i.judged for i in instances),
            "violating_instances": sum(any(f.level == "mandatory" for f in i.findings) for i in instances),
            "mandatory_violations": sum(f.level == "mandatory" for f in findings),
            "advisory_violations": sum(f.level == "advisory" for f in findings),
        }


# --- renderings --------------------------------------------------------------------------------

_STATUS_STYLE = {"compliant": "green", "advisory": "yellow", "violation": "red", "error": "red"}
_LEVEL_STYLE = {"mandatory": "red", "advisory": "yellow", "remediate": "yellow"}
_STATUS_ICON = {"compliant": "✅ compliant", "advisory": "ℹ️ advisory", "violation": "🛑 violation", "error": "❌ error"}
_VERDICT = {
    EXIT_OK: "no mandatory policy is violated by what runs",
    EXIT_FINDINGS: "a mandatory policy is violated by what runs",
    EXIT_ERROR: "some checks failed",
}
_FINDING_COLUMNS = ("project", "region", "instance", "stack", "level", "policy", "message")


def owner_text(i: InstanceCompliance) -> str:
    """The stack column: the stack, `(unmanaged)`, or `(unknown: stack X unreadable)`."""
    if i.ownership == "unknown":
        return f"(unknown: {', '.join(i.unreadable_stacks)} unreadable)"
    return i.stack or "(unmanaged)"


def _counts(p: ProjectComplianceReport) -> list[str]:
    if p.status == "error":
        return ["—", "—", "—", "—"]
    levels = [f.level for _, f in p.findings()]
    return [str(len(p.instances)), str(sum(not i.judged for i in p.instances)),
            str(levels.count("mandatory")), str(levels.count("advisory"))]  # fmt: skip


def build_tables(report: ComplianceReport) -> list[tuple[str, Table]]:
    """(title, table): a summary per project, then one row per finding; every column folds, none cuts."""
    summary = Table()
    summary.add_column("project", overflow="fold")
    summary.add_column("status", overflow="fold")
    for column in ("instances", "not judged", "mandatory", "advisory", "duration"):
        summary.add_column(column, justify="right", overflow="fold")
    for p in report.projects:
        summary.add_row(p.project_id, Text(p.status, style=_STATUS_STYLE[p.status]), *_counts(p),
                        format_duration(p.duration_seconds))  # fmt: skip
    tables = [("Compliance report", summary)]
    rows = [(i, f) for p in report.projects for i, f in p.findings()]
    if rows:
        detail = Table()
        for column in _FINDING_COLUMNS:
            detail.add_column(column, overflow="fold")
        for i, f in rows:
            detail.add_row(i.project_id, i.region, i.instance_id, owner_text(i), Text(f.level, style=_LEVEL_STYLE[f.level]),
                           f.policy, f.message)  # fmt: skip
        tables.append(("Findings", detail))
        causes = [i for p in report.projects for i in p.instances if i.findings and i.cause is not None]
        if causes:
            table = Table()
            table.add_column("instance", overflow="fold")
            table.add_column("cause", overflow="fold")
            for i in causes:
                assert i.cause is not None
                table.add_row(i.instance_id, "\n".join(i.cause.lines()))
            tables.append(("Who changed it (Admin Activity audit log)", table))
    unjudged = [i for p in report.projects for i in p.instances if not i.judged]
    if unjudged:
        table = Table()
        for column in ("project", "region", "instance", "stack"):
            table.add_column(column, overflow="fold")
        for i in unjudged:
            table.add_row(i.project_id, i.region, i.instance_id, owner_text(i))
        tables.append(("Not judged (owner unknown)", table))
    return tables


def error_lines(report: ComplianceReport) -> list[str]:
    return [
        line
        for p in report.projects
        if p.status == "error"
        for line in error_block(f"{p.project_id} (compliance, {p.error_kind or 'permanent'}): error", p.error)
    ]


def print_table(report: ComplianceReport, console: Console) -> None:
    print_tables(console, build_tables(report), error_lines(report))


def render_markdown(report: ComplianceReport) -> str:
    """A pull-request comment or notification: the project summary, then every finding."""
    code = report.exit_code
    lines = [
        "## redisguard compliance report",
        "",
        f"**{_VERDICT[code]}** (exit code {code}) · generated {report.generated_at} by redisguard {tool_version()}",
        "",
        "| project | status | instances | not judged | mandatory | advisory | duration |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for p in report.projects:
        lines.append(f"| {md_cell(p.project_id)} | {_STATUS_ICON[p.status]} | " + " | ".join(_counts(p))
                     + f" | {format_duration(p.duration_seconds)} |")  # fmt: skip
    for p in report.projects:
        if p.status == "error":
            lines += md_error_block(f"{md_cell(p.project_id)}: error ({p.error_kind})", p.error)
    rows = [(i, f) for p in report.projects for i, f in p.findings()]
    if rows:
        lines += ["", "### Findings", "", "| " + " | ".join(_FINDING_COLUMNS) + " |", "|" + "---|" * len(_FINDING_COLUMNS)]
        for i, f in rows:
            cells = [md_cell(i.project_id), md_cell(i.region), f"`{md_cell(i.instance_id)}`", md_cell(owner_text(i)),
                     f.level, f"`{md_cell(f.policy)}`", md_cell(f.message, markdown=True)]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
        causes = [i for p in report.projects for i in p.instances if i.findings and i.cause is not None]
        if causes:
            lines += ["", "### Who changed it (Admin Activity audit log)", "", "| instance | cause |", "|---|---|"]
            lines += [f"| `{md_cell(i.instance_id)}` | {'<br>'.join(md_cell(line) for line in i.cause.lines())} |"
                      for i in causes if i.cause is not None]  # fmt: skip
    return "\n".join(lines) + "\n"


def render(report: ComplianceReport, fmt: str) -> str:
    if fmt == "json":
        return report.to_json()
    if fmt == "markdown":
        return render_markdown(report)
    return plain_text(lambda console: print_table(report, console))
