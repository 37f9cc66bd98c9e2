"""Fault injection and request counting shared by the REST and gRPC servers."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from redisguard.emulator.errors import ApiError, invalid

APIS = ("redis", "monitoring", "logging")
MODES = ("503", "429", "504", "hang", "partial", "403")
# Calls that return a listing: only they can answer with part of it ("partial").
LISTINGS = ("ListInstances", "ListTimeSeries")
# The IAM permission each emulated call needs (Google's IAM permissions reference), named in a
# `403` fault's message as Google's front end names it when a caller's role lacks it.
PERMISSIONS: dict[str, str] = {
    "CreateInstance": "redis.instances.create",
    "ListInstances": "redis.instances.list",
    "GetInstance": "redis.instances.get",
    "UpdateInstance": "redis.instances.update",
    "DeleteInstance": "redis.instances.delete",
    "GetInstanceAuthString": "redis.instances.getAuthString",
    "UpgradeInstance": "redis.instances.upgrade",
    "FailoverInstance": "redis.instances.failover",
    "GetOperation": "redis.operations.get",
    "ListTimeSeries": "monitoring.timeSeries.list",
    "ListLogEntries": "logging.logEntries.list",
}
DEFAULT_HANG_SECONDS = 30.0


@dataclass
class Fault:
    mode: str
    remaining: int
    hang_seconds: float = DEFAULT_HANG_SECONDS
    method: str | None = None
    """Only calls of this RPC consume the fault (`GetInstanceAuthString`); None: any call of the API."""

    def error(self, method: str, resource: str) -> ApiError:
        """The error the call of `method` on `resource` (a path such as `projects/p/...`) answers."""
        if self.mode == "403":
            permission = PERMISSIONS.get(method, method)
            return ApiError(
                "PERMISSION_DENIED",
                f"Permission '{permission}' denied on resource '{resource}' (or it may not exist).",
            )
        if self.mode == "503":
            return ApiError("UNAVAILABLE", "The service is currently unavailable (injected fault).")
        if self.mode == "429":
            return ApiError("RESOURCE_EXHAUSTED", "Quota exceeded (injected fault).")
        if self.mode == "504":
            # What Google's front end answers when the backend did not answer in time.
            return ApiError("DEADLINE_EXCEEDED", "The request timed out at the front end (injected fault).")
        return ApiError("DEADLINE_EXCEEDED", "The request timed out (injected hang).")


@dataclass
class Faults:
    """Per-API queues of faults: each call of that API consumes one from the oldest entry."""

    stopping: threading.Event = field(default_factory=threading.Event)
    _queues: dict[str, list[Fault]] = field(default_factory=lambda: {api: [] for api in APIS})
    _counts: dict[str, Counter[str]] = field(default_factory=lambda: {api: Counter() for api in APIS})
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, body: dict[str, Any]) -> Fault:
        api, mode, count = body.get("api"), str(body.get("mode", "")), body.get("count", 1)
        if api not in APIS:
            raise invalid(f"api must be one of {', '.join(APIS)}, got {api!r}")
        if mode not in MODES:
            raise invalid(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not isinstance(count, int) or count < 1:
            raise invalid(f"count must be a positive integer, got {count!r}")
        seconds = body.get("seconds", DEFAULT_HANG_SECONDS)
        if not isinstance(seconds, int | float) or seconds <= 0:
            raise invalid(f"seconds must be a positive number, got {seconds!r}")
        method = body.get("method")
        if method is not None and method not in PERMISSIONS:
            raise invalid(f"method must be one of {', '.join(PERMISSIONS)}, got {method!r}")
        fault = Fault(mode=mode, remaining=count, hang_seconds=float(seconds), method=method)
        with self._lock:
            self._queues[api].append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            for queue in self._queues.values():
                queue.clear()

    def pending(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return {
                api: [{"mode": f.mode, "remaining": f.remaining, **({"method": f.method} if f.method else {})} for f in q]
                for api, q in self._queues.items()
            }

    def record_call(self, api: str, method: str) -> Fault | None:
        """Count one call of `method`; the fault it must suffer, if any.

        A `partial` fault waits for the next listing call: a get or a create cannot answer in part;
        a fault aimed at one RPC (`method`) waits for a call of that RPC.
        """
        with self._lock:
            self._counts[api][method] += 1
            queue = self._queues[api]
            if not queue:
                return None
            fault = queue[0]
            if fault.mode == "partial" and method not in LISTINGS:
                return None
            if fault.method is not None and fault.method != method:
                return None
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.pop(0)
            return fault

    def counts(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {api: dict(c) for api, c in self._counts.items()}

    def reset_counts(self) -> None:
        with self._lock:
            for c in self._counts.values():
                c.clear()
