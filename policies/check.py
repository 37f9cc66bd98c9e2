"""`redisguard policy-check`: the policy pack judges each stack's resources without a cloud or a Pulumi CLI.

Each stack's resources are the ones the redis-fleet program registers, from their plain
description (redisguard.program.resources: no Pulumi program runs, so the command imports neither
the gcp SDK nor the mocks' runtime), or, for any program, from what the stack has deployed (`judge_deployed`:
the resources of its state, which the caller read); the pack is started as Pulumi's Python host
starts it and asked over the Analyzer protocol, config reconciled as the engine does
(redisguard.policies.analyzer). The verdicts are the ones `pulumi preview --policy-pack policies`
gives for a program, and `pulumi policy analyze` for a deployed stack (tests/e2e/test_pulumi_engine.py
and tests/e2e/test_team_state.py run both on the same stacks).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from pydantic import computed_field
from rich.console import Console
from rich.text import Text

from redisguard.core.models import Frozen
from redisguard.core.pulumi import is_secret
from redisguard.core.reports import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, JsonReport
from redisguard.core.text import md_cell
from redisguard.policies.analyzer import AnalyzerFailed, PolicyPackProcess, StackResource, secret, unknown
from redisguard.policies.deployed import DeployedStack, JudgedResource
from redisguard.policies.launch import LaunchedPack, StackPack, launch_pack, launch_stack_packs, launch_state_packs
from redisguard.policies.pack_config import INSTALLED_PACK, PackChoice, PolicyConfigInvalid

# The exit codes of every report command (core.reports), by what they mean here.
EXIT_PASSED = EXIT_OK
EXIT_BLOCKED = EXIT_FINDINGS


class Violation(Frozen):
    """One policy violation, as `pulumi preview` lists it."""

    policy: str
    level: Literal["advisory", "mandatory", "remediate"]
    resource: str
    """The resource's logical name; empty for a stack policy."""
    type: str
    message: str


class StackVerdict(Frozen):
    stack: str
    policy_config: str | None
    """The --policy-pack-config file used, None for the pack's defaults."""
    resources: int
    state: str | None = None
    """None: the program's resources were judged; else the deployed state's, from
    "backend" (the stack's) or an export file."""
    violations: tuple[Violation, ...] = ()
    error: str | None = None
    duration_seconds: float = 0.0

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented use on a property
    @property
    def blocked(self) -> bool:
        """A mandatory violation: `pulumi preview` would refuse the stack."""
        return any(v.level == "mandatory" for v in self.violations)


class PolicyCheckReport(JsonReport):
    """Every stack's verdict, with the head every redisguard report's JSON starts with (JsonReport)."""

    pack: str
    from_checkout: bool = False
    """True: the pack or the stacks' policy configs are the checked checkout's (policies/ beside its
    program or its redisguard.yaml); False: the installed redisguard's."""
    stacks: tuple[StackVerdict, ...]

    @property
    def exit_code(self) -> int:
        if any(s.error for s in self.stacks):
            return EXIT_ERROR
        return EXIT_BLOCKED if any(s.blocked for s in self.stacks) else EXIT_PASSED

    def summary(self) -> dict[str, int]:
        """Counts over the checked stacks and their violations."""
        violations = [v for s in self.stacks for v in s.violations]
        return {
            "stacks": len(self.stacks),
            "passed": sum(not s.error and not s.blocked for s in self.stacks),
            "blocked": sum(not s.error and s.blocked for s in self.stacks),
            "errors": sum(bool(s.error) for s in self.stacks),
            "mandatory_violations": sum(v.level == "mandatory" for v in violations),
            "advisory_violations": sum(v.level == "advisory" for v in violations),
        }


def _judge(
    stack: str, config: Mapping[str, str], policy_config: Path | None, pack: PolicyPackProcess, started: Future[Any]
) -> StackVerdict:
    """Have the started pack judge the resources the program registers for one stack (its config
    `values`, as the engine hands them to the program): their plain description
    (program/resources.py), so the program need not run under the SDK's mocks here."""
    from redisguard.program.config import CONFIG_KEY, StackConfigError, stack_from_config_values
    from redisguard.program.resources import stack_resources

    began = time.monotonic()
    try:
        declared = stack_resources(stack_from_config_values(stack, config))
    except StackConfigError as exc:  # the program's own one-line refusal
        _stop(pack, started)
        return StackVerdict(stack=stack, policy_config=str(policy_config) if policy_config else None, resources=0,
                            error=f"invalid {CONFIG_KEY} config in {exc}", duration_seconds=time.monotonic() - began)  # fmt: skip
    resources = [JudgedResource(r.type, r.name, r.inputs, r.inputs) for r in declared]
    return _judge_resources(stack, policy_config, pack, started, resources, began)


def _stop(pack: PolicyPackProcess, started: Future[Any]) -> None:
    # Never stop a pack that is still starting: wait for the start (it has its own deadline).
    with contextlib.suppress(Exception):
        started.result()
    pack.stop()


def _judge_resources(
    stack: str,
    policy_config: Path | None,
    pack: PolicyPackProcess,
    started: Future[Any],
    resources: Sequence[JudgedResource],
    began: float,
) -> StackVerdict:
    """Have the started pack judge one stack's resources, as the engine asks it: each resource, then the stack."""
    config_name = str(policy_config) if policy_config else None

    def failed(message: str) -> StackVerdict:
        return StackVerdict(stack=stack, policy_config=config_name, resources=len(resources), error=message,
                            duration_seconds=time.monotonic() - began)

    try:
        try:
            started.result()
            pack.configure(policy_config)
        except PolicyConfigInvalid as exc:
            where = policy_config or "the pack's defaults"
            return failed(f"{where}: " + "; ".join(exc.errors))
        except (OSError, RuntimeError, TimeoutError) as exc:
            return failed(f"policy pack {pack.pack_dir} failed to start: {str(exc).splitlines()[0]}")
        try:
            violations = analyze_resources(pack, resources)
            stack_result = pack.analyze_stack(
                [StackResource(r.type, r.name, r.outputs, protect=r.protect) for r in resources]
            )
            violations.extend(
                Violation(policy=d.policy, level=d.level, resource="", type="", message=d.message)
                for d in stack_result.diagnostics
            )
        except AnalyzerFailed as exc:
            return failed(f"policy pack failed while analysing: {exc}")
    finally:
        _stop(pack, started)
    return StackVerdict(
        stack=stack,
        policy_config=config_name,
        resources=len(resources),
        violations=tuple(violations),
        duration_seconds=time.monotonic() - began,
    )


def analyze_resources(pack: PolicyPackProcess, resources: Sequence[JudgedResource], stack: str | None = None) -> list[Violation]:
    """The started, configured pack's violations for each resource, asked as the engine asks
    (`Analyze` with its inputs); `stack`: the stack the resources' URNs name (default the pack's).
    AnalyzerFailed when the pack fails."""
    violations: list[Violation] = []
    results = pack.analyze_many([(r.type, r.name, r.inputs, r.protect) for r in resources], stack=stack)
    for resource, result in zip(resources, results, strict=True):
        violations.extend(
            Violation(policy=d.policy, level=d.level, resource=resource.name, type=resource.type, message=d.message)
            for d in result.diagnostics
        )
    return violations


class PackSession:
    """One pack process that judges many stacks' resources, one after the other (the daemon's
    compliance check: start-up paid once per run, not per stack or instance).

    Started by the first `judge`; each call configures the pack with its policy config (the
    engine's `Configure`, skipped when the config is the one in force) and names the stack in
    each resource's URN, where the pack's rules read it. Thread-safe: calls take turns, as the
    pack serves one judgement at a time. `stop` ends the process.
    """

    def __init__(self, pack_dir: Path, *, project: str = "redisguard", stack: str = "redisguard-compliance") -> None:
        self.pack_dir = pack_dir
        self._process = PolicyPackProcess(stack=stack, project=project, pack_dir=pack_dir, dry_run=False)
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._started = False
        self._configured: tuple[bool, Path | None] = (False, None)
        self.starts = 0
        """How many pack processes this session started (1 after the first judgement)."""
        self.startup_seconds = 0.0
        self.pid: int | None = None

    def judge(self, stack: str, policy_config: Path | None, resources: Sequence[JudgedResource]) -> list[Violation]:
        """The pack's violations for `resources` of `stack` with `policy_config` (None: the pack's
        defaults). PolicyConfigInvalid for a config the engine would refuse, AnalyzerFailed when
        the pack fails, OSError/RuntimeError/TimeoutError when it cannot start."""
        with self._lock:
            if not self._started:
                self._started = True
                self.starts += 1
                self._process.start(launched=self._launch_on_keeper())
                self.startup_seconds = self._process.startup_seconds
                self.pid = self._process.pid
            if self._configured != (True, policy_config):
                self._configured = (False, None)
                self._process.configure(policy_config)
                self._configured = (True, policy_config)
            return analyze_resources(self._process, resources, stack=stack)

    def _launch_on_keeper(self) -> LaunchedPack:
        """Launch the pack from a thread of its own that lives until stop(): the pack dies with the
        thread that started it (its parent-death signal follows the thread, not the process), and
        the check's worker threads end as soon as the queue is empty, while others still judge."""
        launched: queue.SimpleQueue[LaunchedPack | BaseException] = queue.SimpleQueue()

        def keep() -> None:
            try:
                p = self._process
                launched.put(launch_pack(self.pack_dir, stack=p.stack, project=p.project, dry_run=p.dry_run))
            except BaseException as exc:  # noqa: BLE001 - handed to the judging thread, which raises it
                launched.put(exc)
                return
            self._stopped.wait()

        threading.Thread(target=keep, name="policy-pack-keeper", daemon=True).start()
        result = launched.get()
        if isinstance(result, BaseException):
            raise result
        return result

    def stop(self) -> None:
        with self._lock:
            self._process.stop()
            self._stopped.set()


def judge_stacks(
    stacks: Sequence[tuple[str, Path]],
    policy_config: Path | None = None,
    pack: PackChoice = INSTALLED_PACK,
    launched: Mapping[str, StackPack] | None = None,
) -> PolicyCheckReport:
    """Every (stack, stack file) judged by `pack` (default: the installed one); `policy_config`
    None: each stack's config file in the pack choice's policies folder, where it has one.

    The packs start at once, one per stack (seconds of imports each), and each stack's resources
    are described while they start.
    `launched`: the packs launch.launch_stack_packs started already (the command starts them
    before it imports Pulumi and the program, so their start-up overlaps its own).
    """
    if launched is None:
        launched = launch_stack_packs(stacks, pack.pack_dir)
    verdicts: list[StackVerdict] = []
    with ThreadPoolExecutor(max_workers=max(1, min(4, len(stacks)))) as pool:
        runs: list[tuple[str, PolicyPackProcess | None, Future[Any] | None, str | None]] = []
        for stack, _ in stacks:
            stack_pack = launched[stack]
            if stack_pack.stack_file_error is not None:
                runs.append((stack, None, None, stack_pack.stack_file_error))
                continue
            process = PolicyPackProcess(stack=stack, pack_dir=pack.pack_dir, stack_config=stack_pack.stack_config)
            runs.append((stack, process, pool.submit(_connect, process, stack_pack), None))
        for stack, process_or_none, started, error in runs:
            chosen = policy_config or pack.config_file(stack)
            if process_or_none is None or started is None:
                verdicts.append(StackVerdict(stack=stack, policy_config=str(chosen) if chosen else None, resources=0, error=error))
                continue
            verdicts.append(_judge(stack, launched[stack].stack_config, chosen, process_or_none, started))
    return PolicyCheckReport(pack=str(pack.pack_dir), from_checkout=pack.from_checkout, stacks=tuple(verdicts))


def _connect(process: PolicyPackProcess, stack_pack: StackPack) -> PolicyPackProcess:
    if stack_pack.launch_error is not None:
        raise stack_pack.launch_error
    return process.start(launched=stack_pack.launched)


# --- what a stack has deployed, for any program -------------------------------------------------


def _unread_secrets(value: Any) -> Any:
    """`value` with every secret object replaced by a secret whose value is unknown: the state's
    secrets stay encrypted (nothing here decrypts them), so a policy reading one is not applicable."""
    if is_secret(value):
        return secret(unknown())
    if isinstance(value, Mapping):
        return {k: _unread_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unread_secrets(v) for v in value]
    return value


def judge_deployed(
    stacks: Sequence[DeployedStack],
    policy_config: Path | None = None,
    pack: PackChoice = INSTALLED_PACK,
    launched: Mapping[str, StackPack] | None = None,
) -> PolicyCheckReport:
    """Every stack's deployed resources judged by `pack`, without a program or a preview, as `pulumi
    policy analyze` does: `Analyze` with each resource's inputs, `AnalyzeStack` with their outputs.
    `policy_config` None: each stack's config file in the pack choice's policies folder. A stack
    whose state could not be read (its `error`) is that stack's error. `launched`: the packs
    launch.launch_state_packs started already (before the command imported Pulumi)."""
    if launched is None:
        launched = launch_state_packs([(s.stack, s.project) for s in stacks if s.error is None], pack.pack_dir)
    verdicts: list[StackVerdict] = []
    with ThreadPoolExecutor(max_workers=max(1, min(4, len(stacks)))) as pool:
        started = {}
        for deployed in stacks:
            if deployed.stack in launched:
                process = PolicyPackProcess(stack=deployed.stack, project=deployed.project, pack_dir=pack.pack_dir, dry_run=False)
                started[deployed.stack] = (process, pool.submit(_connect, process, launched[deployed.stack]))
        for deployed in stacks:
            chosen = policy_config or pack.config_file(deployed.stack)
            if deployed.error is not None:
                verdicts.append(StackVerdict(stack=deployed.stack, policy_config=str(chosen) if chosen else None,
                                             resources=0, state=deployed.source, error=deployed.error))
                continue
            resources = [
                JudgedResource(r.type, r.name, _unread_secrets(r.inputs), _unread_secrets(r.outputs), r.protect)
                for r in deployed.resources
            ]
            process, future = started[deployed.stack]
            verdict = _judge_resources(deployed.stack, chosen, process, future, resources, time.monotonic())
            verdicts.append(verdict.model_copy(update={"state": deployed.source}))
    return PolicyCheckReport(pack=str(pack.pack_dir), from_checkout=pack.from_checkout, stacks=tuple(verdicts))


# --- output --------------------------------------------------------------------------------------


def _summary(verdict: StackVerdict) -> str:
    if verdict.error:
        return f"stack {verdict.stack}: error: {verdict.error}"
    counts = {level: sum(v.level == level for v in verdict.violations) for level in ("mandatory", "advisory")}
    state = "BLOCKED" if verdict.blocked else "passed"
    config = verdict.policy_config or "pack defaults"
    judged = "" if verdict.state is None else f"deployed state from {verdict.state}; "
    return (
        f"stack {verdict.stack}: {state} ({verdict.resources} resources, {counts['mandatory']} mandatory, "
        f"{counts['advisory']} advisory; {judged}config {config}; {verdict.duration_seconds:.1f}s)"
    )


def print_table(report: PolicyCheckReport, console: Console) -> None:
    """One line per stack, then its violations as `pulumi preview` lists them: level, policy and
    resource on one line, the message indented under it (plain text: read and grepped as written)."""
    for verdict in report.stacks:
        console.print(Text(_summary(verdict), style="bold" if verdict.blocked or verdict.error else ""), soft_wrap=True)
        for v in verdict.violations:
            console.print(Text(f"  [{v.level}] {v.policy}  ({v.resource or 'stack'})"), soft_wrap=True)
            for line in v.message.splitlines():
                console.print(Text(f"      {line}"), soft_wrap=True)


def render_markdown(report: PolicyCheckReport) -> str:
    lines = ["## Policy check", ""]
    for verdict in report.stacks:
        lines.append(f"**{_summary(verdict)}**")
        lines.append("")
        if verdict.violations:
            lines += ["| level | policy | resource | message |", "|---|---|---|---|"]
            for v in verdict.violations:
                lines.append(f"| {v.level} | `{v.policy}` | {v.resource or '(stack)'} | {md_cell(v.message, markdown=True)} |")
            lines.append("")
    return "\n".join(lines)


def render_json(report: PolicyCheckReport) -> str:
    """The report's JSON: the shared head (schema and tool version, time, exit code, summary), then
    the pack and each stack's verdict with `blocked`."""
    return report.to_json()
