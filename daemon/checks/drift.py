"""One drift scan: every (stack, engine) check of the config run in parallel into one DriftReport."""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redisguard.core.errors import ConfigError, RedisguardError, error_kind
from redisguard.core.secrets import scrub
from redisguard.core.threads import ComputedOnce, start_daemon_thread
from redisguard.daemon.checks import drift_live, drift_pulumi
from redisguard.daemon.checks.audit import AuditReader
from redisguard.daemon.checks.ignore import IgnoreRules
from redisguard.daemon.checks.names import DRIFT_LIVE, DRIFT_PULUMI
from redisguard.daemon.checks.protocol import CancelToken, Job, run_jobs
from redisguard.daemon.checks.registry import DRIFT_CHECK_OF, DRIFT_CHECKS
from redisguard.daemon.config import RedisguardConfig
from redisguard.daemon.fleet import state as fleet_state
from redisguard.daemon.fleet.declared import Declared, DeclaredStack, SourceFailure, declare_stack, declared_at_hand
from redisguard.daemon.fleet.inventory import Inventory
from redisguard.daemon.fleet.stacks import StackFileRead, read_stack_files
from redisguard.daemon.reports.drift import DriftItem, DriftReport, Engine, InstanceState, StackReport
from redisguard.daemon.sharding import WHOLE, Shard

log = logging.getLogger(__name__)

ENGINES: tuple[Engine, ...] = tuple(DRIFT_CHECK_OF)


def engines_for(choice: str) -> tuple[Engine, ...]:
    """`--engine pulumi|live|all` as the engines to run."""
    if choice == "all":
        return ENGINES
    if choice not in ENGINES:
        raise ConfigError(f"--engine {choice!r}: allowed values: pulumi, live, all")
    return (choice,)


class _LiveContext:
    """What the live checks of one scan share: each stack's declared side (read once, by the first
    check that needs it), one listing per project, and which stack reports which project's
    unmanaged instances.

    `selected` is the stacks the user chose; a sharded daemon chooses them all and checks the ones
    its `shard` owns, `targets`."""

    def __init__(
        self, config: RedisguardConfig, selected: Sequence[str], targets: Sequence[str], shard: Shard = WHOLE
    ) -> None:
        self.config = config
        self.selected = tuple(selected)
        self.shard = shard
        self.inventory = Inventory(config.gcp)
        self._declared: ComputedOnce[str, Declared] = ComputedOnce()
        self._scan_view: ComputedOnce[None, _ScanView] = ComputedOnce()
        self.audit = AuditReader(config)
        # The stacks whose declared side no check has asked for yet (see _view).
        self._unread: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._recall = (config.gcp.redis_endpoint, tuple(targets))
        self.files: dict[str, StackFileRead] = {}
        self.at_hand = False
        last = _LAST_SCANS.get(self._recall)
        if last is not None and last.at_hand:
            self._look_while_listing(last.projects)
        else:
            self._look()

    def _look(self) -> None:
        """The stack files, and every declared side at hand; with all of them, the scan's view too."""
        self.files = {file.name: file for file in read_stack_files(self.config)}
        _, targets = self._recall
        self.at_hand = self._read_at_hand(set(targets))
        if self.at_hand:
            self._scan_view.get(None, self._work_out_view)
        else:
            for name in self.config.pulumi.stacks:
                self._unread.put(name)

    def _look_while_listing(self, projects: frozenset[str]) -> None:
        """_look on another thread while this one lists `projects`, the last scan's.

        For the daemon's usual scan (nothing changed since the last one, every declared side at
        hand): the listing's request goes out first and the stack files are looked at while the API
        answers. Python runs one thread at a time, and a thread started to list would wait for this
        one to finish looking before its request went out. A fleet's projects rarely change; one
        no stack names any more costs a listing nobody reads, this scan only."""
        listing, looked = threading.Event(), threading.Event()
        failed: list[BaseException] = []

        def look() -> None:
            listing.wait()  # the listing's request first: it runs while this thread waits for the GIL
            try:
                self._look()
            except BaseException as exc:  # noqa: BLE001 - raised on the scan's thread
                failed.append(exc)
            finally:
                looked.set()  # not the thread's end: its teardown would wait for the GIL the listing holds

        start_daemon_thread(look, "read-stacks")
        listing.set()
        self.inventory.list_now(projects)
        looked.wait()
        if failed:
            raise failed[0]

    def _read_at_hand(self, targets: set[str]) -> bool:
        """Every stack's declared side that is at hand without the pulumi CLI (a config, an unchanged
        export), read now, each target's projects listed from the moment they are known; whether
        every stack's was: then the checks wait for no CLI and need no thread of their own."""
        with fleet_state.one_look():
            for name in self.config.pulumi.stacks:
                found = declared_at_hand(self.config, self.files[name])
                if found is None:
                    return False
                self._declared.known(name, found)
                if name in targets and isinstance(found, DeclaredStack):
                    self.inventory.prefetch({instance.project for instance in found.instances})
        return True

    def declared(self, name: str) -> Declared:
        """The stack's declared side, read once per scan whichever check asks first."""
        return self._declared.get(name, lambda: declare_stack(self.config, self.files[name]))

    def check(
        self, name: str, rules: IgnoreRules, cancel: CancelToken
    ) -> tuple[DeclaredStack, drift_live.StackFindings, str | None]:
        """The stack's declared side and findings, and what could not be checked (None when everything was)."""
        stack = self.declared(name)
        if isinstance(stack, SourceFailure):
            raise stack.error
        if not self.at_hand:  # else _read_at_hand has started them
            # Its instances' projects are listed in any case (compare_stack finds each instance
            # there): the API answers while the other stacks' declared sides are read.
            self.inventory.prefetch({instance.project for instance in stack.instances})
        view = self._view(cancel)
        projects = view.owners.get(name, [])
        reported = [p for p in projects if not view.blockers(p)]
        findings = drift_live.compare_stack(stack, self.inventory, rules, held=view.held, unmanaged_projects=reported)
        blocked = {p: view.blockers(p) for p in projects if p not in reported}
        # In sync now: an instance's later drift is explained by the changes from here on.
        self.audit.memory.seen(findings.in_sync, self.audit.started)
        items = self.audit.explain(findings.items)
        findings = drift_live.StackFindings(items, findings.not_ready, tuple(reported), findings.in_sync)
        if not blocked:
            return stack, findings, None
        # A false "unmanaged" becomes a false alert (and an `adopt` of someone's cluster): the
        # unmanaged part of these projects fails instead, and says which stack to fix.
        lines: list[str] = []
        for project, blockers in blocked.items():
            lines.append(f"unmanaged instances of project {project} not checked: a stack that may declare them cannot be read")
            lines += [f"  {line}" for blocker in blockers for line in blocker.splitlines()]
        return stack, findings, "\n".join(lines)

    def unchanged(self, name: str, ignore: object, cancel: CancelToken) -> StackReport | None:
        """The stack's last live report, when it was in sync and nothing it was worked out from has
        changed: the same declared side (the same object while its stack file and export are), the
        same ignore rules (`ignore`: config.ignore), and each of its instances listed exactly as
        then (protobuf equality, every field). The report is then what comparing again would give.

        Only in a scan that needs no CLI, and never for the stack that reports a project's
        unmanaged instances (its result depends on the whole listing)."""
        last = _IN_SYNC.get((self.config.gcp.redis_endpoint, name))
        if last is None or not self.at_hand or last.ignore is not ignore or last.declared is not self.declared(name):
            return None
        if self._view(cancel).owners.get(name) or self._listed(last.declared) != last.listed:
            return None
        self.audit.memory.seen(last.in_sync, self.audit.started)
        return last.report

    def keep(self, name: str, ignore: object, declared: DeclaredStack, findings: drift_live.StackFindings, report: StackReport) -> None:
        """Remember an in-sync report for unchanged() (and forget a stack's that is not in sync)."""
        key = (self.config.gcp.redis_endpoint, name)
        if report.status != "in_sync" or findings.unmanaged_projects or not self.at_hand:
            _IN_SYNC.pop(key, None)
            return
        _IN_SYNC[key] = _InSync(declared, ignore, self._listed(declared), report, findings.in_sync)

    def _listed(self, declared: DeclaredStack) -> tuple[object, ...]:
        """The protobuf message of each of the stack's instances as listed (None: not listed)."""
        found = (drift_live.find_instance(self.inventory, d) for d in declared.instances)
        return tuple(None if i is None else type(i).pb(i) for i in found)

    def _view(self, cancel: CancelToken) -> _ScanView:
        """Every stack's declared side and who reports which project's unmanaged instances: worked out
        once per scan, by the first check that needs it (each stack's side read by whoever asks first).

        Each check that needs it first helps read the declared sides no check has asked for, one at a
        time: a first run (every stack exported) keeps `parallelism` CLIs at work, not one."""
        while not self._scan_view.started(None):
            try:
                name = self._unread.get_nowait()
            except queue.Empty:
                break
            if not self._declared.started(name):  # else another check reads it
                cancel.raise_if_cancelled()
                self.declared(name)
        return self._scan_view.get(None, self._work_out_view)

    def _work_out_view(self) -> _ScanView:
        every = {n: self.declared(n) for n in self.config.pulumi.stacks}
        view = _ScanView.of(every, self.selected, self.config.gcp.projects, self.shard)
        _, targets = self._recall
        listed = {project for projects in view.owners.values() for project in projects}
        for name in targets:
            if isinstance(stack := every[name], DeclaredStack):
                listed.update(instance.project for instance in stack.instances)
        _LAST_SCANS[self._recall] = _LastScan(frozenset(listed), self.at_hand)
        return view


@dataclass(frozen=True)
class _LastScan:
    """What a live scan remembers for the next scan of the same stacks (see _LiveContext._look_while_listing)."""

    projects: frozenset[str]
    """The projects it listed."""
    at_hand: bool
    """Whether every declared side was at hand (no pulumi CLI run)."""


# (endpoint, the scan's target stacks) -> its last scan.
_LAST_SCANS: dict[tuple[str | None, tuple[str, ...]], _LastScan] = {}


@dataclass(frozen=True)
class _InSync:
    """A stack's last in-sync live report and what it was worked out from (see _LiveContext.unchanged)."""

    declared: DeclaredStack
    ignore: object
    listed: tuple[object, ...]
    report: StackReport
    in_sync: tuple[str, ...]


# (endpoint, stack) -> its last in-sync live report.
_IN_SYNC: dict[tuple[str | None, str], _InSync] = {}


@dataclass(frozen=True)
class _ScanView:
    """One scan's declared sides, the readable ones, and stack -> the projects whose unmanaged instances it reports."""

    every: Mapping[str, Declared]
    readable: Sequence[DeclaredStack]
    owners: Mapping[str, list[str]]
    held: frozenset[tuple[str, str | None, str]]
    """Where every readable stack's instances are (drift_live.declared_keys): whether a listed instance is unmanaged."""

    @classmethod
    def of(cls, every: Mapping[str, Declared], selected: Sequence[str], listed: Sequence[str], shard: Shard = WHOLE) -> _ScanView:
        """Each watched project is reported once, by the first selected stack that watches it; the
        explicitly listed projects no stack watches, by the first selected stack that could be read.
        Sharded, `selected` is the whole fleet, so every shard works out the same reporters as one
        daemon would, and keeps those its `shard` owns: each project is reported by exactly one shard,
        in the same stack's report as without sharding."""
        readable = [s for s in every.values() if isinstance(s, DeclaredStack)]
        chosen = [s for name in selected if isinstance(s := every.get(name), DeclaredStack)]
        by_project: dict[str, str] = {}
        for stack in chosen:
            for project in sorted(stack.projects):
                by_project.setdefault(project, stack.name)
        for project in listed if chosen else ():
            by_project.setdefault(project, chosen[0].name)
        owners: dict[str, list[str]] = {}
        for project, name in by_project.items():
            if shard.owns(name):
                owners.setdefault(name, []).append(project)
        return cls(every, readable, owners, drift_live.declared_keys(readable))

    def blockers(self, project: str) -> list[str]:
        """Why the unmanaged instances of `project` cannot be decided: one entry per unreadable stack that may hold them."""
        blockers = []
        for failure in self.every.values():
            if isinstance(failure, SourceFailure) and failure.project in (None, project):
                scope = "" if failure.project == project else " (which project it watches is unknown)"
                blockers.append(f"stack {failure.name}{scope}: {failure.message}")
        return blockers


class _DriftCheck(ABC):
    """What both drift checks share: targets are stack names, a result is a StackReport, a failure's
    message never shows a known credential."""

    name: str
    engine: Engine

    def __init__(self, config: RedisguardConfig, *, shard: Shard = WHOLE) -> None:
        self.config = config
        self.shard = shard
        self.rules = IgnoreRules(config.ignore)
        # The pulumi CLI and its plugins may echo a credential in an error; the report never shows it.
        self.secrets = config.secrets()

    @property
    def targets(self) -> tuple[str, ...]:
        """The configured stacks this daemon's shard owns (every stack unsharded)."""
        return tuple(stack for stack in self.config.pulumi.stacks if self.shard.owns(stack))

    @abstractmethod
    def jobs(self, targets: Sequence[str], cancel: CancelToken) -> list[Job[StackReport]]:
        """One job per stack, in the order given."""

    def _job(
        self, stack: str, run: Callable[[], StackReport], extra_seconds: float = 0.0, *, inline: bool = False
    ) -> Job[StackReport]:
        def failed(error: RedisguardError, seconds: float) -> StackReport:
            return StackReport.failed(
                stack, self.engine, scrub(str(error), self.secrets), seconds + extra_seconds, kind=error_kind(error)
            )

        return Job(check=self.name, target=stack, run=run, failed=failed, inline=inline)

    def _kept(self, items: Sequence[DriftItem]) -> list[DriftItem]:
        # Whole-resource rules (`kind:` without `path:`) apply to both engines' findings alike.
        return [item for item in items if not self.rules.resource_ignored(item)]

    def _report(
        self,
        stack: str,
        items: Sequence[DriftItem],
        started: float,
        not_ready: Sequence[InstanceState] = (),
        **fields: Any,
    ) -> StackReport:
        result = StackReport.from_items(
            stack, self.engine, self._kept(items), time.monotonic() - started, not_ready=not_ready, **fields
        )
        return _logged(result)


class PulumiDriftCheck(_DriftCheck):
    """`pulumi refresh --preview-only` per stack."""

    name = DRIFT_PULUMI
    engine = DRIFT_CHECKS[DRIFT_PULUMI]

    def jobs(self, targets: Sequence[str], cancel: CancelToken) -> list[Job[StackReport]]:
        def run(stack: str) -> StackReport:
            started = time.monotonic()
            return self._report(stack, drift_pulumi.refresh_stack(stack, self.config.pulumi, self.rules, cancel), started)

        return [self._job(stack, functools.partial(run, stack)) for stack in targets]


class LiveDriftCheck(_DriftCheck):
    """The declared clusters against the live instances per stack."""

    name = DRIFT_LIVE
    engine = DRIFT_CHECKS[DRIFT_LIVE]

    def jobs(self, targets: Sequence[str], cancel: CancelToken) -> list[Job[StackReport]]:
        # Sharded, the daemon watches every stack and checks its own: who reports a project's
        # unmanaged instances is decided over the whole fleet, the same in every shard.
        live = _LiveContext(self.config, targets if self.shard.whole else self.config.pulumi.stacks, targets, self.shard)

        def run(stack: str) -> StackReport:
            # Reading a stack file is part of checking that stack, so its load time counts.
            # Reading the stack file (before the scan's checks started) is part of checking the stack.
            started = time.monotonic() - live.files[stack].load_seconds
            cancel.raise_if_cancelled()
            unchanged = live.unchanged(stack, self.config.ignore, cancel)
            if unchanged is not None:
                return _logged(unchanged.model_copy(update={"duration_seconds": round(time.monotonic() - started, 3)}))
            declared, findings, problem = live.check(stack, self.rules, cancel)
            if problem is None:
                report = self._report(stack, findings.items, started, findings.not_ready, **_live_fields(declared, findings))
                live.keep(stack, self.config.ignore, declared, findings, report)
                return report
            # What could be checked is kept; what could not fails the stack. A stack file to fix:
            # no retry makes the unmanaged part decidable.
            return StackReport.failed(
                stack,
                self.engine,
                scrub(problem, self.secrets),
                time.monotonic() - started,
                items=self._kept(findings.items),
                kind="permanent",
                not_ready=findings.not_ready,
                **_live_fields(declared, findings),
            )

        # Every declared side at hand (configs, unchanged exports): the checks only compare and wait
        # for the listing, on the calling thread.
        return [
            self._job(stack, functools.partial(run, stack), live.files[stack].load_seconds, inline=live.at_hand)
            for stack in targets
        ]


def _logged(result: StackReport) -> StackReport:
    log.debug(
        "drift check stack=%s engine=%s status=%s drifted=%d duration=%.2fs",
        result.stack, result.engine, result.status, len(result.items), result.duration_seconds,
    )  # fmt: skip
    return result


def _live_fields(declared: DeclaredStack, findings: drift_live.StackFindings) -> dict[str, object]:
    """What only the live engine's report says: the stack's source, its pending changes, the projects whose unmanaged instances it covers."""
    return {
        "source": declared.source,
        "pending": declared.pending,
        "notes": declared.notes,
        "unmanaged_projects": findings.unmanaged_projects,
    }


_BY_ENGINE: dict[Engine, type[_DriftCheck]] = {check.engine: check for check in (PulumiDriftCheck, LiveDriftCheck)}


def run_scan(
    config: RedisguardConfig,
    stacks: Sequence[str],
    engines: Sequence[Engine],
    *,
    on_done: Callable[[StackReport], None] | None = None,
    cancel: CancelToken | None = None,
) -> DriftReport:
    """Run every (stack, engine) check, at most `config.parallelism` at once, into one report; a
    failing check becomes a stack with status `error`, never an exception.

    `cancel` (from any thread) stops the scan: checks not started never run, a running pulumi CLI
    is killed; the report then holds the checks that finished.
    """
    cancel = cancel or CancelToken()
    by_engine = {engine: _BY_ENGINE[engine](config).jobs(stacks, cancel) for engine in engines}
    # Stack by stack, each stack's engines in the order given: the report's order.
    jobs = [by_engine[engine][index] for index in range(len(stacks)) for engine in engines]
    results = run_jobs(jobs, cancel, parallelism=config.parallelism, publish=on_done)
    return DriftReport(stacks=tuple(results))
