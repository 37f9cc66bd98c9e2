"""Every check the daemon runs, one entry each: its kind, its drift engine, how to build it from the config and how long one run may take.

The metrics, the status page, /report, /healthz and the daemon read what a check is here rather
than spelling its name (the names themselves are daemon/checks/names.py, light to import; the
config's schedule keys are held to them by a test). The factories import their check on first use: a reader of this table (the
status page, the metrics) does not load the Google clients the checks use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from redisguard.daemon.checks.names import COMPLIANCE, DRIFT_LIVE, DRIFT_PULUMI, MEMORY
from redisguard.daemon.checks.protocol import Check
from redisguard.daemon.config import RedisguardConfig
from redisguard.daemon.reports.drift import Engine
from redisguard.daemon.sharding import WHOLE, Shard

Kind = Literal["drift", "memory", "compliance"]
"""What a check's per-target result is: a drift StackReport (per stack), a ProjectMemoryReport or a
ProjectComplianceReport (per project)."""


@dataclass(frozen=True)
class CheckSpec:
    name: str
    kind: Kind
    engine: Engine | None
    """The engine a drift check's reports carry (StackReport.engine); None for the other checks."""
    build: Callable[[RedisguardConfig, Shard], Check[Any]]
    """The check over the stacks or projects `shard` owns."""
    budget: Callable[[RedisguardConfig, int], float]
    """Seconds one run over that many targets may take: /healthz adds it to a check's staleness limit."""
    cli: str | None = None
    """The command the check runs, looked up on PATH as the Automation API does (`check-config`
    warns when a scheduled check's is missing); None for a check that only calls APIs."""


def _api_budget(config: RedisguardConfig, _targets: int) -> float:
    # A few API calls, each up to gcp.request_timeout_seconds with retries.
    return 3 * config.gcp.request_timeout_seconds


def _refresh_budget(config: RedisguardConfig, targets: int) -> float:
    # Refreshes run `parallelism` at a time, each up to its timeout.
    return config.pulumi.refresh_timeout_seconds * max(1, math.ceil(targets / config.parallelism))


def _pulumi_drift(config: RedisguardConfig, shard: Shard) -> Check[Any]:
    from redisguard.daemon.checks.drift import PulumiDriftCheck

    return PulumiDriftCheck(config, shard=shard)


def _live_drift(config: RedisguardConfig, shard: Shard) -> Check[Any]:
    from redisguard.daemon.checks.drift import LiveDriftCheck

    return LiveDriftCheck(config, shard=shard)


def _memory(config: RedisguardConfig, shard: Shard) -> Check[Any]:
    from redisguard.daemon.checks.memory import MemoryCheck

    return MemoryCheck(config, shard=shard)


def _pack_budget(config: RedisguardConfig, targets: int) -> float:
    # The listings, the pack's start (up to a minute on a loaded machine) and its judgements.
    return _api_budget(config, targets) + 60.0


def _compliance(config: RedisguardConfig, shard: Shard) -> Check[Any]:
    from redisguard.daemon.checks.compliance import ComplianceCheck

    return ComplianceCheck(config, shard=shard)


CHECKS: Mapping[str, CheckSpec] = {
    spec.name: spec
    for spec in (
        CheckSpec(DRIFT_PULUMI, "drift", "pulumi", _pulumi_drift, _refresh_budget, cli="pulumi"),
        CheckSpec(DRIFT_LIVE, "drift", "live", _live_drift, _api_budget),
        CheckSpec(MEMORY, "memory", None, _memory, _api_budget),
        CheckSpec(COMPLIANCE, "compliance", None, _compliance, _pack_budget),
    )
}
"""Every check by name, in names.CHECK_NAMES order."""

DRIFT_CHECKS: Mapping[str, Engine] = {name: spec.engine for name, spec in CHECKS.items() if spec.engine is not None}
"""Each drift check's name and the engine its reports carry."""
DRIFT_CHECK_OF: Mapping[Engine, str] = {engine: name for name, engine in DRIFT_CHECKS.items()}
"""The drift check that runs each engine."""


def kind_of(check: str) -> Kind | None:
    """The kind of a check's results; None for a name that is no check."""
    spec = CHECKS.get(check)
    return spec.kind if spec is not None else None


def build_checks(config: RedisguardConfig, shard: Shard = WHOLE) -> dict[str, Check[Any]]:
    """The checks the config enables, by name (its schedule key), each over what `shard` owns."""
    return {name: CHECKS[name].build(config, shard) for name in config.schedules.enabled() if name in CHECKS}


def budget_seconds(check: str, config: RedisguardConfig, targets: int) -> float:
    """How long one run of `check` over `targets` targets may take."""
    return CHECKS[check].budget(config, targets)
