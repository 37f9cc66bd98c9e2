"""The status page at `/`: the daemon's latest results as one server-rendered HTML page.

It draws only what the daemon already holds (the published results and a short history of
memory usage kept here for the sparklines), never runs a check, loads nothing from
elsewhere (no script, no CDN: it works offline and behind a proxy) and escapes every value
with Jinja2's autoescape: an instance label or a property value is untrusted input.

Wiring (the daemon command): one `UsageHistory`, registered as `Results(listeners=[history.observe])`,
and `Site(..., config=lambda: (config_in_force, config_file), history=history)`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import jinja2
import markupsafe
import yaml

from redisguard.core import secrets as core_secrets
from redisguard.core.links import doc_url
from redisguard.core.secrets import REDACTED
from redisguard.daemon.checks.names import CHECK_NAMES, MEMORY
from redisguard.daemon.checks.registry import DRIFT_CHECKS
from redisguard.daemon.config import RedisguardConfig, ThresholdSettings
from redisguard.daemon.fleet.pending import PendingChange
from redisguard.daemon.reports.compliance import ComplianceReport
from redisguard.daemon.reports.drift import DriftItem, DriftReport
from redisguard.daemon.reports.memory import CROSSED, InstanceMemory, MemoryReport, ProjectMemoryReport
from redisguard.daemon.reports.render import (
    format_bytes,
    format_duration,
    format_ratio,
    format_time_to_full,
    format_value,
)
from redisguard.daemon.service.health import Health
from redisguard.daemon.service.results import Key, TargetState
from redisguard.daemon.sharding import WHOLE, Shard

REFRESH_SECONDS = 30
"""How often the page reloads itself: the fastest default schedule (memory) is 1 minute."""
HISTORY_POINTS = 120
"""Usage samples kept per instance for its sparkline: two hours at the default 1-minute memory schedule."""

# Served with the page: even if a value slipped through unescaped, no script would run and
# nothing would load from another origin.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("redisguard.daemon.service", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


# --- the short usage history behind the sparklines -------------------------------------------


InstanceKey = tuple[str, str, str]
"""(project_id, region, instance_id)"""


class UsageHistory:
    """Recent memory usage ratios per instance, fed by every published memory result.

    Bounded twice: HISTORY_POINTS per instance, and an instance missing from its project's
    latest successful result is forgotten (a deleted instance leaves no line behind).
    A failed run records nothing: a gap, never a made-up value.
    """

    def __init__(self, points: int = HISTORY_POINTS) -> None:
        self._points = points
        self._lock = threading.Lock()
        self._series: dict[InstanceKey, deque[tuple[float, float]]] = {}

    def record(self, report: ProjectMemoryReport, at: float) -> None:
        """Add one project memory result taken at wall-clock time `at`."""
        if report.status == "error":
            return
        seen = set()
        with self._lock:
            for inst in report.instances:
                key = (inst.project_id, inst.region, inst.instance_id)
                seen.add(key)
                if inst.usage_ratio is None:
                    continue
                series = self._series.setdefault(key, deque(maxlen=self._points))
                if series and series[-1][0] >= at:
                    continue
                series.append((at, float(inst.usage_ratio)))
            for key in [k for k in self._series if k[0] == report.project_id and k not in seen]:
                del self._series[key]

    def observe(self, state: TargetState) -> None:
        """A Results listener: records each memory result as it is published."""
        if state.check == MEMORY:
            self.record(state.result, state.finished_at)

    def series(self, key: InstanceKey) -> tuple[tuple[float, float], ...]:
        with self._lock:
            return tuple(self._series.get(key, ()))


# --- what the template shows -------------------------------------------------------------------


@dataclass(frozen=True)
class Sparkline:
    """An inline SVG polyline of usage ratios (0 at the bottom, 1 at the top) with threshold lines."""

    points: str
    width: int
    height: int
    warning_y: float
    critical_y: float
    samples: int
    title: str


@dataclass(frozen=True)
class StatusView:
    """Everything the page may show, taken from one snapshot of the results (the server builds it)."""

    version: str
    health: Health
    """The /healthz verdict: which (check, target) is failed, stale or pending."""
    drift: DriftReport
    """The latest result of every drift target as one report."""
    memory: MemoryReport | None
    """The latest memory report, or None while the memory check is off or has no result."""
    states: Mapping[Key, TargetState] = field(default_factory=dict)
    """The Results snapshot: last run, last success, failures."""
    compliance: ComplianceReport | None = None
    """The latest compliance report, or None while the compliance check is off or has no result."""
    config: RedisguardConfig | None = None
    """The config in use (stacks, schedules, thresholds; shown redacted)."""
    config_file: str = ""
    history: UsageHistory | None = None
    now: float | None = None
    shard: Shard = WHOLE
    """This daemon's part of the fleet: a sharded daemon's page shows only its own stacks and projects."""


@dataclass(frozen=True)
class EngineView:
    engine: str
    check: str
    status: str
    """in_sync, drift, error, pending (enabled, no result yet) or off."""
    error: str | None = None
    duration: str = ""
    finished: str = ""
    items: tuple[DriftItem, ...] = ()
    source: str | None = None
    """The live engine's source of the declared side (config, state, both)."""
    changes: tuple[PendingChange, ...] = ()
    """With source `both`: the config ahead of the deployed state (not drift)."""


@dataclass(frozen=True)
class StackView:
    stack: str
    engines: tuple[EngineView, ...]

    @property
    def status(self) -> str:
        statuses = {e.status for e in self.engines}
        for status in ("error", "drift", "pending", "in_sync"):
            if status in statuses:
                return status
        return "off"


@dataclass(frozen=True)
class InstanceView:
    project_id: str
    region: str
    instance_id: str
    stack: str
    ownership: str
    unreadable_stacks: str
    tier: str
    redis_version: str
    state: str
    level: str
    usage_percent: str
    bar_percent: float
    used: str
    max: str
    capacity: str
    system_ratio: str
    time_to_full: str
    sparkline: Sparkline | None


@dataclass(frozen=True)
class ProjectView:
    project_id: str
    status: str
    error: str | None
    duration: str
    finished: str
    instances: tuple[InstanceView, ...]


@dataclass(frozen=True)
class CheckView:
    check: str
    target: str
    status: str
    """ok, failed, stale or pending (the /healthz verdict)."""
    reason: str | None
    last_run: str
    last_success: str
    duration: str
    failures: int


@dataclass(frozen=True)
class PageView:
    version: str
    generated_at: str
    config_file: str
    config_text: str
    refresh_seconds: int
    warning_percent: str
    critical_percent: str
    stacks: tuple[StackView, ...]
    projects: tuple[ProjectView, ...]
    checks: tuple[CheckView, ...]
    disabled_checks: tuple[str, ...]
    compliance: ComplianceReport | None = None
    shard: str = ""
    """"shard N of M" for one of several daemons; empty for the whole fleet."""

    @property
    def mandatory_violations(self) -> int:
        if self.compliance is None:
            return 0
        return sum(f.level == "mandatory" for p in self.compliance.projects for _, f in p.findings())

    @property
    def failing_checks(self) -> int:
        return sum(1 for c in self.checks if c.status in ("failed", "stale"))

    @property
    def flagged_instances(self) -> int:
        return sum(1 for p in self.projects for i in p.instances if i.level in CROSSED)

    @property
    def drifted_stacks(self) -> int:
        return sum(1 for s in self.stacks if s.status == "drift")


# --- formatting (bytes, ratios and time to full come from memory_report, as `memory-report` writes them)


def format_time(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def sparkline(
    series: Sequence[tuple[float, float]], warning: float, critical: float, *, width: int = 120, height: int = 28
) -> Sparkline | None:
    """The polyline of a usage series, x by time, y by ratio on a fixed 0-1 scale (so a line at
    the top is an instance near full, not one that merely varies); None below two points."""
    if len(series) < 2:
        return None
    start, end = series[0][0], series[-1][0]
    pad = 1.5
    x_scale = (width - 2 * pad) / ((end - start) or 1.0)
    y_scale = height - 2 * pad

    def y(ratio: float) -> float:
        return round(pad + (1 - min(max(ratio, 0.0), 1.0)) * y_scale, 1)

    # One formatted pair per sample, inline: at 1000 instances this loop is most of the page's cost.
    points = " ".join(
        f"{pad + (t - start) * x_scale:.1f},{pad + (1 - (0.0 if r < 0 else 1.0 if r > 1 else r)) * y_scale:.1f}"
        for t, r in series
    )
    ratios = [r for _, r in series]
    title = (
        f"{len(series)} samples from {format_time(start)} to {format_time(end)}: "
        f"min {format_ratio(min(ratios))}, max {format_ratio(max(ratios))}, now {format_ratio(ratios[-1])}"
    )
    return Sparkline(points, width, height, y(warning), y(critical), len(series), title)


# --- building the view from the daemon's results -------------------------------------------------


def build_page(view: StatusView, refresh_seconds: int = REFRESH_SECONDS) -> PageView:
    """What the template shows, from one StatusView."""
    now = time.time() if view.now is None else view.now
    config = view.config
    warning, critical = _thresholds(config)
    enabled = set(config.schedules.enabled()) if config is not None else set(CHECK_NAMES)
    return PageView(
        version=view.version,
        generated_at=format_time(now),
        config_file=view.config_file,
        config_text=yaml.safe_dump(config.redacted(), sort_keys=False, default_flow_style=False) if config is not None else "",
        refresh_seconds=refresh_seconds,
        warning_percent=f"{warning * 100:g}",
        critical_percent=f"{critical * 100:g}",
        stacks=_stack_views(view, enabled),
        projects=_project_views(view, warning, critical),
        checks=_check_views(view),
        disabled_checks=tuple(name for name in CHECK_NAMES if name not in enabled),
        compliance=view.compliance,
        shard="" if view.shard.whole else str(view.shard),
    )


def _thresholds(config: RedisguardConfig | None) -> tuple[float, float]:
    """The usage ratios at which an instance is flagged warning and critical (without a config: its defaults)."""
    thresholds = config.thresholds if config is not None else ThresholdSettings()
    return float(thresholds.memory_warning_ratio), float(thresholds.memory_critical_ratio)


def _stack_views(view: StatusView, enabled: set[str]) -> tuple[StackView, ...]:
    """The drift section: every stack of the config this daemon's shard checks (then any other with a
    result), each engine's latest result. Another shard's stacks are left out, not shown as never run."""
    reports = {(r.stack, r.engine): r for r in view.drift.stacks}
    stack_names = [s for s in view.config.pulumi.stacks if view.shard.owns(s)] if view.config is not None else []
    stack_names += sorted({r.stack for r in view.drift.stacks} - set(stack_names))
    stacks = []
    for stack in stack_names:
        engines = []
        for check, engine in DRIFT_CHECKS.items():
            report = reports.get((stack, engine))
            state = view.states.get((check, stack))
            if report is not None:
                engines.append(
                    EngineView(
                        engine=engine,
                        check=check,
                        status=report.status,
                        error=report.error,
                        duration=format_duration(report.duration_seconds),
                        finished=format_time(state.finished_at) if state is not None else "",
                        items=tuple(report.items),
                        source=report.source,
                        changes=tuple(report.pending),
                    )
                )
            else:
                engines.append(EngineView(engine=engine, check=check, status="pending" if check in enabled else "off"))
        stacks.append(StackView(stack=stack, engines=tuple(engines)))
    return tuple(stacks)


def _project_views(view: StatusView, warning: float, critical: float) -> tuple[ProjectView, ...]:
    """The memory section: every project of the latest memory report, its instances by region and id."""
    projects = []
    for project in view.memory.projects if view.memory is not None else ():
        state = view.states.get((MEMORY, project.project_id))
        instances = tuple(
            _instance_view(inst, warning, critical, view.history)
            for inst in sorted(project.instances, key=lambda i: (i.region, i.instance_id))
        )
        projects.append(
            ProjectView(
                project_id=project.project_id,
                status=project.status,
                error=project.error,
                duration=format_duration(project.duration_seconds),
                finished=format_time(state.finished_at) if state is not None else "",
                instances=instances,
            )
        )
    return tuple(projects)


def _check_views(view: StatusView) -> tuple[CheckView, ...]:
    """The checks section: every (check, target) with a result or a /healthz problem, and its verdict."""
    problems = {(p.check, p.target): p for p in view.health.problems}
    checks = []
    for key in sorted(set(view.states) | set(problems)):
        state, problem = view.states.get(key), problems.get(key)
        checks.append(
            CheckView(
                check=key[0],
                target=key[1],
                status=problem.status if problem is not None else "ok",
                reason=problem.reason if problem is not None else None,
                last_run=format_time(state.finished_at) if state is not None else "never",
                last_success=format_time(state.last_success_at) if state is not None else "never",
                duration=format_duration(state.result.duration_seconds) if state is not None else "—",
                failures=state.failures_total if state is not None else 0,
            )
        )
    return tuple(checks)


def _instance_view(inst: InstanceMemory, warning: float, critical: float, history: UsageHistory | None) -> InstanceView:
    ratio = inst.usage_ratio
    series = history.series((inst.project_id, inst.region, inst.instance_id)) if history else ()
    return InstanceView(
        project_id=inst.project_id,
        region=inst.region,
        instance_id=inst.instance_id,
        stack=inst.stack,
        ownership=inst.ownership,
        unreadable_stacks=", ".join(inst.unreadable_stacks),
        tier=inst.tier,
        redis_version=inst.redis_version,
        state=inst.state,
        level=inst.level,
        usage_percent=format_ratio(ratio),
        bar_percent=round(min(max(ratio or 0.0, 0.0), 1.0) * 100, 1),
        used=format_bytes(inst.used_bytes),
        max=format_bytes(inst.max_bytes),
        capacity=format_bytes(inst.capacity_bytes),
        system_ratio=format_ratio(inst.system_memory_usage_ratio),
        time_to_full=format_time_to_full(inst.time_to_full_seconds),
        sparkline=sparkline(series, warning, critical),
    )


def render(view: StatusView) -> str:
    """The page's HTML. Every credential value the daemon knows is replaced once more in the
    output, so one that reached an error message is still not shown."""
    html = _ENV.get_template("status.html").render(page=build_page(view), value=format_value, docs_url=doc_url("status-page.md"))
    secrets = view.config.secrets() if view.config is not None else core_secrets.secret_values()
    for secret in secrets:
        html = html.replace(str(markupsafe.escape(secret)), REDACTED).replace(secret, REDACTED)
    return html
