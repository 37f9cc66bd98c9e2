"""`codify`: unmanaged instances turned into reviewed stack-file entries that adopt them on the next
`pulumi up`, or into the import file `pulumi import --file` reads, for a program in any language.

Nothing is changed in the cloud: the command reads the live instances through the live drift
engine's listing (daemon/fleet/inventory.py) and proposes entries in `Pulumi.<stack>.yaml`
(daemon/fleet/stack_edit.py) or writes the import file (import_file.py). What an entry cannot
say is a note with the reason, never a silently different entry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from redisguard.core.errors import ConfigError
from redisguard.daemon.checks.drift_live import compare
from redisguard.daemon.checks.ignore import IgnoreRules
from redisguard.daemon.config import RedisguardConfig, default_stack_names
from redisguard.daemon.fleet.declared import (
    Declared,
    DeclaredStack,
    SourceFailure,
    from_cluster,
    owner_of,
    read_declared,
)
from redisguard.daemon.fleet.inventory import Inventory, LiveKey, split_instance_name
from redisguard.daemon.fleet.inverse import cluster_entry, live_policy_inputs
from redisguard.daemon.remediation.import_file import ImportFile, build_import_file, import_file_for_state
from redisguard.daemon.remediation.plan import Note, Plan
from redisguard.daemon.remediation.policy import mandatory_violations
from redisguard.program.config import StackConfig, StackConfigError, parse_clusters

if TYPE_CHECKING:
    from google.cloud import redis_v1

_IMPORT_COMMENT = "codified by redisguard from {name}: remove import_existing after the next `pulumi up` adopted it"


def plan_codify(
    config: RedisguardConfig, target: str | None, only: Sequence[str] = (), inventory: Inventory | None = None
) -> Plan:
    """An entry per unmanaged instance of the watched projects (or only the instances named) in the stack that watches it."""
    plan = Plan()
    stacks = _readable(read_declared(config))
    for instance, key, stack_name in _unmanaged(config, stacks, target, only, inventory, plan.notes):
        stack = stacks[stack_name]
        if stack.source != "config" or stack.config is None:
            plan.notes.append(
                Note(
                    instance.name,
                    "refused",
                    f"stack {stack_name} is read from its Pulumi state ({stack.why}): redisguard cannot write its "
                    f"program; write an import file instead (codify --stack {stack_name} --import-file FILE), then "
                    "`pulumi import --file FILE` generates the code in the program's own language",
                )
            )
            continue
        _codify_one(config, plan, stack.config, stack_name, instance, key)
    return plan


def _readable(stacks: Mapping[str, Declared]) -> dict[str, DeclaredStack]:
    """Every stack's declared side; ConfigError listing each one that cannot be read (which instances
    are unmanaged would be guesswork)."""
    failures = [s.message for s in stacks.values() if isinstance(s, SourceFailure)]
    if failures:
        raise ConfigError("codify needs every stack's declared side to tell managed from unmanaged instances:\n" + "\n".join(failures))
    return {n: s for n, s in stacks.items() if isinstance(s, DeclaredStack)}


def plan_import(
    config: RedisguardConfig, target: str | None, only: Sequence[str] = (), inventory: Inventory | None = None
) -> tuple[ImportFile, list[Note]]:
    """The import file that adopts every unmanaged instance of the stack's projects (or only the
    instances named) into one stack's state, whatever the program's language, and the notes.

    The file is for one stack (`pulumi import --file F --stack S`): `target`, or the only
    configured stack. Nothing in it depends on the flat config: a live property it cannot
    say is no reason to refuse, since the engine generates the code from what runs.
    """
    stack_name = _one_stack(config, target)
    notes: list[Note] = []
    stacks = _readable(read_declared(config))
    adopted = []
    for instance, key, _ in _unmanaged(config, stacks, stack_name, only, inventory, notes):
        adopted.append(instance.name)
        inputs = live_policy_inputs(instance)
        notes += _policy_warnings(instance, key, inputs, stack_name, "The generated code declares what runs, so `pulumi up` passes")
    state = stacks[stack_name].state if stack_name in stacks else None
    if state is not None:
        # The names the stack already holds kept apart, its explicit provider passed on.
        return import_file_for_state(state, adopted), notes
    return build_import_file(stack_name, adopted), notes


def _one_stack(config: RedisguardConfig, target: str | None) -> str:
    if target is not None:
        (name,) = default_stack_names(config, [target])
        return name
    if len(config.pulumi.stacks) == 1:
        return config.pulumi.stacks[0]
    raise ConfigError(
        "--import-file is for one stack (`pulumi import --file F --stack S`): choose it with --stack; "
        f"allowed: {', '.join(config.pulumi.stacks)}"
    )


def _unmanaged(
    config: RedisguardConfig,
    stacks: Mapping[str, DeclaredStack],
    target: str | None,
    only: Sequence[str],
    inventory: Inventory | None,
    notes: list[Note],
) -> Iterator[tuple[redis_v1.Instance, LiveKey, str]]:
    """Each unmanaged instance of the watched projects (or only the instances named) with the stack
    that takes it; notes for the ones named that are declared or missing, and for the ones no one
    stack can take."""
    if target is not None:
        default_stack_names(config, [target])
    inventory = inventory or Inventory(config.gcp)
    projects = sorted({p for n, s in stacks.items() if target is None or n == target for p in s.projects})
    if target is None:
        projects = sorted({*projects, *config.gcp.projects})
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
                    notes.append(Note(instance.name, "warning", f"already declared by stack {owner}; nothing to codify"))
                continue
            candidates = [name for name, stack in stacks.items() if stack.watches(key)]
            refusal = _stack_refusal(key, candidates, target)
            if refusal is not None:
                notes.append(Note(instance.name, "refused", refusal))
                continue
            yield instance, key, target or candidates[0]
    for missing in sorted(set(only) - seen):
        notes.append(Note(missing, "refused", f"no instance {missing!r} in the watched projects {', '.join(projects) or '(none)'}"))


def _codify_one(
    config: RedisguardConfig, plan: Plan, stack: StackConfig, stack_name: str, instance: redis_v1.Instance, key: LiveKey
) -> None:
    """The entry for one unmanaged instance, or the notes that say why there is none."""
    live = cluster_entry(instance)
    entry = {**live.entry, "import_existing": True}
    refusals = _unexpressible_refusals(key, live.unexpressible) or _entry_refusals(config, stack, stack_name, entry, instance)
    if refusals:
        plan.notes += [Note(instance.name, "refused", message) for message in refusals]
        return
    plan.notes += _policy_warnings(
        instance, key, live_policy_inputs(instance), stack_name, "The entry declares what runs, so the import adopts it unchanged"
    )
    plan.file(config, stack_name).append_entry(entry, comment=_IMPORT_COMMENT.format(name=instance.name))


def _policy_warnings(instance: redis_v1.Instance, key: LiveKey, inputs: Mapping[str, Any], stack_name: str, adopts: str) -> list[Note]:
    """A warning per mandatory policy the adopted instance breaks: `pulumi up` with the pack blocks it."""
    return [
        Note(
            instance.name,
            "warning",
            f"{policy} (mandatory in stack {stack_name}) will block `pulumi up`: {' '.join(messages)} "
            f"{adopts} once the policy allows it (an exemption in policies/config); change it afterwards in a reviewed change.",
        )
        for policy, messages in mandatory_violations(key.instance_id, inputs, stack_name).items()
    ]


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
    project = stack.project or split_instance_name(instance.name).project
    differences = compare(from_cluster(cluster, stack, project), instance, IgnoreRules(builtins=False))
    if differences:
        return [f"the entry would still differ on {', '.join(d.path for d in differences)}; not written"]
    return []
