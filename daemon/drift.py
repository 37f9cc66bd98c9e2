"""One drift scan: every (stack, engine) check of the config run in parallel into one DriftReport."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redisguard.daemon import drift_live, drift_pulumi
from redisguard.daemon.config import RedisguardConfig, scrub, secret_values
from redisguard.daemon.errors import ConfigError, PermanentError, RedisguardError
from redisguard.daemon.ignore import IgnoreRules
from redisguard.daemon.report import DriftItem, DriftReport, Engine, StackReport
from redisguard.program.config import StackConfig, StackConfigError, load_stack_file

log = logging.getLogger(__name__)

ENGINES: tuple[Engine, ...] = ("pulumi", "live")


@dataclass(frozen=True)
class Job:
    stack: str
    engine: Engine


def engines_for(choice: str) -> tuple[Engine, ...]:
    """`--engine pulumi|live|all` as the engines to run."""
    if choice == "all":
        return ENGINES
    if choice not in ENGINES:
        raise ConfigError(f"--engine {choice!r}: allowed values: pulumi, live, all")
    return (choice,)  # type: ignore[return-value]


class _LiveContext:
    """What the live checks of one scan share: stack files, one listing per project, who reports unmanaged."""

    def __init__(self, config: RedisguardConfig, selected: Sequence[str]) -> None:
        self.inventory = drift_live.Inventory(config.gcp)
        self.stacks: dict[str, StackConfig] = {}
        self.errors: dict[str, str] = {}
        # Stacks whose clusters are not known, by the project they watch (None: any project, as
        # far as anyone can tell). While one exists, no instance of that project may be called
        # unmanaged: it may be one of that stack's clusters.
        self.unreadable: dict[str, str | None] = {}
        # Reading a stack file is part of checking that stack (half a second for 1000 clusters),
        # so each stack's report counts its own file's load time.
        self.load_seconds: dict[str, float] = {}
        for name in config.pulumi.stacks:
            path = config.pulumi.stack_file(name)
            started = time.monotonic()
            if not path.is_file():
                self.errors[name] = f"{path}: stack file not found"
                self.unreadable[name] = None
                continue
            try:
                self.stacks[name] = load_stack_file(path)
            except StackConfigError as exc:
                self.errors[name] = str(exc)  # every problem on its own line, as check-config shows them
                self.unreadable[name] = exc.project
            finally:
                self.load_seconds[name] = time.monotonic() - started
            stack = self.stacks.get(name)
            if stack is not None and not stack.project:
                # Pulumi would put its clusters in the provider's default project: any project.
                self.errors[name] = str(drift_live.no_project_error(stack))
                self.unreadable[name] = None
        # Unmanaged instances of a project are reported once, by the first selected stack watching it.
        self.owners = drift_live.unmanaged_owners(
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

    def check(self, name: str, rules: IgnoreRules) -> tuple[list[DriftItem], str | None]:
        """The stack's drift items, and what could not be checked (None when everything was)."""
        if name in self.errors:
            raise ConfigError(self.errors[name])
        stack = self.stacks[name]
        project = stack.project or ""
        owner = self.owners.get(project) == name
        blockers = self.unmanaged_blockers(project) if owner else []
        others = [s for n, s in self.stacks.items() if n != name]
        items = drift_live.check_stack(
            stack,
            self.inventory,
            rules,
            watched=others,
            report_unmanaged=owner and not blockers,
        )
        if not blockers:
            return items, None
        # A false "unmanaged" becomes a false alert (and an `adopt` of someone's cluster): the
        # unmanaged part of this project fails instead, and says which stack file to fix.
        lines = [f"unmanaged instances of project {project} not checked: a stack that may declare them cannot be read"]
        lines += [f"  {line}" for blocker in blockers for line in blocker.splitlines()]
        return items, "\n".join(lines)


def run_scan(
    config: RedisguardConfig,
    stacks: Sequence[str],
    engines: Sequence[Engine],
    *,
    on_done: Callable[[StackReport], None] | None = None,
) -> DriftReport:
    """Run every (stack, engine) check, at most `config.parallelism` at once; a failing check
    becomes a stack with status `error`, never an exception."""
    rules = IgnoreRules.from_config(config.ignore)
    # The pulumi CLI and its plugins may echo a credential in an error; the report never shows it.
    secrets = secret_values(config)
    jobs = [Job(stack, engine) for stack in stacks for engine in engines]
    live = _LiveContext(config, stacks) if "live" in engines else None

    def run_job(job: Job) -> StackReport:
        started = time.monotonic()
        if live is not None and job.engine == "live":
            started -= live.load_seconds.get(job.stack, 0.0)
        try:
            if job.engine == "pulumi":
                items = drift_pulumi.check_stack(job.stack, config.pulumi, rules)
                problem = None
            else:
                assert live is not None
                items, problem = live.check(job.stack, rules)
            if problem is None:
                result = StackReport.from_items(job.stack, job.engine, items, time.monotonic() - started)
            else:
                result = StackReport.failed(
                    job.stack, job.engine, scrub(problem, secrets), time.monotonic() - started, items=items
                )
        except RedisguardError as exc:
            result = StackReport.failed(job.stack, job.engine, scrub(str(exc), secrets), time.monotonic() - started)
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others' results
            log.debug("drift check failed stack=%s engine=%s", job.stack, job.engine, exc_info=True)
            error = PermanentError(f"unexpected {type(exc).__name__}: {exc}")
            result = StackReport.failed(job.stack, job.engine, scrub(str(error), secrets), time.monotonic() - started)
        log.debug(
            "drift check stack=%s engine=%s status=%s drifted=%d duration=%.2fs",
            result.stack,
            result.engine,
            result.status,
            len(result.items),
            result.duration_seconds,
        )
        if on_done is not None:
            on_done(result)
        return result

    if not jobs:
        return DriftReport()
    results = _run_bounded(run_job, jobs, config.parallelism)
    return DriftReport(stacks=tuple(results))


def _run_bounded(run_job: Callable[[Job], StackReport], jobs: Sequence[Job], parallelism: int) -> list[StackReport]:
    """Run the jobs on at most `parallelism` daemon threads, results in job order.

    Daemon threads rather than a ThreadPoolExecutor: on Ctrl-C or SIGTERM the executor (and the
    interpreter's exit, which joins its workers) would wait for every running check, and a live
    listing can hang for gcp.request_timeout_seconds. Nothing a check holds needs a clean-up
    except the pulumi CLIs, which stop_running() kills before the exception goes on.
    """
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(jobs)):
        pending.put(index)
    results: list[StackReport | None] = [None] * len(jobs)
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            try:
                index = pending.get_nowait()
            except queue.Empty:
                return
            results[index] = run_job(jobs[index])

    threads = [
        threading.Thread(target=worker, name=f"drift-{n}", daemon=True) for n in range(min(parallelism, len(jobs)))
    ]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()  # interruptible: a signal handler runs and may raise here
    except BaseException:
        stop.set()  # start no queued check
        drift_pulumi.stop_running()
        raise
    return [r for r in results if r is not None]
