"""The live drift engine: the clusters declared in the stack files compared with the instances the Memorystore API lists.

What it compares comes from daemon/fleet/: the stack files and who declares what (stacks.py), the
listing (inventory.py) and the one property reader for both sides (properties.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redisguard.core.errors import PermanentError
from redisguard.core.memorystore import READY
from redisguard.core.pulumi import INSTANCE_TYPE
from redisguard.daemon.checks.ignore import IgnoreRules
from redisguard.daemon.fleet.inventory import Inventory, split_instance_name, watched_by_id
from redisguard.daemon.fleet.properties import enum_name, expected_properties, instance_properties
from redisguard.daemon.fleet.stacks import declares
from redisguard.daemon.reports.drift import DriftItem, InstanceState, PropertyDrift
from redisguard.program.config import ClusterConfig, StackConfig

if TYPE_CHECKING:
    from google.cloud import redis_v1


def compare(cluster: ClusterConfig, instance: redis_v1.Instance, rules: IgnoreRules) -> list[PropertyDrift]:
    """Differences on the declared properties, plus redis configs and labels present only live."""
    expected = expected_properties(cluster)
    actual = instance_properties(instance)
    paths = set(expected)
    # A config or label someone added by hand is drift too: the program would remove it.
    paths |= {p for p in actual if p.startswith(("redisConfigs.", "labels."))}
    drifts = []
    for path in sorted(paths):
        want, have = expected.get(path), actual.get(path)
        if want == have or rules.ignored(INSTANCE_TYPE, cluster.name, path):
            continue
        drifts.append(PropertyDrift(path=path, expected=want, actual=have))
    return drifts


# --- one stack ---------------------------------------------------------------------------------


def no_project_error(stack: StackConfig) -> PermanentError:
    return PermanentError(f"{stack.source}: gcp:project is not set; the live engine needs it to list instances")


def _stack_project(stack: StackConfig) -> str:
    if not stack.project:
        raise no_project_error(stack)
    return stack.project


@dataclass(frozen=True)
class StackFindings:
    """What the live engine found for one stack: drift, and declared instances that are not READY."""

    items: list[DriftItem]
    not_ready: list[InstanceState]


def compare_stack(
    stack: StackConfig,
    inventory: Inventory,
    rules: IgnoreRules,
    *,
    watched: Sequence[StackConfig] = (),
    report_unmanaged: bool = True,
) -> StackFindings:
    """Drift of one stack: changed and missing clusters, and (when `report_unmanaged`) the
    instances of its project that no watched stack declares; and its clusters that are not READY."""
    project = _stack_project(stack)
    live = inventory.instances(project)
    by_id = watched_by_id(stack, live)
    items: list[DriftItem] = []
    not_ready: list[InstanceState] = []
    for cluster in stack.clusters:
        instance = by_id.get(cluster.name)
        if instance is None:
            items.append(DriftItem(resource=cluster.name, kind="missing"))
            continue
        state = enum_name(instance.state)
        if state != READY:
            not_ready.append(InstanceState(resource=cluster.name, state=state))
        drifts = compare(cluster, instance, rules)
        if drifts:
            items.append(DriftItem(resource=cluster.name, kind="changed", properties=tuple(drifts)))
    if report_unmanaged:
        declaring = [stack, *watched]
        for instance in live:
            key = split_instance_name(instance.name)
            if not any(declares(s, key) for s in declaring):
                items.append(DriftItem(resource=instance.name, kind="unmanaged"))
    return StackFindings(items=items, not_ready=not_ready)
