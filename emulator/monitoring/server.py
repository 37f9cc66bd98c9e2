"""gRPC server for google.monitoring.v3.MetricService.ListTimeSeries over the sampled INFO histories."""

from __future__ import annotations

import errno
import logging
import time
from concurrent import futures
from typing import Any

import grpc

from redisguard.emulator.errors import ApiError
from redisguard.emulator.faults import Faults
from redisguard.emulator.memorystore.processes import port_is_free
from redisguard.emulator.monitoring.list_time_series import ListTimeSeriesRequest, list_time_series, partial_response
from redisguard.emulator.monitoring.sampler import Sampler

log = logging.getLogger(__name__)

SERVICE_NAME = "google.monitoring.v3.MetricService"
# Hanging calls hold a worker each: leave room for the ones that must still work.
MAX_WORKERS = 32


class MonitoringServer:
    """google-cloud-monitoring ships message types but no servicer base, so the handler is generic."""

    def __init__(self, sampler: Sampler, faults: Faults, host: str, port: int) -> None:
        self.sampler = sampler
        self.faults = faults
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="monitoring"),
            # gRPC sets SO_REUSEPORT by default: a second emulator on the same port would bind
            # without error and the kernel would spread the clients' calls over both.
            options=[("grpc.so_reuseport", 0)],
        )
        handler = grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "ListTimeSeries": grpc.unary_unary_rpc_method_handler(
                    self.list_time_series,
                    request_deserializer=ListTimeSeriesRequest.FromString,
                    response_serializer=lambda msg: msg.SerializeToString(),
                )
            },
        )
        self.server.add_generic_rpc_handlers((handler,))
        if port and not port_is_free(host, port):
            # Checked with a plain socket first: gRPC's own failure logs a C-core error line to
            # stderr and says nothing about the cause.
            raise OSError(errno.EADDRINUSE, f"{host}:{port} is in use")
        try:
            self.port = self.server.add_insecure_port(f"{host}:{port}")
        except RuntimeError as exc:  # grpc reports a failed bind this way
            raise OSError(f"cannot listen on {host}:{port} for the monitoring API: {exc}") from exc

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=1).wait()

    def list_time_series(self, request: Any, context: grpc.ServicerContext) -> Any:
        fault = self.faults.record_call("monitoring", "ListTimeSeries")
        partial = fault is not None and fault.mode == "partial"
        if fault is not None and not partial:
            if fault.mode == "hang":
                deadline = time.monotonic() + fault.hang_seconds
                # Hold the call until the client gives up (its deadline) or the hang ends.
                while context.is_active() and time.monotonic() < deadline and not self.faults.stopping.is_set():
                    self.faults.stopping.wait(0.05)
            err = fault.error("ListTimeSeries", f"//monitoring.googleapis.com/{request.name}")
            context.abort(err.grpc_status, err.message)
        try:
            response = list_time_series(request, self.sampler.samples)
            return partial_response(response) if partial else response
        except ApiError as exc:
            context.abort(exc.grpc_status, exc.message)
        except Exception:
            log.exception("ListTimeSeries failed")
            context.abort(grpc.StatusCode.INTERNAL, "Internal error in the emulator.")
