"""One drift scan: every (stack, engine) check of the config run in parallel into one DriftReport."""

from __future__ import annotations

import functools
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from redisguard.core.errors import ConfigError, RedisguardError, error_kind
from redisguard.core.secrets import scrub
from redisguard.daemon.checks import drift_live, drift_pulumi
from redisguard.daemon.checks.ignore import IgnoreRules
from redisguard.daemon.checks.names import DRIFT_LIVE, DRIFT_PULUMI
from redisguard.daemon.checks.protocol import CancelToken, Job, run_jobs
from redisguard.daemon.checks.registry import DRIFT_CHECK_OF, DRIFT_CHECKS
from redisguard.daemon.config import RedisguardConfig
from redisguard.daemon.fleet.inventory import Inventory
from redisguard.daemon.fleet.stacks import read_stack_files, unmanaged_owners
from redisguard.daemon.reports.drift import DriftItem, DriftReport, Engine, InstanceState, StackReport
from redisguard.program.config import StackConfig

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
    """What the live checks of one scan share: stack files, one listing per project, who reports unmanaged."""

    def __init__(self, config: RedisguardConfig, selected: Sequence[str]) -> None:
        self.inventory = Inventory(config.gcp)
        self.stacks: dict[str, StackConfig] = {}
        self.errors: dict[str, str] = {}
        # Stacks whose clusters are not known, by the project they watch (None: any project, as
        # far as anyone can tell). While one exists, no instance of that project may be called
        # unmanaged: it may be one of that stack's clusters.
        self.unreadable: dict[str, str | None] = {}
        # Reading a stack file is part of checking that stack (half a second for 1000 clusters),
        # so each stack's report counts its own file's load time.
        self.load_seconds: dict[str, float] = {}
        for file in read_stack_files(config):
            name, stack = file.name, file.stack
            self.load_seconds[name] = file.load_seconds
            if stack is None:
                # A stack file's problems each on its own line, as check-config shows them.
                self.errors[name] = file.problem or ""
                self.unreadable[name] = file.error.project if file.error is not None else None
                continue
            self.stacks[name] = stack
            if not stack.project:
                # Pulumi would put its clusters in the provider's default project: any project.
                self.errors[name] = str(drift_live.no_project_error(stack))
                self.unreadable[name] = None
        # Unmanaged instances of a project are reported once, by the first selected stack watching it.
        self.owners = unmanaged_owners(
            (n, self.stacks[n]) for n in selected if n in self.stacks and n not in self.errors
        )

    def unmanaged_blockers(self, project: str) -> list[str]:
        """Why the unmanaged instances of `project` cannot be decided: one entry per unreadable stack that may watch it."""
        blockers = []
        for name, watched in self.unreadable.items():
            if watched is None or watched == project:
                scope = "" if watched == project else " (which project it watches is unknown)"
                blockers.append(f"stack {name}{scope}: {self.errors[name]}")
        return blockers

    def check(self, name: str, rules: IgnoreRules) -> tuple[drift_live.StackFindings, str | None]:
        """The stack's findings, and what could not be checked (None when everything was)."""
        if name in self.errors:
            raise ConfigError(self.errors[name])
        stack = self.stacks[name]
        project = stack.project or ""
        owner = self.owners.get(project) == name
        blockers = self.unmanaged_blockers(project) if owner else []
        others = [s for n, s in self.stacks.items() if n != name]
        findings = drift_live.compare_stack(
            stack,
            self.inventory,
            rules,
            watched=others,
            report_unmanaged=owner and not blockers,
        )
        if not blockers:
            return findings, None
        # A false "unmanaged" becomes a false alert (and an `adopt` of someone's cluster): the
        # unmanaged part of this project fails instead, and says which stack file to fix.
        lines = [f"unmanaged instances of project {project} not checked: a stack that may declare them cannot be read"]
        lines += [f"  {line}" for blocker in blockers for line in blocker.splitlines()]
        return findings, "\n".join(lines)


class _DriftCheck(ABC):
    """What both drift checks share: targets are stack names, a result is a StackReport, a failure's
    message never shows a known credential."""

    name: str
    engine: Engine

    def __init__(self, config: RedisguardConfig) -> None:
        self.config = config
        self.rules = IgnoreRules(config.ignore)
        # The pulumi CLI and its plugins may echo a credential in an error; the report never shows it.
        self.secrets = config.secrets()

    @property
    def targets(self) -> tuple[str, ...]:
        return self.config.pulumi.stacks

    @abstractmethod
    def jobs(self, targets: Sequence[str], cancel: CancelToken) -> list[Job[StackReport]]:
        """One job per stack, in the order given."""

    def _job(self, stack: str, run: Callable[[], StackReport], extra_seconds: float = 0.0) -> Job[StackReport]:
        def failed(error: RedisguardError, seconds: float) -> StackReport:
            return StackReport.failed(
                stack, self.engine, scrub(str(error), self.secrets), seconds + extra_seconds, kind=error_kind(error)
            )

        return Job(check=self.name, target=stack, run=run, failed=failed)

    def _kept(self, items: Sequence[DriftItem]) -> list[DriftItem]:
        # Whole-resource rules (`kind:` without `path:`) apply to both engines' findings alike.
        return [item for item in items if not self.rules.resource_ignored(item)]

    def _report(
        self, stack: str, items: Sequence[DriftItem], started: float, not_ready: Sequence[InstanceState] = ()
    ) -> StackReport:
        result = StackReport.from_items(
            stack, self.engine, self._kept(items), time.monotonic() - started, not_ready=not_ready
        )
        log.debug(
            "drift check stack=%s engine=%s status=%s drifted=%d duration=%.2fs",
            result.stack, result.engine, result.status, len(result.items), result.duration_seconds,
        )  # fmt: skip
        return result


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
        live = _LiveContext(self.config, targets)

        def run(stack: str) -> StackReport:
            # Reading a stack file is part of checking that stack, so its load time counts.
            started = time.monotonic() - live.load_seconds.get(stack, 0.0)
            cancel.raise_if_cancelled()
            findings, problem = live.check(stack, self.rules)
            if problem is None:
                return self._report(stack, findings.items, started, findings.not_ready)
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
            )

        return [self._job(stack, functools.partial(run, stack), live.load_seconds.get(stack, 0.0)) for stack in targets]


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
