"""The compliance check: per project, every live instance turned into the provider's inputs and judged by the policy pack over the Analyzer protocol, with the policy config of the stack that holds it.

What `pulumi preview --policy-pack` judges before a change, judged again on what runs: an instance
whose persistence was turned off in the console breaks a mandatory policy in production now, which
drift alone does not say. The inputs are fleet/inverse.py's live_policy_inputs (the mapping codify
uses, the property reader inverted); the pack is policies/check.py's PackSession: one process per
run serves every project's judgements, so its start-up (seconds) is paid once per run.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from redisguard.core.errors import PermanentError, RedisguardError, error_kind
from redisguard.core.pulumi import INSTANCE_TYPE
from redisguard.core.secrets import scrub
from redisguard.daemon.checks.audit import AuditReader
from redisguard.daemon.checks.names import COMPLIANCE
from redisguard.daemon.checks.protocol import CancelToken, Job, run_check
from redisguard.daemon.config import RedisguardConfig
from redisguard.daemon.fleet.declared import Declared, RunOwners, WatchedProjects, owner_and_ownership
from redisguard.daemon.fleet.inventory import list_project_instances, make_client, split_instance_name
from redisguard.daemon.fleet.inverse import live_policy_inputs
from redisguard.daemon.reports.compliance import (
    ComplianceFinding,
    ComplianceReport,
    InstanceCompliance,
    PackRun,
    ProjectComplianceReport,
    status_of,
)
from redisguard.daemon.sharding import WHOLE, Shard
from redisguard.policies.analyzer import AnalyzerFailed, unknown
from redisguard.policies.check import PackSession, Violation
from redisguard.policies.deployed import JudgedResource
from redisguard.policies.pack_config import (
    PackChoice,
    PolicyConfigInvalid,
    StackPolicyConfig,
    choose_pack,
    stack_policy_config,
)
from redisguard.policies.rules import production_in

if TYPE_CHECKING:
    from google.cloud import redis_v1

log = logging.getLogger(__name__)

# The stack an unmanaged instance is judged in (its URN's): none of the user's, so no stack glob
# makes it production; its labels still can (`env: production`).
_UNMANAGED = "unmanaged"


class _RunPack:
    """This run's pack: started by the first project that has an instance to judge, stopped when the
    last project's job ends (or at once when the run is cancelled)."""

    def __init__(self, choice: PackChoice, jobs: int, cancel: CancelToken) -> None:
        self.choice = choice
        self.session = PackSession(choice.pack_dir)
        self._left = jobs
        self._lock = threading.Lock()
        self._cancel = cancel

    def done(self) -> None:
        with self._lock:
            self._left -= 1
            last = self._left <= 0
        if last or self._cancel.cancelled:
            self.session.stop()
            if self.session.starts:
                log.info("compliance: policy pack stopped pid=%s startup=%.2fs", self.session.pid, self.session.startup_seconds)


class ComplianceCheck:
    """The `compliance` check: targets are project ids, a job gives that project's report.

    Instances a watched stack holds are judged with that stack's policy config (the pack choice's
    `config/<stack>.json`, as `policy-check` and `pulumi preview` use it); unmanaged instances with
    the pack's defaults (no config file: `unmanaged` is not a stack); an instance whose owner is
    unknown (a stack that may hold it cannot be read) is listed as not judged, never judged with a
    config that may not be its own.
    """

    name = COMPLIANCE

    def __init__(
        self,
        config: RedisguardConfig,
        *,
        selected_stacks: Sequence[str] | None = None,
        pack: PackChoice | None = None,
        shard: Shard = WHOLE,
    ) -> None:
        self.config = config
        self.shard = shard
        self.selected = tuple(selected_stacks) if selected_stacks else config.pulumi.stacks
        # The checkout's policies/ beside the program (or the redisguard.yaml), else the installed pack.
        self.pack = pack or choose_pack(config.pulumi.work_dir, config.pulumi.work_dir.parent)
        self._secrets = config.secrets()
        self._projects = WatchedProjects(config, self.selected)
        self.last_pack: PackSession | None = None
        """The pack session of the latest run (its `starts`, `startup_seconds`)."""

    @property
    def targets(self) -> tuple[str, ...]:
        """The watched projects (fleet/declared.py's WatchedProjects), read at every run, those this
        daemon's shard owns."""
        return tuple(project for project in self._projects.read() if self.shard.owns(project))

    def jobs(self, targets: Sequence[str], cancel: CancelToken) -> list[Job[ProjectComplianceReport]]:
        """One job per project; the run's owners and its one pack process are shared."""
        owners = RunOwners(self.config)
        pack = _RunPack(self.pack, len(targets), cancel)
        self.last_pack = pack.session
        # Who changed a violating instance: one audit-log read per project per run, as for drift.
        audit = AuditReader(self.config)
        return [
            Job(
                check=self.name,
                target=project,
                run=functools.partial(self._report, project, owners, pack, audit, cancel),
                failed=functools.partial(self._failed, project),
            )
            for project in targets
        ]

    def _failed(self, project: str, error: RedisguardError, duration: float) -> ProjectComplianceReport:
        return ProjectComplianceReport.failed(project, scrub(str(error), self._secrets), duration, kind=error_kind(error))

    def _report(
        self, project: str, owners: RunOwners, pack: _RunPack, audit: AuditReader, cancel: CancelToken
    ) -> ProjectComplianceReport:
        started = time.monotonic()
        try:
            listed = list_project_instances(make_client(self.config.gcp), project, self.config.gcp)
            cancel.raise_if_cancelled()
            instances = self._judge(listed, owners.read(), pack.session)
        finally:
            pack.done()
        if self.config.audit.enabled:
            # A log that cannot be read says why in the cause; the finding itself stands.
            instances = tuple(
                i.model_copy(update={"cause": audit.cause(f"projects/{i.project_id}/locations/{i.region}/instances/{i.instance_id}")})
                if i.findings else i
                for i in instances
            )
        report = ProjectComplianceReport(
            project_id=project,
            status=status_of(instances),
            duration_seconds=round(time.monotonic() - started, 3),
            instances=instances,
        )
        log.debug("compliance check project=%s status=%s instances=%d duration=%.3fs",
                  project, report.status, len(instances), report.duration_seconds)  # fmt: skip
        return report

    def _judge(self, listed: Sequence[redis_v1.Instance], stacks: Mapping[str, Declared], session: PackSession) -> tuple[InstanceCompliance, ...]:
        """Each instance with its findings, judged in groups that share a stack and its policy config."""
        groups: dict[str, list[tuple[InstanceCompliance, JudgedResource]]] = {}
        shown: list[InstanceCompliance] = []
        for instance in listed:
            key = split_instance_name(instance.name)
            owner = owner_and_ownership(stacks, key)
            base = InstanceCompliance(project_id=key.project, region=key.region, instance_id=key.instance_id,
                                      stack=owner.stack, ownership=owner.ownership,
                                      unreadable_stacks=owner.unreadable)  # fmt: skip
            if not self._shown(base):
                continue
            if owner.ownership == "unknown":
                shown.append(base.model_copy(update={"judged": False}))
                continue
            # The engine's unknown for an input the API does not hold: the policy reading it is not applicable.
            inputs = live_policy_inputs(instance, deletion_protection=unknown("bool"))
            resource = JudgedResource(INSTANCE_TYPE, key.instance_id, inputs, inputs)
            groups.setdefault(owner.stack, []).append((base, resource))
        for stack, members in groups.items():
            config_file = self.pack.config_file(stack) if stack else None
            violations = self._ask(session, stack, config_file, [r for _, r in members])
            policy_config = stack_policy_config(stack or _UNMANAGED, config_file) if config_file else StackPolicyConfig(None)
            for base, resource in members:
                findings = tuple(
                    ComplianceFinding(policy=v.policy, level=v.level, message=v.message)
                    for v in violations.get(resource.name, ())
                )
                production = production_in(stack or _UNMANAGED, resource.inputs.get("labels") or {}, policy_config)
                shown.append(base.model_copy(update={"policy_config": str(config_file) if config_file else None,
                                                     "production": production, "findings": findings}))  # fmt: skip
        return tuple(sorted(shown, key=lambda i: (i.region, i.instance_id)))

    def _ask(self, session: PackSession, stack: str, config_file: Path | None,
             resources: Sequence[JudgedResource]) -> dict[str, list[Violation]]:  # fmt: skip
        """The pack's violations by resource name; a pack that cannot start or judge, or a policy
        config it refuses, is this project's error (named), never an instance found compliant."""
        # An unmanaged instance's URN names no stack of the user's: "" would read as the pack's own.
        urn_stack = stack or _UNMANAGED
        try:
            violations = session.judge(urn_stack, config_file, resources)
        except PolicyConfigInvalid as exc:
            raise PermanentError(f"{config_file or 'the pack defaults'}: " + "; ".join(exc.errors)) from None
        except AnalyzerFailed as exc:
            raise PermanentError(f"policy pack {session.pack_dir} failed while analysing: {exc}") from None
        except (OSError, RuntimeError, TimeoutError) as exc:
            raise PermanentError(f"policy pack {session.pack_dir} failed to start: {str(exc).splitlines()[0]}") from None
        by_name: dict[str, list[Violation]] = {}
        for v in violations:
            by_name.setdefault(v.resource, []).append(v)
        return by_name

    def _shown(self, instance: InstanceCompliance) -> bool:
        if self.selected == self.config.pulumi.stacks:
            return True
        # --stack: that stack's instances, and the project's unmanaged ones (and those whose owner is unknown).
        return instance.ownership != "declared" or instance.stack in self.selected


def run_compliance_check(
    config: RedisguardConfig,
    selected_stacks: Sequence[str] | None = None,
    *,
    check: ComplianceCheck | None = None,
    cancel: CancelToken | None = None,
    publish: Callable[[ProjectComplianceReport], None] | None = None,
) -> ComplianceReport:
    """Every target project of the check into one report, with the pack the run started."""
    check = check or ComplianceCheck(config, selected_stacks=selected_stacks)
    results = run_check(check, cancel or CancelToken(), parallelism=config.parallelism, publish=publish)
    session = check.last_pack
    pack = PackRun(pack=str(check.pack.pack_dir), starts=session.starts if session else 0,
                   startup_seconds=round(session.startup_seconds, 3) if session else 0.0)  # fmt: skip
    return ComplianceReport(projects=tuple(results), pack=pack)
