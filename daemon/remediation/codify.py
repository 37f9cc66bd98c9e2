"""Findings turned into reviewed stack-file changes: `codify` (unmanaged instances) and `adopt` (accepted drift).

Nothing is changed in the cloud: each command reads the live instances through the live drift
engine's listing (daemon/fleet/inventory.py) and proposes edits to `Pulumi.<stack>.yaml`
(daemon/fleet/stack_edit.py). What an edit cannot say, or what would break a secure default or a
mandatory policy, is a note with the reason, never a silently different entry.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from redisguard.core.errors import ConfigError
from redisguard.daemon.checks.drift_live import check_stack, compare
from redisguard.daemon.checks.ignore import IgnoreRules
from redisguard.daemon.config import RedisguardConfig, default_stack_names, load_config
from redisguard.daemon.fleet.inventory import Inventory, LiveKey, split_instance_name, watched_by_id
from redisguard.daemon.fleet.inverse import cluster_entry, keys_for_path
from redisguard.daemon.fleet.properties import expected_properties, instance_properties
from redisguard.daemon.fleet.stack_edit import StackFile
from redisguard.daemon.fleet.stacks import load_stacks, owner_of, watching
from redisguard.program.config import ClusterConfig, StackConfig, StackConfigError, parse_clusters

if TYPE_CHECKING:
    from google.cloud import redis_v1

EXIT_NOTHING = 0
EXIT_ERROR = 1
EXIT_PROPOSED = 2

@dataclass(frozen=True)
class Note:
    """One instance or property the command says something about instead of (or besides) editing."""

    resource: str
    level: Literal["proposed", "warning", "refused"]
    message: str


@dataclass
class Plan:
    """The edits of one run, per stack file, and the notes."""

    files: dict[str, StackFile] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)

    def file(self, config: RedisguardConfig, stack: str) -> StackFile:
        if stack not in self.files:
            self.files[stack] = StackFile(config.pulumi.stack_file(stack))
        return self.files[stack]

    def diff(self) -> str:
        return "".join(f.diff() for f in self.files.values())


# --- the policy pack's mandatory rules, in process ---------------------------------------------


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted property paths as the nested camelCase inputs the pack reads."""
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        head, _, rest = path.partition(".")
        if head in ("redisConfigs", "labels"):
            nested.setdefault(head, {})[rest] = value
        elif rest:
            nested.setdefault(head, {})[rest] = value
        else:
            nested[head] = value
    return nested


def policy_inputs(cluster: ClusterConfig) -> dict[str, Any]:
    """The inputs the program registers for a cluster, as far as the pack's mandatory rules read them."""
    inputs = _nest(expected_properties(cluster))
    inputs.update(
        connectMode=cluster.connect_mode,
        deletionProtection=cluster.deletion_protection,
        labels=dict(cluster.labels),
    )
    for key, value in (
        ("authorizedNetwork", cluster.authorized_network),
        ("customerManagedKey", cluster.customer_managed_key),
        ("locationId", cluster.location_id),
    ):
        if value is not None:
            inputs[key] = value
    return inputs


def mandatory_violations(name: str, inputs: Mapping[str, Any], stack: str) -> dict[str, list[str]]:
    """Policy name -> messages of the pack's rules that are mandatory for `stack` (its policies/config file)."""
    from pulumi_policy import EnforcementLevel

    from redisguard.policies.check import default_policy_config
    from redisguard.policies.config import PolicyConfigError, parse_config
    from redisguard.policies.rules import RULES, Instance

    path = default_policy_config(stack)
    raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path else {}
    found: dict[str, list[str]] = {}
    for rule in RULES:
        section = found_section if isinstance(found_section := raw.get(rule.name), dict) else {}
        level = str(section.get("enforcementLevel", rule.level.value if isinstance(rule.level, EnforcementLevel) else rule.level))
        if level != "mandatory":
            continue
        options = {k: v for k, v in section.items() if k != "enforcementLevel"}
        try:
            config = parse_config(rule.name, rule.config, options)
        except PolicyConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        if config.exempts(name):
            continue
        messages = rule.check(Instance(name, inputs, stack), config)
        if messages:
            found[rule.name] = messages
    return found


def _live_inputs(instance: redis_v1.Instance, entry: Mapping[str, Any]) -> dict[str, Any]:
    inputs = _nest(instance_properties(instance))
    inputs["labels"] = dict(instance.labels)
    for key, value in (
        ("authorizedNetwork", instance.authorized_network),
        ("customerManagedKey", instance.customer_managed_key),
        ("locationId", instance.location_id),
        ("connectMode", entry.get("connect_mode", "DIRECT_PEERING")),
    ):
        if value:
            inputs[key] = value
    inputs["deletionProtection"] = True
    return inputs


# --- codify --------------------------------------------------------------------------------------

_IMPORT_COMMENT = "codified by redisguard from {name}: remove import_existing after the next `pulumi up` adopted it"


def plan_codify(
    config: RedisguardConfig, target: str | None, only: Sequence[str] = (), inventory: Inventory | None = None
) -> Plan:
    """An entry per unmanaged instance of the watched projects (or only the instances named) in the stack that watches it."""
    stacks = load_stacks(config, "codify")
    if target is not None:
        default_stack_names(config, [target])
    inventory = inventory or Inventory(config.gcp)
    projects = sorted({s.project for n, s in stacks.items() if s.project and (target is None or n == target)})
    plan = Plan()
    seen: set[str] = set()
    for project in projects:
        for instance in inventory.instances(project):
            key = split_instance_name(instance.name)
            if only and key.instance_id not in only:
                continue
            seen.add(key.instance_id)
            owner = owner_of(stacks, key)
            if owner:
                if only:
                    plan.notes.append(Note(instance.name, "warning", f"already declared by stack {owner}; nothing to codify"))
                continue
            _codify_one(config, plan, stacks, instance, key, target)
    for missing in sorted(set(only) - seen):
        plan.notes.append(
            Note(missing, "refused", f"no instance {missing!r} in the watched projects {', '.join(projects) or '(none)'}")
        )
    return plan


def _codify_one(
    config: RedisguardConfig,
    plan: Plan,
    stacks: Mapping[str, StackConfig],
    instance: redis_v1.Instance,
    key: LiveKey,
    target: str | None,
) -> None:
    where = f"project {key.project}, region {key.region}"
    candidates = watching(stacks, key)
    if target is not None and target not in candidates:
        plan.notes.append(Note(instance.name, "refused", f"--stack {target} does not watch {where}"))
        return
    if target is None and not candidates:
        plan.notes.append(Note(instance.name, "refused", f"no stack watches {where}; add one to pulumi.stacks first"))
        return
    if target is None and len(candidates) > 1:
        plan.notes.append(
            Note(instance.name, "refused", f"several stacks watch {where} ({', '.join(candidates)}); choose one with --stack")
        )
        return
    stack_name = target or candidates[0]
    live = cluster_entry(instance)
    if live.unexpressible:
        for path, why in live.unexpressible:
            way = (
                "enable AUTH on the instance first (`gcloud redis instances update "
                f"{key.instance_id} --region={key.region} --enable-auth`; clients then need the AUTH string), "
                "then run codify again"
                if path == "authEnabled"
                else "remove it from the instance first, or manage this instance outside the fleet"
            )
            plan.notes.append(
                Note(
                    instance.name,
                    "refused",
                    f"{path}: {why}. An entry would differ from what runs, and Pulumi refuses an import whose "
                    f"inputs differ from the live resource. Way forward: {way}",
                )
            )
        return
    entry = {**live.entry, "import_existing": True}
    stack = stacks[stack_name]
    source = str(config.pulumi.stack_file(stack_name))
    try:
        (cluster,) = parse_clusters([entry], source, region=stack.region)
    except StackConfigError as exc:
        plan.notes.append(Note(instance.name, "refused", "the entry would not be valid stack config: " + "; ".join(exc.problems)))
        return
    # The contract with the live engine: the codified entry compares equal to the instance.
    differences = compare(cluster, instance, IgnoreRules(builtins=False))
    if differences:
        paths = ", ".join(d.path for d in differences)
        plan.notes.append(Note(instance.name, "refused", f"the entry would still differ on {paths}; not written"))
        return
    for policy, messages in mandatory_violations(key.instance_id, _live_inputs(instance, entry), stack_name).items():
        plan.notes.append(
            Note(
                instance.name,
                "warning",
                f"{policy} (mandatory in stack {stack_name}) will block `pulumi up`: {' '.join(messages)} "
                "The entry declares what runs, so the import adopts it unchanged once the policy allows it "
                "(an exemption in policies/config); change it afterwards in a reviewed change.",
            )
        )
    plan.file(config, stack_name).append_entry(entry, comment=_IMPORT_COMMENT.format(name=instance.name))


# --- adopt ---------------------------------------------------------------------------------------


def plan_adopt(
    config: RedisguardConfig,
    stack_names: Sequence[str],
    resource: str | None = None,
    path: str | None = None,
    inventory: Inventory | None = None,
) -> Plan:
    """The live value of each `changed` property written into the declaring entry, where the config may say it."""
    stacks = load_stacks(config, "adopt")
    inventory = inventory or Inventory(config.gcp)
    rules = IgnoreRules(config.ignore)
    plan = Plan()
    matched = False
    for name in stack_names:
        stack = stacks[name]
        items = check_stack(stack, inventory, rules, report_unmanaged=False).items
        by_id = watched_by_id(stack, inventory.instances(stack.project or ""))
        for item in items:
            if item.kind != "changed" or (resource is not None and item.resource != resource):
                continue
            drifts = [d for d in item.properties if path is None or d.path == path]
            if drifts:
                matched = True
                _adopt_one(config, plan, stack, name, by_id[item.resource], [d.path for d in drifts])
    if (resource or path) and not matched:
        what = " ".join(x for x in (f"--resource {resource}" if resource else "", f"--path {path}" if path else "") if x)
        plan.notes.append(Note(resource or "", "refused", f"{what}: no such changed property in the live drift report"))
    return plan


def _adopt_one(
    config: RedisguardConfig, plan: Plan, stack: StackConfig, stack_name: str, instance: redis_v1.Instance, paths: list[str]
) -> None:
    cluster_name = split_instance_name(instance.name).instance_id
    live = cluster_entry(instance).entry
    stack_file = plan.file(config, stack_name)
    declared = dict(stack_file.entry(cluster_name))
    before = mandatory_violations(cluster_name, policy_inputs(stack.cluster(cluster_name)), stack_name)
    for path in paths:
        keys = keys_for_path(path)
        if path == "authEnabled":
            plan.notes.append(
                Note(
                    cluster_name,
                    "refused",
                    f"{path}: AUTH is off on the instance; AUTH is a secure default the program enforces and "
                    "memorystore-auth-required is mandatory. Revert instead: `pulumi up` turns AUTH back on.",
                )
            )
            continue
        if not keys:
            plan.notes.append(
                Note(
                    cluster_name,
                    "refused",
                    f"{path}: the flat config has no key for it; revert it with `pulumi up` or remove it on the instance",
                )
            )
            continue
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
        proposed = {k: v for k, v in proposed.items() if v is not None}
        try:
            cluster = ClusterConfig.model_validate(proposed)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
            plan.notes.append(Note(cluster_name, "refused", f"{path}: the live value is not valid stack config ({problems})"))
            continue
        after = mandatory_violations(cluster_name, policy_inputs(cluster), stack_name)
        broken = {p: m for p, m in after.items() if p not in before}
        if broken:
            reasons = "; ".join(f"{p} is mandatory in stack {stack_name}: {' '.join(m)}" for p, m in broken.items())
            plan.notes.append(Note(cluster_name, "refused", f"{path}: adopting the live value breaks a policy ({reasons}). Revert with `pulumi up`."))
            continue
        for k in keys:
            stack_file.set_key(cluster_name, k, proposed.get(k))
        declared = proposed


# --- command line --------------------------------------------------------------------------------


def emit(command: str, plan: Plan, write: bool) -> int:
    """Notes on stderr, the diff on stdout (or the files written); the exit code."""
    for note in plan.notes:
        print(f"redisguard {command}: {note.level}: {note.resource}: {note.message}", file=sys.stderr)
    diff = plan.diff()
    if not diff:
        print(f"redisguard {command}: nothing to change", file=sys.stderr)
        return EXIT_NOTHING
    if not write:
        sys.stdout.write(diff)
        sys.stdout.flush()
        return EXIT_PROPOSED
    for stack_file in plan.files.values():
        try:
            stack_file.validate()
        except StackConfigError as exc:
            raise ConfigError(f"the change would leave an invalid stack file; nothing written:\n{exc}") from None
    for stack_file in plan.files.values():
        if stack_file.write():
            print(f"redisguard {command}: wrote {stack_file.path}", file=sys.stderr)
    return EXIT_NOTHING


def run_codify(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    return emit("codify", plan_codify(config, args.stack, args.instance or ()), args.write)


def run_adopt(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    stacks = default_stack_names(config, args.stack)
    return emit("adopt", plan_adopt(config, stacks, args.resource, args.path), args.write)
