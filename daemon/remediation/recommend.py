"""`memory-report --recommend`: the memory_gb that keeps each declared instance under a target ratio through a horizon, as a stack-file change."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from redisguard.core.memorystore import GIB, MAX_MEMORY_GB, MIN_MEMORY_GB, MIN_MEMORY_GB_WITH_READ_REPLICAS
from redisguard.daemon.config import RedisguardConfig
from redisguard.daemon.remediation.plan import Note, Plan
from redisguard.program.config import StackConfig

if TYPE_CHECKING:
    from redisguard.daemon.reports.memory import InstanceMemory, MemoryReport

# Far below: the projected usage would fit under the target at half the size or less.
SHRINK_BELOW_FRACTION = 0.5


@dataclass(frozen=True)
class Bounds:
    """The memory limits one stack's instances must stay within: Memorystore's and the policy pack's."""

    min_gb: int
    max_gb: int
    min_gb_with_read_replicas: int
    budget_gb: int | None
    policy_config: str


def stack_bounds(stack: str, policy_config: Path | None) -> Bounds:
    """memorystore-memory-bounds and memorystore-stack-memory-budget as the stack's policy config sets them."""
    from redisguard.policies.config import MemoryBoundsConfig, StackMemoryBudgetConfig
    from redisguard.policies.pack_config import stack_policy_config
    from redisguard.policies.rules import MEMORY_BOUNDS, STACK_MEMORY_BUDGET, STACK_MEMORY_BUDGET_LEVEL

    config = stack_policy_config(stack, policy_config)
    bounds = config.options(MEMORY_BOUNDS, MemoryBoundsConfig)
    budget = config.options(STACK_MEMORY_BUDGET, StackMemoryBudgetConfig)
    level = config.level(STACK_MEMORY_BUDGET, STACK_MEMORY_BUDGET_LEVEL.value)
    return Bounds(
        min_gb=max(MIN_MEMORY_GB, bounds.min_memory_gb),
        max_gb=min(MAX_MEMORY_GB, bounds.max_memory_gb),
        min_gb_with_read_replicas=max(MIN_MEMORY_GB_WITH_READ_REPLICAS, bounds.min_memory_gb_with_read_replicas),
        budget_gb=None if level == "disabled" else budget.max_total_memory_gb,
        policy_config=config.source,
    )


@dataclass(frozen=True)
class Recommendation:
    stack: str
    instance_id: str
    current_gb: int
    recommended_gb: int
    usage_ratio: float
    ratio_at_recommended: float
    """The usage ratio now at the recommended size."""
    reason: str


def recommend_size(
    memory: InstanceMemory, read_replicas: bool, bounds: Bounds, *, target: float, horizon: float, warning: float
) -> tuple[int, str] | None:
    """(memory_gb, why) for one instance from its live size and trend; None when nothing can be said or it fits."""
    live_gb = memory.capacity_bytes // GIB
    if memory.used_bytes is None or not memory.max_bytes or live_gb <= 0:
        return None
    bytes_per_gb = memory.max_bytes / live_gb  # maxmemory scales with memorySizeGb
    growth = 0.0
    if memory.time_to_full_seconds:
        growth = (memory.max_bytes - memory.used_bytes) / memory.time_to_full_seconds
    projected = memory.used_bytes + max(0.0, growth) * horizon
    needed = max(1, math.ceil(projected / (target * bytes_per_gb)))
    low = bounds.min_gb_with_read_replicas if read_replicas else bounds.min_gb
    size = min(max(needed, low), bounds.max_gb)
    ratio = memory.used_bytes / memory.max_bytes
    days = f"{horizon / 86400:g} days"
    filling = memory.time_to_full_seconds is not None and memory.time_to_full_seconds <= horizon
    if ratio >= warning or filling or projected / memory.max_bytes >= target:
        why = f"usage {ratio:.2f} now and {projected / memory.max_bytes:.2f} in {days} at {live_gb} GB"
        if needed > bounds.max_gb:
            why += f"; {needed} GB would keep it under {target:g}, the bounds allow at most {bounds.max_gb} GB"
        return size, why
    if needed <= live_gb * SHRINK_BELOW_FRACTION and size < live_gb:
        return size, f"usage {ratio:.2f} now and {projected / memory.max_bytes:.2f} in {days} at {live_gb} GB: far below {target:g}"
    return None


def plan_recommend(
    config: RedisguardConfig,
    report: MemoryReport,
    stacks: Mapping[str, StackConfig],
    selected: Sequence[str],
    *,
    target: float,
    horizon: float,
    policy_config: Path | None = None,
) -> tuple[Plan, list[Recommendation]]:
    """The memory_gb changes for the declared instances of the selected stacks, within bounds and budget."""
    bounds: dict[str, Bounds] = {}

    def bounds_of(stack: str) -> Bounds:
        if stack not in bounds:
            bounds[stack] = stack_bounds(stack, policy_config)
        return bounds[stack]

    by_stack = _size_instances(config, report, stacks, selected, bounds_of, target=target, horizon=horizon)
    plan = Plan()
    accepted: list[Recommendation] = []
    for stack_name, recs in by_stack.items():
        refusal = _over_budget(stacks[stack_name], stack_name, recs, bounds_of(stack_name))
        if refusal is not None:
            plan.notes.append(Note(stack_name, "refused", refusal))
            continue
        for rec in recs:
            plan.file(config, stack_name).set_key(rec.instance_id, "memory_gb", rec.recommended_gb)
            plan.notes.append(
                Note(
                    f"{stack_name}/{rec.instance_id}",
                    "proposed",
                    f"memory_gb {rec.current_gb} -> {rec.recommended_gb}: {rec.reason}; "
                    f"{rec.ratio_at_recommended:.2f} at {rec.recommended_gb} GB now",
                )
            )
            accepted.append(rec)
    return plan, accepted


def _size_instances(
    config: RedisguardConfig,
    report: MemoryReport,
    stacks: Mapping[str, StackConfig],
    selected: Sequence[str],
    bounds_of: Callable[[str], Bounds],
    *,
    target: float,
    horizon: float,
) -> dict[str, list[Recommendation]]:
    """Stack -> a recommendation per declared instance whose size should change (recommend_size)."""
    warning = config.thresholds.memory_warning_ratio
    by_stack: dict[str, list[Recommendation]] = {}
    for memory in (m for project in report.projects for m in project.instances):
        if memory.stack not in selected or memory.stack not in stacks:
            continue  # only a stack file can be edited: a stack read from its state has none
        cluster = stacks[memory.stack].cluster(memory.instance_id)
        found = recommend_size(
            memory, cluster.read_replicas, bounds_of(memory.stack), target=target, horizon=horizon, warning=warning
        )
        if found is None or found[0] == cluster.memory_gb:
            continue  # the stack file already says it (a second run after --write proposes nothing)
        size, why = found
        used, limit = memory.used_bytes, memory.max_bytes
        if used is None or limit is None:
            continue  # not reached: recommend_size proposes nothing without both
        per_gb = limit / (memory.capacity_bytes // GIB)
        by_stack.setdefault(memory.stack, []).append(
            Recommendation(
                stack=memory.stack,
                instance_id=memory.instance_id,
                current_gb=cluster.memory_gb,
                recommended_gb=size,
                usage_ratio=used / limit,
                ratio_at_recommended=used / (per_gb * size),
                reason=why,
            )
        )
    return by_stack


def _over_budget(stack: StackConfig, stack_name: str, recs: Sequence[Recommendation], bounds: Bounds) -> str | None:
    """Why the stack's recommendations are refused: with them its instances add up to more than
    memorystore-stack-memory-budget allows (all or none: a budget is the stack's); None when they fit."""
    sizes = {c.name: c.memory_gb for c in stack.clusters}
    sizes.update({r.instance_id: r.recommended_gb for r in recs})
    total = sum(sizes.values())
    if bounds.budget_gb is None or total <= bounds.budget_gb:
        return None
    names = ", ".join(f"{r.instance_id} {r.current_gb} -> {r.recommended_gb} GB" for r in recs)
    return (
        f"memorystore-stack-memory-budget allows {bounds.budget_gb} GB in stack {stack_name} "
        f"({bounds.policy_config}); the recommendation ({names}) needs {total} GB in all. "
        "Raise maxTotalMemoryGb there or shrink another instance; nothing proposed for this stack."
    )
