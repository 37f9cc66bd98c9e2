"""What each watched stack declares, from its stack-file config or its deployed Pulumi state: the one
declared side the live drift engine, the memory check's owners, check-config and remediation read.

A stack's source (redisguard.yaml `pulumi.source`, per stack `pulumi.stack_sources`):

- `config`: the flat list of clusters under `pulumi.config_key` in `Pulumi.<stack>.yaml`;
- `state`: the stack's deployed `gcp:redis/instance:Instance` resources, read from its backend
  (fleet/state.py) — any program in any language, no stack file needed;
- `both`: state is what is deployed (drift is live vs. state), and the config's clusters not yet
  deployed or not yet applied are *pending*, never drift;
- `auto`: config when the stack file has the key, else state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redisguard.core.errors import ConfigError, RedisguardError
from redisguard.core.pulumi import INSTANCE_TYPE
from redisguard.core.threads import ComputedOnce
from redisguard.daemon.config import PulumiSettings, RedisguardConfig, SourceName
from redisguard.daemon.fleet.inventory import LiveKey, split_instance_name
from redisguard.daemon.fleet.inverse import keys_for_path
from redisguard.daemon.fleet.pending import PendingChange, PendingProperty
from redisguard.daemon.fleet.properties import expected_properties, input_properties
from redisguard.daemon.fleet.stacks import StackFileRead, choose_source, read_stack_files, with_fallback_context
from redisguard.daemon.fleet.state import StackState, StateResource, cached_stack_state, read_stack_state
from redisguard.program.config import CONFIG_KEY, ClusterConfig, StackConfig

# Where a live key or label not declared counts as drift (the program would remove it).
_LIVE_ONLY_GROUPS = ("redisConfigs.", "labels.")
# The flat-format keys of each group, for a config read under another program's key.
_GROUP_KEYS = {"redisConfigs.": ("max_memory_policy", "active_defrag"), "labels.": ("labels",)}


@dataclass(frozen=True)
class DeclaredInstance:
    """One instance a stack declares: where it is, its name in the stack, and its compared properties."""

    resource: str
    """The name reports and ignore rules use: the cluster's name, or the resource's logical name in the state."""
    project: str
    region: str | None
    """None: any region (a config without gcp:region)."""
    instance_id: str
    properties: Mapping[str, Any]
    """Compared property path -> declared value (fleet/properties.py's paths)."""
    live_only_groups: tuple[str, ...] = ()
    """Path prefixes under which a key present only live is drift too."""
    urn: str | None = None
    cluster: ClusterConfig | None = None
    secret_paths: tuple[str, ...] = ()
    """Paths the state holds encrypted: not compared (a state secret is never decrypted)."""

    def holds(self, key: LiveKey) -> bool:
        return (
            self.instance_id == key.instance_id
            and self.project == key.project
            and (self.region is None or self.region == key.region)
        )


def from_cluster(cluster: ClusterConfig, stack: StackConfig, project: str) -> DeclaredInstance:
    """A cluster of a stack file. Under redisguard's own key every compared property is declared (the
    program's defaults included); under a team's own key only what the entry states, since what
    that program does with an unstated key is not known."""
    expected = expected_properties(cluster)
    groups: tuple[str, ...] = _LIVE_ONLY_GROUPS
    if stack.key != CONFIG_KEY:
        stated = cluster.model_fields_set
        expected = {
            path: value for path, value in expected.items() if (keys_for_path(path) or ("",))[0] in stated
        }
        groups = tuple(g for g in _LIVE_ONLY_GROUPS if stated & set(_GROUP_KEYS[g]))
    return DeclaredInstance(
        resource=cluster.name,
        project=project,
        region=stack.region,
        instance_id=cluster.name,
        properties=expected,
        live_only_groups=groups,
        cluster=cluster,
    )


def from_resource(resource: StateResource, default_project: str | None) -> DeclaredInstance | None:
    """A deployed instance from the state; None when its id does not say where it runs (a resource
    whose create never finished has no id)."""
    key = _resource_key(resource, default_project)
    if key is None:
        return None
    props, secret = input_properties(resource.inputs)
    # The gcp provider manages the redisConfigs map as a whole when the program sets it; labels
    # are not authoritative (it manages only the keys the program sets), so a label added by
    # hand is not drift for any program read from its state.
    groups = ("redisConfigs.",) if "redisConfigs" in resource.inputs else ()
    return DeclaredInstance(
        resource=resource.name,
        project=key.project,
        region=key.region,
        instance_id=key.instance_id,
        properties=props,
        live_only_groups=groups,
        urn=resource.urn,
        secret_paths=tuple(secret),
    )


def _resource_key(resource: StateResource, default_project: str | None) -> LiveKey | None:
    if resource.id:
        try:
            return split_instance_name(resource.id)
        except RedisguardError:
            pass
    outputs = resource.outputs
    project = outputs.get("project") or default_project
    region, name = outputs.get("region"), outputs.get("name")
    if all(isinstance(v, str) and v for v in (project, region, name)):
        return LiveKey(project=str(project), region=str(region), instance_id=str(name))
    return None


# --- pending: the config against what is deployed ---------------------------------------------


def pending_changes(configured: Sequence[DeclaredInstance], deployed: Sequence[DeclaredInstance]) -> list[PendingChange]:
    """Clusters in the config not deployed, changed in the config and not applied, deployed and no longer in the config."""
    by_id = {d.instance_id: d for d in deployed}
    changes: list[PendingChange] = []
    for want in configured:
        have = by_id.pop(want.instance_id, None)
        if have is None:
            changes.append(PendingChange(resource=want.resource, change="create"))
            continue
        differences = tuple(
            PendingProperty(path=path, config=value, deployed=have.properties.get(path))
            for path, value in sorted(want.properties.items())
            if path not in have.secret_paths and have.properties.get(path) != value
        )
        if differences:
            changes.append(PendingChange(resource=want.resource, change="update", properties=differences))
    changes += [PendingChange(resource=d.resource, change="delete") for d in by_id.values()]
    return changes


# --- one stack's declared side --------------------------------------------------------------------


@dataclass(frozen=True)
class DeclaredStack:
    """One watched stack's declared instances, where they came from and why that source."""

    name: str
    source: SourceName
    why: str
    instances: tuple[DeclaredInstance, ...]
    projects: frozenset[str]
    """The projects the stack watches: its gcp:project, and where its deployed instances run."""
    region: str | None = None
    """A config source's gcp:region: the stack watches only that region of its project."""
    pending: tuple[PendingChange, ...] = ()
    state: StackState | None = None
    config: StackConfig | None = None
    notes: tuple[str, ...] = field(default=())

    def watches(self, key: LiveKey) -> bool:
        """Whether the instance is where the stack's instances are."""
        return key.project in self.projects and (self.region is None or self.region == key.region)

    def holding(self, key: LiveKey) -> DeclaredInstance | None:
        for instance in self.instances:
            if instance.holds(key):
                return instance
        return None


@dataclass(frozen=True)
class SourceFailure:
    """A stack whose declared side could not be read, and which project it may watch (None: unknown)."""

    name: str
    source: SourceName
    error: RedisguardError
    project: str | None

    @property
    def message(self) -> str:
        return str(self.error)


Declared = DeclaredStack | SourceFailure


def declare_stack(config: RedisguardConfig, file: StackFileRead) -> Declared:
    """One stack's declared side from its chosen source, or why it cannot be read (never raising)."""
    return _declare_by(config, file, read_stack_state)


def declared_at_hand(config: RedisguardConfig, file: StackFileRead) -> Declared | None:
    """What declare_stack gives, when it can tell without running the pulumi CLI (a config source, an
    unchanged export in fleet/state.py's cache, a problem found before any read); None when not."""
    try:
        return _declare_by(config, file, cached_stack_state)
    except _NotAtHand:
        return None
    except Exception:  # noqa: BLE001 - not at hand: declare_stack meets it again in the stack's check, which reports it
        return None


class _NotAtHand(Exception):
    """The stack's export is not cached: reading it needs the CLI."""


def _declare_by(config: RedisguardConfig, file: StackFileRead, read: _StateReader) -> Declared:
    source, why = choose_source(config, file)
    try:
        return _declare(config, file, source, why, read)
    except RedisguardError as exc:
        return SourceFailure(file.name, source, with_fallback_context(config, file, exc), _project_hint(file))


# fleet/state.py's read_stack_state, or its cached_stack_state (None: not cached).
_StateReader = Callable[[PulumiSettings, str], StackState | None]


def read_declared(config: RedisguardConfig, names: Iterable[str] | None = None) -> dict[str, Declared]:
    """Every configured stack's (or the named ones') declared side, never raising for one stack."""
    wanted = set(names) if names is not None else None
    return {f.name: declare_stack(config, f) for f in read_stack_files(config) if wanted is None or f.name in wanted}


def _project_hint(file: StackFileRead) -> str | None:
    if file.stack is not None:
        return file.stack.project
    return file.error.project if file.error is not None else None


def _declare(config: RedisguardConfig, file: StackFileRead, source: SourceName, why: str, read: _StateReader) -> DeclaredStack:
    stack = file.stack
    if source in ("config", "both"):
        if stack is None or not stack.has_key:
            raise ConfigError(file.problem or f"{file.path}: {config.pulumi.config_key}: required key is missing")
        if not stack.project:
            raise ConfigError(f"{stack.source}: gcp:project is not set; the live engine needs it to list instances")
    project = _project_hint(file)
    state = None if source == "config" else read(config.pulumi, file.name)
    if state is None and source != "config":
        raise _NotAtHand(file.name)
    # An unchanged stack file is the same StackConfig object (fleet/stacks.py's cache), an unchanged
    # export the same StackState (fleet/state.py's): the declared side derived from them is then the
    # same too, and is not derived again on every run (the daemon's, and every stack of a scan).
    memo = (file.name, source, why, project)
    last = _derived.get(memo)
    if last is not None and last.stack is stack and last.state is state:
        return last.declared
    declared = _derive(file.name, source, why, project, stack, state)
    _derived[memo] = _Derived(stack, state, declared)
    return declared


@dataclass(frozen=True)
class _Derived:
    """A declared side, and the stack file and export it was derived from."""

    stack: StackConfig | None
    state: StackState | None
    declared: DeclaredStack


# (stack, source, why, project hint) -> the declared side last derived for it.
_derived: dict[tuple[str, SourceName, str, str | None], _Derived] = {}


def _derive(
    name: str, source: SourceName, why: str, project: str | None, stack: StackConfig | None, state: StackState | None
) -> DeclaredStack:
    configured: tuple[DeclaredInstance, ...] = ()
    if stack is not None and stack.has_key and project:
        configured = tuple(from_cluster(c, stack, project) for c in stack.clusters)
    if state is None:  # the config source
        assert stack is not None and project
        return DeclaredStack(
            name=name, source=source, why=why, instances=configured,
            projects=frozenset({project}), region=stack.region, config=stack,
        )  # fmt: skip
    deployed = [from_resource(r, project) for r in state.of_type(INSTANCE_TYPE)]
    instances = tuple(d for d in deployed if d is not None)
    notes = [f"{r.urn}: no instance id in the state (a create that never finished); not compared"
             for r, d in zip(state.of_type(INSTANCE_TYPE), deployed, strict=True) if d is None]  # fmt: skip
    notes += [f"{d.resource}: {', '.join(d.secret_paths)} encrypted in the state; not compared" for d in instances if d.secret_paths]
    projects = {d.project for d in instances} | ({project} if project else set())
    pending = tuple(pending_changes(configured, instances)) if source == "both" else ()
    return DeclaredStack(
        name=name, source=source, why=why, instances=instances, projects=frozenset(projects),
        pending=pending, state=state, config=stack if source == "both" else None, notes=tuple(notes),
    )  # fmt: skip


def owner_of(stacks: Mapping[str, Declared], key: LiveKey) -> str:
    """The name of the stack that holds the instance, "" when none that could be read does."""
    for name, stack in stacks.items():
        if isinstance(stack, DeclaredStack) and stack.holding(key) is not None:
            return name
    return ""


@dataclass(frozen=True)
class Owner:
    """Who holds a live instance, as the memory and compliance checks show it."""

    ownership: str
    """reports/memory.py's Ownership (the reports' model, heavier to import than this module): declared,
    unmanaged, or unknown (a stack that may hold it could not be read)."""
    stack: str = ""
    unreadable: tuple[str, ...] = ()
    """The stacks that may hold it but could not be read (ownership unknown)."""


def owner_and_ownership(stacks: Mapping[str, Declared], key: LiveKey) -> Owner:
    """The instance's stack; owner unknown (never unmanaged) when a stack that may hold it cannot be read."""
    stack = owner_of(stacks, key)
    if stack:
        return Owner("declared", stack)
    unreadable = tuple(s.name for s in stacks.values() if isinstance(s, SourceFailure) and s.project in (None, key.project))
    return Owner("unknown", unreadable=unreadable) if unreadable else Owner("unmanaged")


class RunOwners:
    """Which stack holds each instance, for one run: every stack's declared side read once, by the
    first target that needs it (projects checked in parallel share it)."""

    def __init__(self, config: RedisguardConfig) -> None:
        self._config = config
        self._stacks: ComputedOnce[None, dict[str, Declared]] = ComputedOnce()

    def read(self) -> dict[str, Declared]:
        return self._stacks.get(None, lambda: read_declared(self._config))


class WatchedProjects:
    """The projects a per-project check (memory, compliance) watches, read at every run: the explicitly
    listed ones (`gcp.projects`, when no `--stack` narrows the run), then the selected stacks' (their
    stack file's gcp:project, or where their deployed instances run; for a stack that cannot be read
    now, the ones it had when last read, so a typo never drops a project's findings), each once."""

    def __init__(self, config: RedisguardConfig, selected: Sequence[str]) -> None:
        self._config = config
        self._selected = tuple(selected)
        # stack -> the projects it watched when last read
        self._last: dict[str, tuple[str, ...]] = {}

    def read(self) -> tuple[str, ...]:
        config = self._config
        projects: list[str] = list(config.gcp.projects) if self._selected == config.pulumi.stacks else []
        for file in read_stack_files(config):
            if file.name not in self._selected:
                continue
            project = file.stack.project if file.stack is not None else file.error.project if file.error else None
            found: tuple[str, ...] = (project,) if project else ()
            if not found and config.pulumi.source_of(file.name) != "config":
                stack = declare_stack(config, file)
                if isinstance(stack, DeclaredStack):
                    found = tuple(sorted(stack.projects))
            if found:
                self._last[file.name] = found
            projects.extend(found or self._last.get(file.name, ()))
        return tuple(dict.fromkeys(projects))


def config_stacks(config: RedisguardConfig, purpose: str, names: Iterable[str] | None = None) -> dict[str, StackConfig]:
    """The stack files of the stacks whose source is the config (the ones a command may edit);
    ConfigError listing each stack that cannot be read. `purpose` names the command in the message."""
    stacks = read_declared(config, names)
    problems = [s.message for s in stacks.values() if isinstance(s, SourceFailure)]
    if problems:
        raise ConfigError(f"{purpose} needs every stack's declared side to tell managed from unmanaged instances:\n" + "\n".join(problems))
    return {n: s.config for n, s in stacks.items() if isinstance(s, DeclaredStack) and s.source == "config" and s.config}
