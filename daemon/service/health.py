"""/healthz: every enabled check succeeded for every target within its staleness limit, or which did not and why."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from redisguard.daemon.service.results import Key, TargetState

# A success older than this many schedule periods (plus the run's own time budget) is stale:
# one late or failed run is tolerated, three missed in a row are not.
STALE_PERIODS = 3


@dataclass(frozen=True)
class Expectation:
    """What /healthz expects of one enabled check."""

    check: str
    targets: Sequence[str]
    period_seconds: float
    budget_seconds: float
    """How long one run may take (the check's own timeout), added to the limit so a slow run is not stale."""

    @property
    def stale_after_seconds(self) -> float:
        return STALE_PERIODS * self.period_seconds + self.budget_seconds


@dataclass(frozen=True)
class Problem:
    check: str
    target: str
    status: str
    """failed, stale or pending"""
    reason: str


@dataclass(frozen=True)
class Health:
    problems: tuple[Problem, ...]
    checked: int

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, object]:
        return {
            "status": "ok" if self.ok else "failing",
            "targets_checked": self.checked,
            "problems": [asdict(p) for p in self.problems],
        }


def _ago(seconds: float) -> str:
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


def evaluate(
    expectations: Sequence[Expectation],
    states: Mapping[Key, TargetState],
    *,
    since: float,
    now: float | None = None,
) -> Health:
    """Judge each (check, target): `since` is when the expectations started (daemon start or reload)."""
    now = time.time() if now is None else now
    problems: list[Problem] = []
    checked = 0
    for exp in expectations:
        limit = exp.stale_after_seconds
        for target in exp.targets:
            checked += 1
            state = states.get((exp.check, target))
            if state is not None and not state.ok:
                problems.append(Problem(exp.check, target, "failed", state.error or "failed"))
                continue
            last = state.last_success_at if state is not None else None
            if last is None:
                waited = now - since
                problems.append(
                    Problem(
                        exp.check, target, "pending",
                        f"no successful run yet (started {_ago(waited)}; a first run may take up to {exp.budget_seconds:g}s)",
                    )
                )  # fmt: skip
                continue
            if now - last > limit:
                problems.append(
                    Problem(exp.check, target, "stale", f"last success {_ago(now - last)}, limit {limit:g}s ({STALE_PERIODS} periods + run budget)")
                )
    return Health(problems=tuple(problems), checked=checked)
