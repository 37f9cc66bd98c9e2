"""The Admin Activity audit log the emulator writes for every mutating Memorystore call, as Google writes it.

Each entry is a `google.logging.v2.LogEntry` whose `protoPayload` is a `google.cloud.audit.AuditLog`
(serviceName, methodName, resourceName, authenticationInfo.principalEmail,
requestMetadata.callerSuppliedUserAgent, the request as a Struct with its `@type`). A call that
starts a long-running operation writes two entries, the first and the last, linked by
`operation.id`, as Google's are.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from google.cloud.audit import audit_log_pb2
from google.cloud.logging_v2.types import LogEntry
from google.protobuf import any_pb2, timestamp_pb2

from redisguard.emulator.settings import DEFAULT_AUDIT_PRINCIPAL

SERVICE = "redis.googleapis.com"
ACTIVITY_LOG = "cloudaudit.googleapis.com%2Factivity"
METHOD_PREFIX = "google.cloud.redis.v1.CloudRedis."
# The headers a caller names itself with: a test (or a demo) acts as "alice@example.com" through
# the console by setting them; Google takes the principal from the credentials.
PRINCIPAL_HEADER = "x-emulator-principal"
MAX_ENTRIES = 100_000
"""Oldest entries are dropped past this: the emulator keeps no log across restarts."""
_REQUEST_TYPES = {
    "CreateInstance": "CreateInstanceRequest",
    "UpdateInstance": "UpdateInstanceRequest",
    "UpgradeInstance": "UpgradeInstanceRequest",
    "FailoverInstance": "FailoverInstanceRequest",
    "DeleteInstance": "DeleteInstanceRequest",
}
MUTATING = tuple(_REQUEST_TYPES)


def log_name(project: str) -> str:
    return f"projects/{project}/logs/{ACTIVITY_LOG}"


class AuditLog:
    """The entries, oldest first, bounded; written by the REST side, read by ListLogEntries."""

    def __init__(self, default_principal: str = DEFAULT_AUDIT_PRINCIPAL, limit: int = MAX_ENTRIES) -> None:
        self.default_principal = default_principal
        self._entries: deque[Any] = deque(maxlen=limit)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def record(
        self,
        rpc: str,
        resource: str,
        body: Mapping[str, Any],
        params: Mapping[str, str],
        headers: Mapping[str, str],
        operation: str | None,
    ) -> None:
        """The entries of one served REST call of `rpc` (one of MUTATING) on `resource`
        (projects/P/locations/R/instances/I) with its JSON `body` and query `params`: the memorystore
        side's `Audit` hook."""
        at = datetime.now(UTC)
        request = request_struct(rpc, resource, body, params)
        lowered = {k.lower(): v for k, v in headers.items()}
        payload = audit_log_pb2.AuditLog(service_name=SERVICE, method_name=METHOD_PREFIX + rpc, resource_name=resource)
        payload.authentication_info.principal_email = lowered.get(PRINCIPAL_HEADER) or self.default_principal
        payload.request_metadata.caller_ip = "127.0.0.1"
        payload.request_metadata.caller_supplied_user_agent = lowered.get("user-agent", "")
        payload.request.update({"@type": f"type.googleapis.com/google.cloud.redis.v1.{_REQUEST_TYPES[rpc]}", **request})
        project, _, region, _, instance_id = resource.split("/")[1:6]
        parts = [("first", payload)]
        if operation:
            # The last entry of an operation names it again, without the request.
            last = audit_log_pb2.AuditLog(service_name=SERVICE, method_name=payload.method_name, resource_name=resource)
            last.authentication_info.CopyFrom(payload.authentication_info)
            parts.append(("last", last))
        with self._lock:
            for part, message in parts:
                entry = LogEntry.pb(LogEntry())
                entry.log_name = log_name(project)
                entry.resource.type = "redis_instance"
                entry.resource.labels.update({"project_id": project, "region": region, "instance_id": instance_id})
                packed = any_pb2.Any()
                packed.Pack(message)
                entry.proto_payload.CopyFrom(packed)
                stamp = timestamp_pb2.Timestamp()
                stamp.FromDatetime(at)
                entry.timestamp.CopyFrom(stamp)
                entry.receive_timestamp.CopyFrom(stamp)
                entry.severity = 300  # NOTICE, as Admin Activity entries are
                entry.insert_id = f"emu{next(self._ids):012d}"
                if operation:
                    entry.operation.id = operation
                    entry.operation.producer = SERVICE
                    setattr(entry.operation, part, True)
                self._entries.append(entry)

    def entries(self) -> list[Any]:
        with self._lock:
            return list(self._entries)


def request_struct(rpc: str, resource: str, body: Mapping[str, Any], params: Mapping[str, str]) -> dict[str, Any]:
    """The request of a REST call as the audit log's `request` Struct holds it (JSON names)."""
    if rpc == "CreateInstance":
        parent, _, instance_id = resource.rpartition("/instances/")
        return {"parent": parent, "instanceId": instance_id, "instance": dict(body)}
    if rpc == "UpdateInstance":
        return {"updateMask": params.get("updateMask", ""), "instance": {**body, "name": resource}}
    return {"name": resource, **body}

