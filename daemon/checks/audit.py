"""Who changed a drifted instance: each project's Admin Activity audit log, read once per run with google-cloud-logging.

One filtered, paged `list_log_entries` call per project per run (never per instance), by the
first finding of that project that needs it; each finding then takes the entries of its own
instance since it was last seen in sync. A log that cannot be read (no roles/logging.viewer, an
outage) makes every cause of that project "unknown: <why>" and fails nothing else.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from redisguard.core.errors import RedisguardError
from redisguard.core.gcp import api_errors, logging_client, one_line, retry_policy
from redisguard.core.secrets import scrub
from redisguard.core.threads import ComputedOnce
from redisguard.daemon.config import RedisguardConfig
from redisguard.daemon.reports.cause import MUTATING_METHODS, Cause, Change, classify_agent
from redisguard.daemon.reports.drift import DriftItem

log = logging.getLogger(__name__)

SERVICE = "redis.googleapis.com"
ACTIVITY_LOG = "cloudaudit.googleapis.com%2Factivity"
PAGE_SIZE = 1000
"""Cloud Logging's largest page: a project's week of Memorystore changes is one call."""
# A change whose operation was still running when the instance was listed in sync is logged
# before that listing: the window opens this much earlier than "last seen in sync".
IN_SYNC_MARGIN = timedelta(minutes=5)
_INSTANCE = re.compile(r"^projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/instances/(?P<id>[^/]+)$")


def activity_filter(project: str, since: datetime) -> str:
    """The one filter sent for a project: its Admin Activity log, Memorystore's mutating methods, since `since`."""
    methods = " OR ".join(f'protoPayload.methodName="{m}"' for m in MUTATING_METHODS)
    return (
        f'logName="projects/{project}/logs/{ACTIVITY_LOG}" AND protoPayload.serviceName="{SERVICE}" '
        f'AND ({methods}) AND timestamp>="{since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}"'
    )


class InSyncMemory:
    """When each instance (its API name) was last listed in sync, for as long as the process runs."""

    def __init__(self) -> None:
        self._seen: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def seen(self, names: Iterable[str], at: datetime) -> None:
        with self._lock:
            self._seen.update(dict.fromkeys(names, at))

    def since(self, name: str) -> datetime | None:
        with self._lock:
            return self._seen.get(name)


LAST_IN_SYNC = InSyncMemory()
"""The daemon's memory across runs; a one-off report starts empty (its window is audit.lookback)."""


@dataclass(frozen=True)
class _ProjectLog:
    """One project's entries (newest first) by instance name, or why they could not be read."""

    changes: dict[str, list[Change]] = field(default_factory=dict)
    unknown: str | None = None


class AuditReader:
    """The audit log reads of one run: each project read once, by whichever finding asks first."""

    def __init__(self, config: RedisguardConfig, memory: InSyncMemory = LAST_IN_SYNC) -> None:
        self.config = config
        self.memory = memory
        self.started = datetime.now(UTC)
        self._projects: ComputedOnce[str, _ProjectLog] = ComputedOnce()

    def explain(self, items: Sequence[DriftItem]) -> list[DriftItem]:
        """`items` with the cause of each one whose instance is known."""
        if not self.config.audit.enabled:
            return list(items)
        return [item.model_copy(update={"cause": self.cause(item.instance)}) if item.instance else item for item in items]

    def cause(self, instance: str) -> Cause:
        """The newest changes of `instance` (projects/P/locations/R/instances/I; R `-` when unknown) since it was last seen in sync."""
        match = _INSTANCE.match(instance)
        if match is None:
            return Cause(unknown=f"{instance!r} is not an instance name")
        project_log = self._projects.get(match["project"], lambda: self._read(match["project"]))
        if project_log.unknown is not None:
            return Cause(unknown=project_log.unknown)
        if match["region"] == "-":
            pattern = re.compile(rf"^projects/{re.escape(match['project'])}/locations/[^/]+/instances/{re.escape(match['id'])}$")
            found = sorted(
                (c for name, cs in project_log.changes.items() if pattern.match(name) for c in cs),
                key=lambda c: c.at,
                reverse=True,
            )
        else:
            found = project_log.changes.get(instance, [])
        in_sync = self.memory.since(instance)
        if in_sync is not None:
            found = [c for c in found if c.at >= in_sync - IN_SYNC_MARGIN]
        return Cause(changes=tuple(found[: self.config.audit.max_changes]))

    def _read(self, project: str) -> _ProjectLog:
        gcp = self.config.gcp
        endpoint = gcp.logging_target
        timeout = gcp.request_timeout_seconds
        what = f"list_log_entries projects/{project}"
        if gcp.redis_endpoint and not endpoint:
            # The instances come from elsewhere than Google (the emulator): so must their log.
            return _ProjectLog(unknown="gcp.logging_endpoint is not set while gcp.redis_endpoint is: the audit log of that API is not Google's")
        request = {
            "resource_names": [f"projects/{project}"],
            "filter": activity_filter(project, self.started - self.config.audit.lookback),
            "order_by": "timestamp desc",
            "page_size": PAGE_SIZE,
        }
        try:
            with api_errors(
                what,
                where=endpoint or "the Cloud Logging API",
                api="Cloud Logging API",
                timeout=timeout,
                setting=("gcp.logging_endpoint" if gcp.logging_endpoint else "gcp.monitoring_endpoint") if endpoint else None,
            ):
                pager = logging_client(endpoint).list_log_entries(request=request, timeout=timeout, retry=retry_policy(timeout))
                entries = list(pager)
        except RedisguardError as exc:
            reason = str(exc)
            if "PermissionDenied" in reason or "logging.logEntries.list" in reason:
                reason += " (the audit log needs roles/logging.viewer on the project)"
            log.warning("audit log not read project=%s error=%s", project, one_line(reason))
            return _ProjectLog(unknown=scrub(reason, self.config.secrets()))
        except Exception:
            # The cause is an extra: a bug reading it must not cost the finding.
            log.exception("audit log not read project=%s", project)
            return _ProjectLog(unknown="the audit log could not be read (an internal error; see the daemon's log)")
        changes: dict[str, list[Change]] = {}
        for entry in entries:
            parsed = self._change(entry)
            if parsed is not None:
                changes.setdefault(parsed[0], []).append(parsed[1])
        for listed in changes.values():
            listed.sort(key=lambda c: c.at, reverse=True)
        log.debug("audit log read project=%s entries=%d instances=%d", project, len(entries), len(changes))
        return _ProjectLog(changes=changes)

    def _change(self, entry: Any) -> tuple[str, Change] | None:
        """(instance name, change) of one LogEntry; None for the last entry of an operation (its first says it all)."""
        from google.cloud.audit import audit_log_pb2
        from google.cloud.logging_v2.types import LogEntry
        from google.protobuf import json_format

        pb = LogEntry.pb(entry)
        if pb.operation.last and not pb.operation.first:
            return None
        payload = audit_log_pb2.AuditLog()
        if not pb.proto_payload.Unpack(payload):
            return None
        request = json_format.MessageToDict(payload.request) if payload.HasField("request") else {}
        principal = payload.authentication_info.principal_email
        agent = payload.request_metadata.caller_supplied_user_agent
        return payload.resource_name, Change(
            at=pb.timestamp.ToDatetime(tzinfo=UTC),
            method=payload.method_name,
            principal=principal,
            via=classify_agent(agent),
            user_agent=agent,
            fields=_mask_paths(request.get("updateMask")),
            by_pulumi=bool(principal) and principal.lower() in {p.lower() for p in self.config.audit.pulumi_principals},
        )


def _mask_paths(mask: Any) -> tuple[str, ...]:
    """A FieldMask as the request Struct holds it: "a,b" (its JSON form) or {"paths": [...]}."""
    if isinstance(mask, str):
        return tuple(p.strip() for p in mask.split(",") if p.strip())
    if isinstance(mask, dict) and isinstance(mask.get("paths"), list):
        return tuple(str(p) for p in mask["paths"])
    return ()
