"""`google.logging.v2.LoggingServiceV2.ListLogEntries` over the audit log: resource names, the filter subset, ordering, paging."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from google.cloud.audit import audit_log_pb2
from google.cloud.logging_v2.types import ListLogEntriesRequest, ListLogEntriesResponse

from redisguard.emulator.errors import invalid
from redisguard.emulator.filters import Parser, Predicate
from redisguard.emulator.paging import decode_token, encode_token, page_size

ListRequestPb = type(ListLogEntriesRequest.pb(ListLogEntriesRequest()))
DEFAULT_PAGE_SIZE = 50
"""Cloud Logging's default; a page_size above MAX_PAGE_SIZE is refused, as Google does."""
MAX_PAGE_SIZE = 1000
_PAYLOAD = {
    "protoPayload.serviceName": "service_name",
    "protoPayload.methodName": "method_name",
    "protoPayload.resourceName": "resource_name",
    "protoPayload.authenticationInfo.principalEmail": "principal",
    "protoPayload.requestMetadata.callerSuppliedUserAgent": "user_agent",
}
_SELECTORS = ("logName", "timestamp", "severity", "resource.type", "operation.id", *_PAYLOAD)


def _selector(selector: str) -> str:
    if selector in _SELECTORS or selector.startswith("resource.labels."):
        return selector
    raise invalid(
        f"Invalid filter: '{selector}' is not a field the emulator supports ({', '.join(_SELECTORS)}, resource.labels.*)."
    )


def _order(key: str, value: str) -> Any:
    if key != "timestamp":
        return value
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise invalid(f"Invalid filter: '{value}' is not an RFC 3339 timestamp.") from exc


def _fields(entry: Any) -> dict[str, str]:
    """What the filter can read of one entry."""
    payload = audit_log_pb2.AuditLog()
    entry.proto_payload.Unpack(payload)
    fields = {
        "logName": entry.log_name,
        "timestamp": entry.timestamp.ToDatetime().isoformat() + "Z",
        "severity": "NOTICE",
        "resource.type": entry.resource.type,
        "operation.id": entry.operation.id,
        "protoPayload.serviceName": payload.service_name,
        "protoPayload.methodName": payload.method_name,
        "protoPayload.resourceName": payload.resource_name,
        "protoPayload.authenticationInfo.principalEmail": payload.authentication_info.principal_email,
        "protoPayload.requestMetadata.callerSuppliedUserAgent": payload.request_metadata.caller_supplied_user_agent,
    }
    fields.update({f"resource.labels.{k}": v for k, v in entry.resource.labels.items()})
    return fields


def _matcher(text: str) -> Predicate:
    if not text.strip():
        return lambda fields: True
    # Cloud Logging's log names are compared URL-encoded, as the client writes them.
    return Parser(text, _selector, _order).parse()


def list_log_entries(request: Any, entries: list[Any]) -> Any:
    """One page of the entries `request` selects (a ListLogEntriesRequest protobuf)."""
    if not request.resource_names:
        raise invalid("Request is missing required field resource_names.")
    scopes = []
    for name in request.resource_names:
        if not name.startswith("projects/") or name.count("/") != 1:
            raise invalid(f"Invalid resource name '{name}': the emulator serves projects/PROJECT_ID only.")
        scopes.append(name + "/")
    order = request.order_by.strip() or "timestamp asc"
    if order not in ("timestamp asc", "timestamp desc"):
        raise invalid(f"Invalid order_by '{request.order_by}': allowed values: timestamp asc, timestamp desc.")
    if request.page_size < 0 or request.page_size > MAX_PAGE_SIZE:
        raise invalid(f"page_size must be from 0 to {MAX_PAGE_SIZE}, got {request.page_size}.")
    size = page_size(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    matches = _matcher(request.filter)
    selected = [e for e in entries if e.log_name.startswith(tuple(scopes)) and matches(_fields(e))]
    if order == "timestamp desc":
        selected.reverse()
    identity = hashlib.sha256(f"{sorted(request.resource_names)}|{request.filter}|{order}".encode()).hexdigest()[:16]
    try:
        (start,) = decode_token(request.page_token, 1, identity)
    except ValueError as exc:
        raise invalid(f"Invalid page_token: {exc}.") from exc
    response = ListLogEntriesResponse.pb(ListLogEntriesResponse())
    response.entries.extend(selected[start : start + size])
    if start + size < len(selected):
        response.next_page_token = encode_token((start + size,), identity)
    return response
