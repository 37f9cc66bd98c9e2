"""The daemon's runner and scheduler: per-target publishing, failures as results, config changes, --once exit codes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from redisguard.core.errors import TransientError
from redisguard.core.reports import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK
from redisguard.daemon.checks.protocol import CancelToken, Job
from redisguard.daemon.config import Schedule
from redisguard.daemon.reports.drift import DriftItem, StackReport
from redisguard.daemon.service.results import CheckFailure, Results
from redisguard.daemon.service.scheduler import Runner, Scheduler, exit_code, run_once, trigger_for
from tests.fixtures.processes import wait_for


@dataclass
class StubCheck:
    """A check over named stacks whose jobs do what the test says: the protocol, with no API behind it."""

    name: str
    targets: tuple[str, ...]
    behaviour: dict[str, Callable[[CancelToken], StackReport]]
    setup_error: Exception | None = None
    runs: list[tuple[str, ...]] = field(default_factory=list)

    def jobs(self, targets: Sequence[str], cancel: CancelToken) -> list[Job[StackReport]]:
        self.runs.append(tuple(targets))
        if self.setup_error is not None:
            raise self.setup_error

        def job(target: str) -> Job[StackReport]:
            return Job(
                check=self.name,
                target=target,
                run=lambda: self.behaviour[target](cancel),
                failed=lambda error, seconds: StackReport.failed(target, "live", str(error), seconds),
            )

        return [job(t) for t in targets]


def in_sync(stack: str) -> Callable[[CancelToken], StackReport]:
    return lambda _cancel: StackReport.from_items(stack, "live", [], 0.01)


def drifted(stack: str) -> Callable[[CancelToken], StackReport]:
    return lambda _cancel: StackReport.from_items(stack, "live", [DriftItem(resource="redis-a", kind="missing")], 0.01)


def runner(results: Results, parallelism: int = 4) -> Runner:
    return Runner(results, lambda: ("hunter2-secret",), lambda: parallelism)


def test_a_hung_target_never_holds_back_the_others_results() -> None:
    release = threading.Event()

    def hung(cancel: CancelToken) -> StackReport:
        release.wait(30)
        return StackReport.from_items("slow", "live", [], 30)

    check = StubCheck("drift_live", ("slow", "fast"), {"slow": hung, "fast": drifted("fast")})
    results = Results()
    run = runner(results)
    run.expect(check.name, check.targets)
    thread = threading.Thread(target=run.run, args=(check,), daemon=True)
    thread.start()
    try:
        state = wait_for(lambda: results.snapshot().get(("drift_live", "fast")), timeout=10, what="the fast stack's result")
        assert state.result.status == "drift"
        assert ("drift_live", "slow") not in results.snapshot()
    finally:
        release.set()
        thread.join(10)
    assert results.snapshot()[("drift_live", "slow")].ok


def test_a_check_whose_setup_raises_fails_each_target_with_the_reason_scrubbed() -> None:
    check = StubCheck("drift_live", ("a", "b"), {}, setup_error=RuntimeError("token hunter2-secret rejected"))
    results = Results()
    run = runner(results)
    run.expect(check.name, check.targets)
    out = run.run(check)
    assert [type(r) for r in out] == [CheckFailure, CheckFailure]
    state = results.snapshot()[("drift_live", "a")]
    assert not state.ok and state.failures_total == 1
    assert state.error == "the check failed: RuntimeError: token [redacted] rejected"
    assert state.result.error_kind == "permanent"
    # The next run that works clears it, keeping the count.
    check.setup_error = None
    check.behaviour = {"a": in_sync("a"), "b": in_sync("b")}
    run.run(check)
    state = results.snapshot()[("drift_live", "a")]
    assert state.ok and state.failures_total == 1 and state.last_success_at is not None


def test_the_drift_log_line_says_how_many_resources_drifted_and_names_the_first_few(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from redisguard.daemon.service.logs import TextFormatter

    items = [DriftItem(resource=f"redis-{n}", kind="changed") for n in range(5)] + [
        DriftItem(resource="redis-x", kind="unmanaged")
    ]
    check = StubCheck("drift_live", ("staging", "prod"), {
        "staging": lambda _cancel: StackReport.from_items("staging", "live", items, 0.01), "prod": in_sync("prod"),
    })  # fmt: skip
    run = runner(Results())
    run.expect(check.name, check.targets)
    with caplog.at_level("INFO", logger="redisguard.daemon.service.scheduler"):
        run.run(check)

    lines = {r.redisguard_fields["target"]: TextFormatter(lambda: ()).format(r) for r in caplog.records}  # type: ignore[attr-defined]
    assert lines["staging"].endswith(
        'check finished check=drift_live target=staging status=drift duration=0.010 drifted=6 '
        'resources="redis-0 (changed), redis-1 (changed), redis-2 (changed) and 3 more"'
    ), lines["staging"]
    assert lines["prod"].endswith("status=in_sync duration=0.010")  # nothing to name


def test_a_transient_setup_failure_stays_transient_in_the_report() -> None:
    from redisguard.daemon.service.metrics import Exposition
    from redisguard.daemon.service.site import Site

    check = StubCheck("drift_live", ("a",), {}, setup_error=TransientError("ListInstances: 503 try later"))
    results = Results()
    run = runner(results)
    run.expect(check.name, check.targets)
    run.run(check)
    # What /report and the status page show for the target: the daemon's drift report.
    (stack,) = Site(results, Exposition(results, dict), lambda: ([], 0.0)).drift().stacks
    assert stack.status == "error" and stack.error_kind == "transient"
    assert stack.error == "the check failed: TransientError: ListInstances: 503 try later"


def test_a_target_dropped_from_the_config_is_not_brought_back_by_a_run_in_flight() -> None:
    release = threading.Event()

    def late(cancel: CancelToken) -> StackReport:
        release.wait(30)
        return StackReport.from_items("old", "live", [], 1)

    check = StubCheck("drift_live", ("old",), {"old": late})
    results = Results()
    run = runner(results)
    run.expect(check.name, check.targets)
    thread = threading.Thread(target=run.run, args=(check,), daemon=True)
    thread.start()
    run.expect("drift_live", ("new",))  # SIGHUP with a config that no longer lists "old"
    release.set()
    thread.join(10)
    assert ("drift_live", "old") not in results.snapshot()


@pytest.mark.parametrize(
    ("behaviour", "code"),
    [
        ({"a": in_sync("a"), "b": in_sync("b")}, EXIT_OK),
        ({"a": in_sync("a"), "b": drifted("b")}, EXIT_FINDINGS),
        ({"a": drifted("a"), "b": lambda _c: (_ for _ in ()).throw(ValueError("boom"))}, EXIT_ERROR),
    ],
    ids=["in-sync", "drift", "error-wins"],
)
def test_once_exit_codes(behaviour: dict[str, Callable[[CancelToken], StackReport]], code: int) -> None:
    check = StubCheck("drift_live", ("a", "b"), behaviour)
    results = Results()
    assert run_once(runner(results), {"drift_live": check}) == code
    assert {key[1] for key in results.snapshot()} == {"a", "b"}


def test_exit_code_counts_memory_thresholds_as_findings() -> None:
    @dataclass
    class Memory:
        status: str

    assert exit_code([Memory("ok"), Memory("threshold")]) == EXIT_FINDINGS
    assert exit_code([Memory("threshold"), Memory("error")]) == EXIT_ERROR


def test_the_scheduler_runs_each_check_right_after_start_and_removes_a_check_turned_off() -> None:
    results = Results()
    run = runner(results)
    live = StubCheck("drift_live", ("a",), {"a": in_sync("a")})
    pulumi = StubCheck("drift_pulumi", ("a",), {"a": in_sync("a")})
    scheduler = Scheduler(run)
    hourly = Schedule.model_validate("1h")
    scheduler.apply({"drift_live": live, "drift_pulumi": pulumi}, {"drift_live": hourly, "drift_pulumi": hourly})
    scheduler.start()
    try:
        wait_for(lambda: len(results.snapshot()) == 2, timeout=10, what="both checks' first run")
        assert live.runs == [("a",)] and pulumi.runs == [("a",)]
        scheduler.apply({"drift_live": live}, {"drift_live": hourly}, run_now=False)
        assert set(results.snapshot()) == {("drift_live", "a")}
    finally:
        scheduler.shutdown(wait_seconds=5)


def test_triggers_jitter_a_tenth_of_the_period_at_most_30_seconds() -> None:
    assert trigger_for(Schedule.model_validate("1m")).jitter == 6
    assert trigger_for(Schedule.model_validate("1h")).jitter == 30
    assert trigger_for(Schedule.model_validate("*/10 * * * *")).jitter == 30
