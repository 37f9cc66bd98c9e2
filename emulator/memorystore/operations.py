"""Long-running operations of the emulated Memorystore API: one per mutation, kept for GetOperation."""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from google.cloud.redis_v1.types import cloud_redis
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2, json_format, timestamp_pb2

from redisguard.emulator.errors import ApiError, not_found
from redisguard.emulator.memorystore.store import split_name

OperationMetadataPb = cloud_redis.OperationMetadata.pb()
MAX_OPERATIONS = 10_000


def timestamp_now() -> timestamp_pb2.Timestamp:
    """Now, as the API stamps operations and instances."""
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    # Millisecond precision, like the timestamps Google returns.
    ts.nanos -= ts.nanos % 1_000_000
    return ts


@dataclass
class OperationRecord:
    name: str
    metadata: Any
    """An OperationMetadataPb message."""
    response: Any = None
    """The message the operation answers with once done (the instance, or Empty for a delete)."""
    error: ApiError | None = None

    def finish(self, response: Any = None, error: ApiError | None = None) -> OperationRecord:
        """Done: with `error`, else with `response` (Empty without one)."""
        self.metadata.end_time.CopyFrom(timestamp_now())
        if error is not None:
            self.error = error
        else:
            self.response = response if response is not None else empty_pb2.Empty()
        return self

    def to_pb(self) -> operations_pb2.Operation:
        op = operations_pb2.Operation(name=self.name, done=True)
        op.metadata.Pack(self.metadata)
        if self.error is not None:
            op.error.code = self.error.code
            op.error.message = self.error.message
        else:
            op.response.Pack(self.response)
        return op

    def to_json(self, *, enums_as_ints: bool, done: bool = True) -> dict[str, Any]:
        op = self.to_pb()
        if not done:
            op.done = False
            op.ClearField("response")
            op.ClearField("error")
        out = json_format.MessageToDict(op, use_integers_for_enums=enums_as_ints)
        out["done"] = done  # Google spells out "done": false; proto JSON would omit it
        return out


class Operations:
    """The operations of the last `limit` mutations, by name; thread-safe."""

    def __init__(self, limit: int = MAX_OPERATIONS) -> None:
        self.limit = limit
        self._records: OrderedDict[str, OperationRecord] = OrderedDict()
        self._lock = threading.Lock()

    def begin(self, target: str, verb: str) -> OperationRecord:
        """A new operation on the instance named `target` (verb: create, update, ...)."""
        project, region, _ = split_name(target)
        op_id = f"operation-{int(time.time() * 1000)}-{uuid.uuid4().hex[:20]}"
        name = f"projects/{project}/locations/{region}/operations/{op_id}"
        meta = OperationMetadataPb(create_time=timestamp_now(), target=target, verb=verb, api_version="v1")
        op = OperationRecord(name=name, metadata=meta)
        with self._lock:
            self._records[name] = op
            while len(self._records) > self.limit:
                self._records.popitem(last=False)
        return op

    def get(self, name: str) -> OperationRecord:
        with self._lock:
            op = self._records.get(name)
        if op is None:
            raise not_found(f"Resource '{name}' was not found")
        return op
