"""gRPC handler of google.logging.v2.LoggingServiceV2.ListLogEntries, served beside Monitoring on the emulator's gRPC port."""

from __future__ import annotations

import logging
from typing import Any

import grpc

from redisguard.emulator.errors import ApiError
from redisguard.emulator.faults import Faults
from redisguard.emulator.logging.audit import AuditLog
from redisguard.emulator.logging.list_log_entries import ListRequestPb, list_log_entries

log = logging.getLogger(__name__)

SERVICE_NAME = "google.logging.v2.LoggingServiceV2"


class LoggingService:
    """google-cloud-logging ships message types but no servicer base: a generic handler, as Monitoring's."""

    def __init__(self, audit: AuditLog, faults: Faults) -> None:
        self.audit = audit
        self.faults = faults

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "ListLogEntries": grpc.unary_unary_rpc_method_handler(
                    self.list_log_entries,
                    request_deserializer=ListRequestPb.FromString,
                    response_serializer=lambda msg: msg.SerializeToString(),
                )
            },
        )

    def list_log_entries(self, request: Any, context: grpc.ServicerContext) -> Any:
        fault = self.faults.record_call("logging", "ListLogEntries")
        if fault is not None:
            if fault.mode == "hang":
                self.faults.stopping.wait(fault.hang_seconds)
            err = fault.error("ListLogEntries", ",".join(request.resource_names))
            context.abort(err.grpc_status, err.message)
        try:
            return list_log_entries(request, self.audit.entries())
        except ApiError as exc:
            context.abort(exc.grpc_status, exc.message)
        except Exception:
            log.exception("ListLogEntries failed")
            context.abort(grpc.StatusCode.INTERNAL, "Internal error in the emulator.")
