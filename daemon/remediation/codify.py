"""`codify`: unmanaged instances turned into reviewed stack-file entries that adopt them on the next `pulumi up`.

Nothing is changed in the cloud: the command reads the live instances through the live drift
engine's listing (daemon/fleet/inventory.py) and proposes entries in `Pulumi.<stack>.yaml`
(daemon/fleet/stack_edit.py). What an entry cannot say is a note with the reason, never a
silently different entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from redisguard.daemon.checks.drift_live import compare
from redisguard.daemon.checks.ignore import IgnoreRules
from redisguard.daemon.config import RedisguardConfig, default_stack_names
from redisguard.daemon.fleet.inventory import Inventory, LiveKey, split_instance_name
from redisguard.daemon.fleet.inverse import cluster_entry
from redisguard.daemon.fleet.stacks import load_stacks, owner_of, watching
from redisguard.daemon.remediation.plan import Note, Plan
from redisguard.daemon.remediation.policy import live_policy_inputs, mandatory_violations
from redisguard.program.config import StackConfig, StackConfigError, parse_clusters

if TYPE_CHECKING:
    from google.cloud import redis_v1

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
    """The entry for one unmanaged instance, or the notes that say why there is none."""
    candidates = watching(stacks, key)
    refusal = _stack_refusal(key, candidates, target)
    if refusal is not None:
        plan.notes.append(Note(instance.name, "refused", refusal))
        return
    stack_name = target or candidates[0]
    live = cluster_entry(instance)
    entry = {**live.entry, "import_existing": True}
    refusals = _unexpressible_refusals(key, live.unexpressible) or _entry_refusals(
        config, stacks[stack_name], stack_name, entry, instance
    )
    if refusals:
        plan.notes += [Note(instance.name, "refused", message) for message in refusals]
        return
    for policy, messages in mandatory_violations(key.instance_id, live_policy_inputs(instance, entry), stack_name).items():
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


def _stack_refusal(key: LiveKey, candidates: Sequence[str], target: str | None) -> str | None:
    """Why no one stack can take the entry (none or several watch the instance's project and
    region, or --stack names another); None when one can."""
    where = f"project {key.project}, region {key.region}"
    if target is not None and target not in candidates:
        return f"--stack {target} does not watch {where}"
    if target is None and not candidates:
        return f"no stack watches {where}; add one to pulumi.stacks first"
    if target is None and len(candidates) > 1:
        return f"several stacks watch {where} ({', '.join(candidates)}); choose one with --stack"
    return None


def _unexpressible_refusals(key: LiveKey, unexpressible: Sequence[tuple[str, str]]) -> list[str]:
    """One refusal per live property the flat config cannot say, with the way forward."""
    refusals = []
    for path, why in unexpressible:
        way = (
            "enable AUTH on the instance first (`gcloud redis instances update "
            f"{key.instance_id} --region={key.region} --enable-auth`; clients then need the AUTH string), "
            "then run codify again"
            if path == "authEnabled"
            else "remove it from the instance first, or manage this instance outside the fleet"
        )
        refusals.append(
            f"{path}: {why}. An entry would differ from what runs, and Pulumi refuses an import whose "
            f"inputs differ from the live resource. Way forward: {way}"
        )
    return refusals


def _entry_refusals(
    config: RedisguardConfig, stack: StackConfig, stack_name: str, entry: Mapping[str, Any], instance: redis_v1.Instance
) -> list[str]:
    """Why the entry may not be written: it is not valid stack config, or it would not compare
    equal to the instance (the contract with the live engine); empty when it may."""
    source = str(config.pulumi.stack_file(stack_name))
    try:
        (cluster,) = parse_clusters([dict(entry)], source, region=stack.region)
    except StackConfigError as exc:
        return ["the entry would not be valid stack config: " + "; ".join(exc.problems)]
    differences = compare(cluster, instance, IgnoreRules(builtins=False))
    if differences:
        return [f"the entry would still differ on {', '.join(d.path for d in differences)}; not written"]
    return []
