"""`adopt`: accepted live drift turned into a reviewed stack-file change (the live value becomes the declared one).

Nothing is changed in the cloud. A property the flat config cannot say, or whose live value
breaks a secure default or a mandatory policy, is a note with the reason and left for
`pulumi up` to revert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from redisguard.core.errors import ConfigError
from redisguard.core.validation import unknown_argument
from redisguard.daemon.checks.drift_live import compare_stack
from redisguard.daemon.checks.ignore import IgnoreRules
from redisguard.daemon.config import RedisguardConfig
from redisguard.daemon.fleet.declared import DeclaredInstance, DeclaredStack, SourceFailure, read_declared
from redisguard.daemon.fleet.inventory import Inventory, split_instance_name
from redisguard.daemon.fleet.inverse import PATH_KEYS, cluster_entry, keys_for_path
from redisguard.daemon.fleet.paths import normalize_path
from redisguard.daemon.fleet.properties import NOT_COMPARED, instance_properties
from redisguard.daemon.remediation.plan import Note, Plan
from redisguard.daemon.remediation.policy import mandatory_violations, policy_inputs
from redisguard.daemon.reports.drift import PropertyDrift
from redisguard.daemon.reports.render import format_value
from redisguard.program.config import ClusterConfig, StackConfig

if TYPE_CHECKING:
    from google.cloud import redis_v1


def plan_adopt(
    config: RedisguardConfig,
    stack_names: Sequence[str],
    resource: str | None = None,
    path: str | None = None,
    inventory: Inventory | None = None,
) -> Plan:
    """The live value of each `changed` property written into the declaring entry, where the config may
    say it; for a stack read from its Pulumi state (any program), the ways forward instead.

    A --resource no selected stack declares, or a --path no such instance has, is a ConfigError
    (with "did you mean"); one that exists but has not drifted now is an `in sync` note.
    """
    declared_sides = read_declared(config, stack_names)
    failures = [s.message for s in declared_sides.values() if isinstance(s, SourceFailure)]
    if failures:
        raise ConfigError("adopt needs the declared side of every stack it adopts into:\n" + "\n".join(failures))
    stacks = {n: s for n, s in declared_sides.items() if isinstance(s, DeclaredStack)}
    if resource is not None:
        _check_resource(resource, stacks)
    path = normalize_path(path) if path is not None else None
    inventory = inventory or Inventory(config.gcp)
    rules = IgnoreRules(config.ignore)
    plan = Plan()
    matched = False
    for name in stack_names:
        stack = stacks[name]
        by_resource = {d.resource: d for d in stack.instances}
        for item in compare_stack(stack, inventory, rules).items:
            if item.kind != "changed" or (resource is not None and item.resource != resource):
                continue
            drifts = [d for d in item.properties if path is None or d.path == path]
            if not drifts:
                continue
            matched = True
            declared = by_resource[item.resource]
            instance = _live_instance(inventory, declared)
            assert instance is not None  # compare_stack found it changed, so it is listed
            if stack.source == "config" and stack.config is not None:
                _adopt_one(config, plan, stack.config, name, instance, [d.path for d in drifts])
            else:
                _ways_forward(plan, stack, declared, drifts)
    if (resource or path) and not matched:
        plan.notes.append(_nothing_to_adopt({name: stacks[name] for name in stack_names}, inventory, resource, path))
    return plan


def _check_resource(resource: str, stacks: Mapping[str, DeclaredStack]) -> None:
    """ConfigError when no selected stack declares an instance named `resource`."""
    names = sorted({d.resource for stack in stacks.values() for d in stack.instances})
    if resource not in names:
        where = f"stack {', '.join(stacks)}" if len(stacks) == 1 else f"stacks {', '.join(stacks)}"
        raise ConfigError(unknown_argument("--resource", [resource], f"no cluster of {where} has this name", names))


def _nothing_to_adopt(
    stacks: Mapping[str, DeclaredStack], inventory: Inventory, resource: str | None, path: str | None
) -> Note:
    """Why a --resource/--path that matched no `changed` property has nothing to adopt: not running,
    or not drifted now; a --path none of the instances has is a ConfigError."""
    candidates = [
        (declared, _live_instance(inventory, declared))
        for stack in stacks.values()
        for declared in stack.instances
        if resource is None or declared.resource == resource
    ]
    if path is not None:
        known = set(PATH_KEYS)
        for declared, instance in candidates:
            known.update(declared.properties)
            known.update(instance_properties(instance) if instance is not None else ())
        if path in NOT_COMPARED:
            raise ConfigError(f"--path {path}: not compared by the live drift engine ({NOT_COMPARED[path]}); nothing to adopt")
        if path not in known:
            whose = f"cluster {resource}" if resource else "the selected stacks' clusters"
            raise ConfigError(unknown_argument("--path", [path], f"no property of {whose} has this path", sorted(known)))
    if resource is not None and all(instance is None for _, instance in candidates):
        return Note(resource, "in sync", "not running (the live drift report says missing): nothing to adopt; `pulumi up` creates it")
    what = f"{path}: " if path else ""
    return Note(
        resource or f"stack {', '.join(stacks)}", "in sync",
        f"{what}no drift now (the live value is the declared one, or an ignore rule covers it); nothing to adopt",
    )  # fmt: skip


def _live_instance(inventory: Inventory, declared: DeclaredInstance) -> redis_v1.Instance | None:
    for instance in inventory.instances(declared.project):
        if declared.holds(split_instance_name(instance.name)):
            return instance
    return None


def _ways_forward(plan: Plan, stack: DeclaredStack, declared: DeclaredInstance, drifts: Sequence[PropertyDrift]) -> None:
    """A stack read from its state: redisguard cannot edit the program (any language), so it says,
    per changed property, what the program declares, what runs, and the two ways forward."""
    urn = declared.urn or declared.resource
    lines = [f"stack {stack.name} ({stack.source}): {urn}"]
    lines += [
        f"  {d.path}: the program declares {format_value(d.expected)}, the instance runs {format_value(d.actual)}"
        for d in drifts
    ]
    lines += [
        "  to keep what runs: change the program so it declares the values above, then `pulumi up` (no change to the instance);",
        f"  to revert the instance: pulumi up --target '{urn}' --stack {stack.name}",
    ]
    plan.manual.append("\n".join(lines))


def _adopt_one(
    config: RedisguardConfig, plan: Plan, stack: StackConfig, stack_name: str, instance: redis_v1.Instance, paths: list[str]
) -> None:
    """Each drifted property's live value into the cluster's entry, one property after the other,
    or a note that says why not."""
    cluster_name = split_instance_name(instance.name).instance_id
    live = cluster_entry(instance).entry
    stack_file = plan.file(config, stack_name)
    declared = dict(stack_file.entry(cluster_name))
    before = mandatory_violations(cluster_name, policy_inputs(stack.cluster(cluster_name)), stack_name)
    for path in paths:
        keys = keys_for_path(path)
        proposed = _with_live_value(declared, keys, path, live, instance)
        refusal = _refusal(path, keys, proposed, cluster_name, stack_name, before)
        if refusal is not None:
            plan.notes.append(Note(cluster_name, "refused", refusal))
            continue
        for k in keys:
            stack_file.set_key(cluster_name, k, proposed.get(k))
        declared = proposed


def _with_live_value(
    declared: Mapping[str, Any], keys: Sequence[str], path: str, live: Mapping[str, Any], instance: redis_v1.Instance
) -> dict[str, Any]:
    """The declared entry with the keys that hold `path` set to the live value (one label for `labels.<key>`)."""
    proposed = dict(declared)
    for k in keys:
        if k == "labels" and path.startswith("labels."):
            labels = dict(proposed.get("labels") or {})
            label = path[len("labels."):]
            if label in instance.labels:
                labels[label] = instance.labels[label]
            else:
                labels.pop(label, None)
            proposed["labels"] = labels or None
        else:
            proposed[k] = live.get(k)
    return {k: v for k, v in proposed.items() if v is not None}


def _refusal(
    path: str,
    keys: Sequence[str],
    proposed: Mapping[str, Any],
    cluster_name: str,
    stack_name: str,
    before: Mapping[str, list[str]],
) -> str | None:
    """Why the live value of `path` may not be adopted: AUTH (a secure default), no key for it in
    the flat config, not valid stack config, or a mandatory policy it newly breaks; None when it may."""
    if path == "authEnabled":
        return (
            f"{path}: AUTH is off on the instance; AUTH is a secure default the program enforces and "
            "memorystore-auth-required is mandatory. Revert instead: `pulumi up` turns AUTH back on."
        )
    if not keys:
        return f"{path}: the flat config has no key for it; revert it with `pulumi up` or remove it on the instance"
    try:
        cluster = ClusterConfig.model_validate(proposed)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
        return f"{path}: the live value is not valid stack config ({problems})"
    after = mandatory_violations(cluster_name, policy_inputs(cluster), stack_name)
    broken = {p: m for p, m in after.items() if p not in before}
    if broken:
        reasons = "; ".join(f"{p} is mandatory in stack {stack_name}: {' '.join(m)}" for p, m in broken.items())
        return f"{path}: adopting the live value breaks a policy ({reasons}). Revert with `pulumi up`."
    return None
