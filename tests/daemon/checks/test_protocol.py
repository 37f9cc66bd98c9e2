"""The check protocol: results per target as soon as known, failures as results, cancellation per run."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from redisguard.core.errors import RedisguardError, TransientError
from redisguard.daemon.checks.protocol import CancelToken, Job, run_check, run_jobs


@dataclass(frozen=True)
class Outcome:
    target: str
    ok: bool
    error: str | None = None


class GatedCheck:
    """Targets finish when their gate opens; `boom` raises an unexpected error, `flaky` a TransientError."""

    name = "toy"
    targets = ("a", "b", "boom", "flaky")

    def __init__(self) -> None:
        self.gates = {t: threading.Event() for t in self.targets}
        self.started: list[str] = []

    def jobs(self, targets: Sequence[str], cancel: CancelToken) -> list[Job[Outcome]]:
        def run(target: str) -> Outcome:
            self.started.append(target)
            while not self.gates[target].wait(0.01):
                cancel.raise_if_cancelled()
            if target == "boom":
                raise KeyError("no such thing")
            if target == "flaky":
                raise TransientError("flaky: 503")
            return Outcome(target, True)

        def failed(target: str, error: RedisguardError, seconds: float) -> Outcome:
            return Outcome(target, False, f"{type(error).__name__}: {error}")

        return [Job(self.name, t, functools.partial(run, t), functools.partial(failed, t)) for t in targets]


def test_each_result_is_published_as_soon_as_it_is_known() -> None:
    check = GatedCheck()
    published: list[Outcome] = []
    first = threading.Event()

    def publish(outcome: Outcome) -> None:
        published.append(outcome)
        first.set()

    runner = threading.Thread(target=run_check, args=(check, CancelToken()), kwargs={"parallelism": 4, "publish": publish})
    runner.start()
    check.gates["b"].set()
    assert first.wait(10)
    assert published == [Outcome("b", True)]  # before a, boom and flaky have finished
    for gate in check.gates.values():
        gate.set()
    runner.join(10)
    assert {o.target for o in published} == {"a", "b", "boom", "flaky"}


def test_an_unexpected_exception_is_logged_once_with_its_traceback_and_is_that_targets_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    check = GatedCheck()
    for gate in check.gates.values():
        gate.set()
    with caplog.at_level(logging.DEBUG):
        results = run_check(check, CancelToken(), parallelism=2)
    assert results == [
        Outcome("a", True),
        Outcome("b", True),
        Outcome("boom", False, "PermanentError: unexpected KeyError: 'no such thing'"),
        Outcome("flaky", False, "TransientError: flaky: 503"),
    ]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None and "target=boom" in errors[0].getMessage()
    assert "KeyError" in caplog.text and "Traceback" in caplog.text


def test_a_cancelled_run_starts_nothing_more_and_the_next_run_is_normal() -> None:
    check = GatedCheck()
    cancel = CancelToken()
    results: list[list[Outcome]] = []
    runner = threading.Thread(target=lambda: results.append(run_check(check, cancel, targets=["a", "b"], parallelism=1)))
    runner.start()
    wait = threading.Event()
    while check.started != ["a"]:
        wait.wait(0.01)
    cancel.cancel()  # from this thread, not the runner's
    runner.join(10)
    assert not runner.is_alive()
    assert results == [[]]  # no verdict for a cancelled target, and b never started
    assert check.started == ["a"]

    for gate in check.gates.values():
        gate.set()
    assert run_check(check, CancelToken(), targets=["a", "b"]) == [Outcome("a", True), Outcome("b", True)]


def test_a_cancel_callback_runs_once_and_at_once_when_registered_late() -> None:
    cancel = CancelToken()
    calls: list[str] = []
    with cancel.on_cancel(lambda: calls.append("early")):
        cancel.cancel()
        cancel.cancel()
    with cancel.on_cancel(lambda: calls.append("late")):
        pass
    assert calls == ["early", "late"]
    with pytest.raises(RedisguardError, match="cancelled"):
        cancel.raise_if_cancelled()


def test_inline_jobs_run_on_the_calling_thread_the_others_on_workers_results_in_job_order() -> None:
    ran: dict[str, str] = {}

    def run(target: str) -> Outcome:
        ran[target] = threading.current_thread().name
        if target == "bad":
            raise TransientError("503")
        return Outcome(target, True)

    def failed(target: str, error: RedisguardError, seconds: float) -> Outcome:
        return Outcome(target, False, str(error))

    jobs = [
        Job("toy", t, functools.partial(run, t), functools.partial(failed, t), inline=inline)
        for t, inline in (("a", True), ("slow", False), ("bad", True), ("b", False))
    ]
    published: list[str] = []

    results = run_jobs(jobs, CancelToken(), parallelism=4, publish=lambda o: published.append(o.target))

    assert results == [Outcome("a", True), Outcome("slow", True), Outcome("bad", False, "503"), Outcome("b", True)]
    here = threading.current_thread().name
    assert (ran["a"], ran["bad"]) == (here, here) and here not in (ran["slow"], ran["b"])
    assert sorted(published) == ["a", "b", "bad", "slow"]


def test_with_only_inline_jobs_no_thread_is_started() -> None:
    before = threading.active_count()
    counts: list[int] = []

    def run() -> int:
        counts.append(threading.active_count())
        return 1

    jobs = [Job("toy", t, run, lambda error, seconds: 0, inline=True) for t in ("a", "b")]

    assert run_jobs(jobs, CancelToken(), parallelism=4) == [1, 1] and counts == [before, before]
