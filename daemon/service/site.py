"""What the daemon's HTTP server serves, read from the latest results on every request (never running a check): /healthz's verdict, the drift, memory and compliance reports of /report and the status page.

The one place a results snapshot becomes reports: the same models `drift-report` and
`memory-report` and `compliance-report` render, so /report's JSON is what those commands write, head included.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import version
from typing import Any

from redisguard.daemon.checks.registry import DRIFT_CHECKS, kind_of
from redisguard.daemon.config import RedisguardConfig
from redisguard.daemon.reports import compliance as compliance_rendering
from redisguard.daemon.reports import drift as drift_rendering
from redisguard.daemon.reports import memory as memory_rendering
from redisguard.daemon.reports.compliance import ComplianceReport, ProjectComplianceReport
from redisguard.daemon.reports.drift import DriftReport, StackReport
from redisguard.daemon.reports.memory import MemoryReport, ProjectMemoryReport
from redisguard.daemon.service import status_page
from redisguard.daemon.service.health import Expectation, Health, evaluate
from redisguard.daemon.service.metrics import Exposition
from redisguard.daemon.service.results import CheckFailure, Key, Results, TargetState


def drift_report(states: Mapping[Key, TargetState]) -> DriftReport:
    """The latest result of every drift target as one DriftReport (the model drift-report renders)."""
    stacks = []
    for (check, target), state in sorted(states.items()):
        engine = DRIFT_CHECKS.get(check)
        if engine is None:
            continue
        result = state.result
        if isinstance(result, CheckFailure):
            result = StackReport.failed(target, engine, result.error, result.duration_seconds, kind=result.error_kind)
        stacks.append(result)
    return DriftReport(stacks=tuple(stacks))


def _project_results(states: Mapping[Key, TargetState], kind: str, failed: Callable[[str, CheckFailure], Any]) -> list[Any]:
    """The latest result of every target of the per-project checks of `kind`, a failure as `failed` words it."""
    projects: list[Any] = []
    for (check, target), state in sorted(states.items()):
        if kind_of(check) != kind:
            continue
        result = state.result
        projects.append(failed(target, result) if isinstance(result, CheckFailure) else result)
    return projects


def memory_report(states: Mapping[Key, TargetState]) -> MemoryReport | None:
    """The latest result of every memory target as one MemoryReport (the model memory-report renders);
    None while there is none (the check is off or has not finished a project yet)."""
    projects = _project_results(states, "memory", lambda target, f: ProjectMemoryReport.failed(
        target, f.error, f.duration_seconds, kind=f.error_kind))  # fmt: skip
    return MemoryReport(projects=tuple(projects)) if projects else None


def compliance_report(states: Mapping[Key, TargetState]) -> ComplianceReport | None:
    """The latest result of every compliance target as one ComplianceReport (the model compliance-report
    renders); None while there is none (the check is off or has not finished a project yet)."""
    projects = _project_results(states, "compliance", lambda target, f: ProjectComplianceReport.failed(
        target, f.error, f.duration_seconds, kind=f.error_kind))  # fmt: skip
    return ComplianceReport(projects=tuple(projects)) if projects else None


class Site:
    """The pages of the daemon's HTTP server, each built from one snapshot of the results."""

    def __init__(
        self,
        results: Results,
        exposition: Exposition,
        expectations: Callable[[], tuple[Sequence[Expectation], float]],
        *,
        config: Callable[[], tuple[RedisguardConfig, str]] | None = None,
        history: status_page.UsageHistory | None = None,
    ) -> None:
        self.results = results
        self.exposition = exposition
        # () -> (what /healthz expects of each enabled check, when those expectations started)
        self.expectations = expectations
        # () -> (the RedisguardConfig in force, its file): the status page shows both (redacted).
        self.config = config
        self.history = history

    def health(self) -> Health:
        expectations, since = self.expectations()
        return evaluate(expectations, self.results.snapshot(), since=since)

    def drift(self, states: Mapping[Key, TargetState] | None = None) -> DriftReport:
        return drift_report(self.results.snapshot() if states is None else states)

    def memory(self, states: Mapping[Key, TargetState] | None = None) -> MemoryReport | None:
        return memory_report(self.results.snapshot() if states is None else states)

    def compliance(self, states: Mapping[Key, TargetState] | None = None) -> ComplianceReport | None:
        return compliance_report(self.results.snapshot() if states is None else states)

    def report_json(self) -> bytes:
        states = self.results.snapshot()
        memory = self.memory(states)
        compliance = self.compliance(states)
        # The reports' own JSON (JsonReport.to_dict): what `drift-report --format json` and
        # `memory-report --format json` write, head (schema_version, exit_code, summary) included.
        body = {
            "drift": self.drift(states).to_dict(),
            "memory": memory.to_dict() if memory is not None else None,
            "compliance": compliance.to_dict() if compliance is not None else None,
        }
        return (json.dumps(body, indent=2) + "\n").encode()

    def report_markdown(self) -> bytes:
        states = self.results.snapshot()
        text = drift_rendering.render_markdown(self.drift(states))
        memory = self.memory(states)
        if memory is not None:
            text += "\n" + memory_rendering.render_markdown(memory)
        compliance = self.compliance(states)
        if compliance is not None:
            text += "\n" + compliance_rendering.render_markdown(compliance)
        return text.encode()

    def index_html(self) -> bytes:
        states = self.results.snapshot()
        config, config_file = self.config() if self.config is not None else (None, "")
        view = status_page.StatusView(
            version=version("redisguard"),
            health=self.health(),
            drift=self.drift(states),
            memory=self.memory(states),
            compliance=self.compliance(states),
            states=states,
            config=config,
            config_file=config_file,
            history=self.history,
            shard=self.exposition.collector.shard(),
        )
        return status_page.render(view).encode()
