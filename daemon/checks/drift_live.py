"""The live drift engine: each stack's declared instances compared with the instances the Memorystore API lists.

What it compares comes from daemon/fleet/: the declared side from a stack's config or its deployed
state (declared.py), the listing (inventory.py) and the one property reader for both sides
(properties.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redisguard.core.memorystore import READY
from redisguard.core.pulumi import INSTANCE_TYPE
from redisguard.daemon.checks.ignore import IgnoreRules
from redisguard.daemon.fleet.declared import DeclaredInstance, DeclaredStack
from redisguard.daemon.fleet.inventory import Inventory
from redisguard.daemon.fleet.properties import instance_properties, instance_state
from redisguard.daemon.reports.drift import DriftItem, InstanceState, PropertyDrift

if TYPE_CHECKING:
    from google.cloud import redis_v1


def compare(declared: DeclaredInstance, instance: redis_v1.Instance, rules: IgnoreRules) -> list[PropertyDrift]:
    """Differences on the declared properties, plus redis configs and labels present only live where
    the declaring source manages the whole map."""
    expected = declared.properties
    actual = instance_properties(instance)
    paths = set(expected)
    # A config or label someone added by hand is drift too when the program would remove it.
    if declared.live_only_groups:
        paths |= {p for p in actual if p.startswith(declared.live_only_groups)}
    drifts = []
    for path in sorted(paths):
        want, have = expected.get(path), actual.get(path)
        if want == have or rules.ignored(INSTANCE_TYPE, declared.resource, path):
            continue
        drifts.append(PropertyDrift(path=path, expected=want, actual=have))
    return drifts


# --- one stack ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackFindings:
    """What the live engine found for one stack: drift, and declared instances that are not READY."""

    items: list[DriftItem]
    not_ready: list[InstanceState]
    unmanaged_projects: tuple[str, ...] = ()
    in_sync: tuple[str, ...] = ()
    """The API names of its declared instances found live without drift (when the audit log's window opens)."""


def declared_keys(stacks: Iterable[DeclaredStack]) -> frozenset[tuple[str, str | None, str]]:
    """Where every instance the stacks declare is, as (project, region, id), region None for any
    region: a listed instance (its LiveKey, the same triple) is held when its key or its key with
    no region is in it. One set lookup per listed instance for the stack that reports a project's
    unmanaged instances, however many stacks there are."""
    return frozenset((d.project, d.region, d.instance_id) for stack in stacks for d in stack.instances)


def compare_stack(
    stack: DeclaredStack,
    inventory: Inventory,
    rules: IgnoreRules,
    *,
    held: AbstractSet[tuple[str, str | None, str]] | None = None,
    unmanaged_projects: Sequence[str] = (),
) -> StackFindings:
    """Drift of one stack: its changed and missing instances; the instances of `unmanaged_projects`
    that no instance of `held` (declared_keys of every readable stack; default: this stack's own)
    holds; and its instances that are not READY."""
    items: list[DriftItem] = []
    not_ready: list[InstanceState] = []
    in_sync: list[str] = []
    for declared in stack.instances:
        instance = find_instance(inventory, declared)
        if instance is None:
            name = f"projects/{declared.project}/locations/{declared.region or '-'}/instances/{declared.instance_id}"
            items.append(DriftItem(resource=declared.resource, kind="missing", instance=name))
            continue
        state = instance_state(instance)
        if state != READY:
            not_ready.append(InstanceState(resource=declared.resource, state=state))
        drifts = compare(declared, instance, rules)
        name = type(instance).pb(instance).name  # the message's field, without a proto-plus read
        if drifts:
            items.append(DriftItem(resource=declared.resource, kind="changed", properties=tuple(drifts), instance=name))
        else:
            in_sync.append(name)
    if unmanaged_projects:
        held = held if held is not None else declared_keys([stack])
        for project in unmanaged_projects:
            for key, instance in inventory.keyed(project):
                if key not in held and (key.project, None, key.instance_id) not in held:
                    items.append(DriftItem(resource=instance.name, kind="unmanaged", instance=instance.name))
    return StackFindings(items, not_ready, tuple(unmanaged_projects), tuple(in_sync))


def find_instance(inventory: Inventory, declared: DeclaredInstance) -> redis_v1.Instance | None:
    """The listed instance `declared` is, None when it is not listed."""
    for key, instance in inventory.by_id(declared.project).get(declared.instance_id, ()):
        if declared.holds(key):
            return instance
    return None
