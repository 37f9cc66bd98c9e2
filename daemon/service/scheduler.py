"""Runs the checks: on their schedules with APScheduler (daemon), or each once (`--once`), publishing every target's result as soon as it is known."""

from __future__ import annotations

import functools
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobExecutionEvent
from apscheduler.executors.base import BaseExecutor, run_job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from redisguard.core.errors import ErrorKind, error_kind
from redisguard.core.reports import exit_code_of
from redisguard.core.secrets import scrub
from redisguard.core.threads import run_on_daemon_threads, start_daemon_thread
from redisguard.daemon.checks.protocol import CancelToken, Check, Job, run_jobs
from redisguard.daemon.config import Schedule, cron_trigger
from redisguard.daemon.service.logs import event
from redisguard.daemon.service.results import CheckFailure, Results

log = logging.getLogger(__name__)

# Runs of one check start up to this share of its period late (at most MAX_JITTER_SECONDS), so
# several daemons, or checks with equal periods, do not hit the APIs in the same second.
JITTER_SHARE = 0.1
MAX_JITTER_SECONDS = 30.0


def trigger_for(schedule: Schedule) -> Any:
    """The APScheduler trigger of an enabled schedule, with its jitter."""
    period = schedule.period_seconds() or 60.0
    jitter = min(period * JITTER_SHARE, MAX_JITTER_SECONDS)
    if schedule.interval is not None:
        return IntervalTrigger(seconds=schedule.interval.total_seconds(), jitter=jitter, timezone=UTC)
    assert schedule.cron is not None
    trigger = cron_trigger(schedule.cron)
    trigger.jitter = jitter
    return trigger


class Runner:
    """Runs one check once: every target's result published and logged the moment its job ends;
    a check whose set-up raises still yields one failed result per target."""

    def __init__(self, results: Results, secrets: Callable[[], Sequence[str]], parallelism: Callable[[], int]) -> None:
        self.results = results
        self.secrets = secrets
        self.parallelism = parallelism
        self._targets: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._running: dict[str, CancelToken] = {}

    def expect(self, check: str, targets: Iterable[str] | None) -> None:
        """The targets `check` has now (None: the check is off). Results of other targets are
        dropped, and a run that started under an older config cannot bring them back."""
        with self._lock:
            if targets is None:
                self._targets.pop(check, None)
            else:
                self._targets[check] = frozenset(targets)
        self.results.retain(check, targets)

    def cancel_all(self) -> None:
        with self._lock:
            tokens = list(self._running.values())
        for token in tokens:
            token.cancel()

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every run to end (a cancelled refresh finishing its
        kill); False when some run is still going (a call hung in the network, holding no child)."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._running, timeout=timeout)

    def _publish(self, check: str, target: str, result: Any, token: CancelToken) -> None:
        with self._lock:
            current = self._targets.get(check)
        if current is None or target not in current or token.cancelled:
            return  # the config changed (or the daemon is stopping) while this ran
        state = self.results.publish(check, target, result)
        fields: dict[str, Any] = {
            "check": check,
            "target": target,
            "status": result.status,
            "duration": float(result.duration_seconds),
            **result.log_fields(),
        }
        if not state.ok:
            fields["error"] = scrub(state.error or "", self.secrets())
            fields["failures"] = state.failures_total
        event(log, logging.INFO if state.ok else logging.WARNING, "check finished", **fields)

    def run(self, check: Check[Any]) -> list[Any]:
        """One run of `check` over all its targets, `parallelism` targets at a time; the results."""
        token = CancelToken()
        with self._lock:
            self._running[check.name] = token
        started = time.monotonic()
        targets = tuple(check.targets)
        published: dict[str, Any] = {}

        def publish(pair: tuple[str, Any]) -> None:
            published[pair[0]] = pair[1]
            self._publish(check.name, pair[0], pair[1], token)

        reason = "the check ended without a result for this target"
        kind: ErrorKind = "permanent"
        try:
            jobs = [_tagged(job) for job in check.jobs(targets, token)]
            run_jobs(jobs, token, parallelism=self.parallelism(), publish=publish)
        except Exception as exc:  # noqa: BLE001 - a broken check is a failed run of its targets, never a dead scheduler
            log.error("check %s failed to run", check.name, exc_info=True)
            reason = f"the check failed: {type(exc).__name__}: {scrub(str(exc), self.secrets())}"
            kind = error_kind(exc)  # a set-up that hit a 503 may pass on the next run
        finally:
            with self._lock:
                if self._running.get(check.name) is token:
                    del self._running[check.name]
                self._idle.notify_all()
        if not token.cancelled:
            for target in targets:
                if target not in published:
                    publish((target, CheckFailure(reason, round(time.monotonic() - started, 3), kind)))
        return [published[t] for t in targets if t in published]


def _tagged(job: Job[Any]) -> Job[tuple[str, Any]]:
    """The job with its target next to its result (the protocol publishes results alone)."""
    return Job(
        check=job.check,
        target=job.target,
        run=lambda: (job.target, job.run()),
        failed=lambda error, seconds: (job.target, job.failed(error, seconds)),
    )


class _DaemonThreadExecutor(BaseExecutor):
    """Each run on its own daemon thread: at shutdown nothing waits for a check hung in an API
    call (a pool's worker threads are joined when the interpreter exits)."""

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        def target() -> None:
            try:
                events = run_job(job, job._jobstore_alias, run_times, self._logger.name)
            except BaseException:
                self._run_job_error(job.id, *sys.exc_info()[1:])
            else:
                self._run_job_success(job.id, events)

        start_daemon_thread(target, name=f"check-{job.id}")


class Scheduler:
    """The checks on their schedules: jitter, one run at a time per check (max_instances=1), missed
    runs coalesced into one, a misfire grace of one period, and a first run right after start."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self._scheduler = BackgroundScheduler(executors={"default": _DaemonThreadExecutor()}, timezone=UTC)
        self._scheduler.add_listener(self._skipped, EVENT_JOB_MAX_INSTANCES)

    def _skipped(self, ev: JobExecutionEvent) -> None:
        event(log, logging.WARNING, "check still running, this run skipped", check=ev.job_id)

    def apply(self, checks: Mapping[str, Check[Any]], schedules: Mapping[str, Schedule], *, run_now: bool = True) -> None:
        """Schedule exactly `checks` (replacing what was scheduled before) and, with `run_now`, run each at once."""
        for job in self._scheduler.get_jobs():
            if job.id not in checks:
                job.remove()
                self.runner.expect(job.id, None)
        for name, check in checks.items():
            schedule = schedules[name]
            period = schedule.period_seconds() or 60.0
            self.runner.expect(name, check.targets)
            # Without run_now the trigger decides the first run (None would add the job paused).
            first = {"next_run_time": datetime.now(UTC)} if run_now else {}
            self._scheduler.add_job(
                self.runner.run,
                trigger=trigger_for(schedule),
                args=(check,),
                id=name,
                name=name,
                replace_existing=True,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(period)),
                **first,
            )

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self, wait_seconds: float) -> None:
        """Start no new run, cancel the running ones and wait up to `wait_seconds` for them to end:
        a cancelled pulumi refresh kills its CLI's process group (SIGTERM, SIGKILL after a grace)."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self.runner.cancel_all()
        if not self.runner.wait_idle(wait_seconds):
            log.warning("a check did not end within %ss of the cancel; leaving it behind", wait_seconds)


def run_once(runner: Runner, checks: Mapping[str, Check[Any]]) -> int:
    """`--once`: every check once, all at the same time, through the same Runner; 0 fine, 2 findings, 1 a failure."""
    for name, check in checks.items():
        runner.expect(name, check.targets)
    collected = run_on_daemon_threads(
        [functools.partial(runner.run, check) for check in checks.values()], names=[f"check-{name}" for name in checks]
    )
    return exit_code(result for results in collected for result in results)


def exit_code(results: Iterable[Any]) -> int:
    """The report commands' exit code over every check's results (report.exit_code_of)."""
    return exit_code_of(result.status for result in results)
