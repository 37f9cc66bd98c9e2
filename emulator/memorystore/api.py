"""REST server for the Memorystore admin API (v1) paths google-cloud-redis sends, and the /_emulator endpoints."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from google.protobuf import json_format

from redisguard.emulator.errors import ApiError, invalid, not_found
from redisguard.emulator.faults import Faults
from redisguard.emulator.memorystore.operations import OperationRecord
from redisguard.emulator.memorystore.service import MemorystoreService
from redisguard.emulator.memorystore.store import (
    InstanceMessage,
    InstancePb,
    instance_name,
    instance_to_dict,
    split_name,
)

log = logging.getLogger(__name__)

_SEG = r"([^/:]+)"
_PARENT = rf"/v1/projects/{_SEG}/locations/{_SEG}"
_INSTANCE = rf"{_PARENT}/instances/{_SEG}"
_OPERATION = rf"{_PARENT}/operations/{_SEG}"


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, list[str]]
    body: bytes
    groups: tuple[str, ...]
    partial: bool = False
    """An injected `partial` fault: a listing answers without one region and names it unreachable."""

    @property
    def enums_as_ints(self) -> bool:
        # The generated REST transport sends `$alt=json;enum-encoding=int` on every call.
        return any("enum-encoding=int" in alt for alt in self.params.get("$alt", []))

    def param(self, name: str, default: str = "") -> str:
        values = self.params.get(name)
        return values[0] if values else default

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            data = json.loads(self.body)
        except ValueError as exc:
            raise invalid(f"Invalid JSON payload received. {exc}") from exc
        if not isinstance(data, dict):
            raise invalid("Invalid JSON payload received: expected an object.")
        return data


Response = tuple[int, dict[str, Any]]
Handler = Callable[[Request], Response]
Audit = Callable[[str, str, dict[str, Any], dict[str, str], Mapping[str, str], str | None], None]
"""Told of every mutating call served: (rpc, instance name, request body, query parameters, headers, operation name)."""
# The calls that change an instance: each one served is written to the audit log.
MUTATING = ("CreateInstance", "UpdateInstance", "DeleteInstance", "UpgradeInstance", "FailoverInstance")


class RedisApi:
    """Routes HTTP requests to the service; Google's JSON error format for every failure."""

    def __init__(self, service: MemorystoreService, faults: Faults, audit: Audit | None = None) -> None:
        self.service = service
        self.faults = faults
        self.audit = audit
        # (HTTP method, path regex, RPC name counted in /_emulator/requests, handler)
        self.routes: list[tuple[str, re.Pattern[str], str, Handler]] = [
            ("POST", re.compile(rf"^{_PARENT}/instances$"), "CreateInstance", self.create_instance),
            ("GET", re.compile(rf"^{_PARENT}/instances$"), "ListInstances", self.list_instances),
            ("GET", re.compile(rf"^{_INSTANCE}$"), "GetInstance", self.get_instance),
            ("PATCH", re.compile(rf"^{_INSTANCE}$"), "UpdateInstance", self.update_instance),
            ("DELETE", re.compile(rf"^{_INSTANCE}$"), "DeleteInstance", self.delete_instance),
            ("GET", re.compile(rf"^{_INSTANCE}/authString$"), "GetInstanceAuthString", self.get_auth_string),
            ("POST", re.compile(rf"^{_INSTANCE}:upgrade$"), "UpgradeInstance", self.upgrade_instance),
            ("POST", re.compile(rf"^{_INSTANCE}:failover$"), "FailoverInstance", self.failover_instance),
            ("GET", re.compile(rf"^{_OPERATION}$"), "GetOperation", self.get_operation),
        ]
        self.control_routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("POST", re.compile(r"^/_emulator/faults$"), self.add_fault),
            ("GET", re.compile(r"^/_emulator/faults$"), lambda r: (200, self.faults.pending())),
            ("DELETE", re.compile(r"^/_emulator/faults$"), self.clear_faults),
            ("POST", re.compile(rf"^/_emulator/instances/{_SEG}/{_SEG}:kill$"), self.kill_instance),
            ("POST", re.compile(rf"^/_emulator/instances/{_SEG}/{_SEG}:start$"), self.start_instance),
            ("GET", re.compile(r"^/_emulator/requests$"), lambda r: (200, self.faults.counts())),
            ("DELETE", re.compile(r"^/_emulator/requests$"), self.reset_requests),
            (
                "GET",
                re.compile(r"^/_emulator/health$"),
                lambda r: (200, {"status": "ok", "instances": len(self.service.store)}),
            ),
        ]

    # ----- dispatch --------------------------------------------------------------------

    def dispatch(self, method: str, raw_path: str, body: bytes, headers: Mapping[str, str] | None = None) -> Response:
        url = urlsplit(raw_path)
        path = url.path
        params = parse_qs(url.query, keep_blank_values=True)
        try:
            if path.startswith("/_emulator/"):
                return self._dispatch_control(method, path, params, body)
            return self._dispatch_api(method, path, params, body, headers or {})
        except ApiError as exc:
            return exc.http_status, exc.to_json()
        except Exception:
            log.exception("unhandled error method=%s path=%s", method, path)
            return 500, ApiError("INTERNAL", "Internal error in the emulator.").to_json()

    def _dispatch_api(
        self, method: str, path: str, params: dict[str, list[str]], body: bytes, headers: Mapping[str, str]
    ) -> Response:
        for route_method, pattern, rpc, handler in self.routes:
            match = pattern.match(path)
            if match and route_method == method:
                fault = self.faults.record_call("redis", rpc)
                partial = fault is not None and fault.mode == "partial"
                if fault is not None and not partial:
                    if fault.mode == "hang":
                        self.faults.stopping.wait(fault.hang_seconds)
                    # The resource IAM checks: the instance (or parent) the path names, as Google names it.
                    resource = re.sub(r"(/authString|:[a-z]+)$", "", path.removeprefix("/v1/"))
                    raise fault.error(rpc, f"//redis.googleapis.com/{resource}")
                request = Request(method, path, params, body, tuple(unquote(g) for g in match.groups()), partial=partial)
                status, payload = handler(request)
                if self.audit is not None and rpc in MUTATING:
                    self._write_audit(rpc, request, payload, headers)
                return status, payload
        self.faults.record_call("redis", "Unknown")
        # Only the calls redisguard and the gcp provider make are served (docs/emulator.md); any
        # other gets what Google's front end answers for a URL it does not map: 404 NOT_FOUND.
        raise not_found(f"Method {method} {path} is not part of the emulated Memorystore v1 API.")

    def _dispatch_control(self, method: str, path: str, params: dict[str, list[str]], body: bytes) -> Response:
        for route_method, pattern, handler in self.control_routes:
            match = pattern.match(path)
            if match and route_method == method:
                return handler(Request(method, path, params, body, tuple(unquote(g) for g in match.groups())))
        raise not_found(f"No control endpoint {method} {path}.")

    # ----- Memorystore API -------------------------------------------------------------

    def _instance_json(self, inst: InstanceMessage, req: Request) -> dict[str, Any]:
        return instance_to_dict(inst, enums_as_ints=req.enums_as_ints)

    def _operation_json(self, op: OperationRecord, req: Request, *, done: bool) -> Response:
        return 200, op.to_json(enums_as_ints=req.enums_as_ints, done=done)

    def create_instance(self, req: Request) -> Response:
        project, region = req.groups
        inst = _instance_from_body(req.body)
        op = self.service.create(project, region, req.param("instanceId"), inst)
        # Like the real API, the mutation answers with a pending operation; GET completes it.
        return self._operation_json(op, req, done=False)

    def list_instances(self, req: Request) -> Response:
        project, region = req.groups
        try:
            page_size = int(req.param("pageSize", "0") or 0)
        except ValueError as exc:
            raise invalid(f"Invalid pageSize '{req.param('pageSize')}'.") from exc
        page, next_token = self.service.list(project, region, page_size, req.param("pageToken"))
        out: dict[str, Any] = {"instances": [self._instance_json(i, req) for i in page]}
        if req.partial:
            # As when one region does not answer a locations/- listing: its instances are left out.
            lost = split_name(page[0].name)[1] if page else self.service.settings.region
            out["instances"] = [self._instance_json(i, req) for i in page if split_name(i.name)[1] != lost]
            out["unreachable"] = [f"projects/{project}/locations/{lost}"]
        if next_token:
            out["nextPageToken"] = next_token
        return 200, out

    def get_instance(self, req: Request) -> Response:
        name = instance_name(*req.groups)
        return 200, self._instance_json(self.service.get(name), req)

    def update_instance(self, req: Request) -> Response:
        name = instance_name(*req.groups)
        patch = _instance_from_body(req.body)
        mask = [p for p in req.param("updateMask").split(",") if p]
        op = self.service.update(name, patch, mask)
        return self._operation_json(op, req, done=False)

    def delete_instance(self, req: Request) -> Response:
        op = self.service.delete(instance_name(*req.groups))
        return self._operation_json(op, req, done=False)

    def get_auth_string(self, req: Request) -> Response:
        auth = self.service.auth_string(instance_name(*req.groups))
        return 200, ({"authString": auth} if auth else {})

    def upgrade_instance(self, req: Request) -> Response:
        version = req.json().get("redisVersion", "")
        if not version:
            raise invalid("Request is missing required field redis_version.")
        op = self.service.upgrade(instance_name(*req.groups), version)
        return self._operation_json(op, req, done=False)

    def failover_instance(self, req: Request) -> Response:
        op = self.service.failover(instance_name(*req.groups))
        return self._operation_json(op, req, done=False)

    def get_operation(self, req: Request) -> Response:
        project, region, op_id = req.groups
        op = self.service.get_operation(f"projects/{project}/locations/{region}/operations/{op_id}")
        return self._operation_json(op, req, done=True)

    def _write_audit(self, rpc: str, req: Request, operation: dict[str, Any], headers: Mapping[str, str]) -> None:
        assert self.audit is not None
        # A create names the parent in its path and the new instance in `instanceId`.
        groups = (*req.groups, req.param("instanceId")) if rpc == "CreateInstance" else req.groups
        name = instance_name(*groups[:3])
        params = {key: values[0] for key, values in req.params.items() if values and not key.startswith("$")}
        self.audit(rpc, name, req.json(), params, headers, operation.get("name"))

    # ----- control endpoints -----------------------------------------------------------

    def add_fault(self, req: Request) -> Response:
        fault = self.faults.add(req.json())
        log.info("fault injected mode=%s count=%d", fault.mode, fault.remaining)
        return 200, {"pending": self.faults.pending()}

    def clear_faults(self, req: Request) -> Response:
        self.faults.clear()
        return 200, {"pending": self.faults.pending()}

    def reset_requests(self, req: Request) -> Response:
        self.faults.reset_counts()
        return 200, self.faults.counts()

    def kill_instance(self, req: Request) -> Response:
        region, instance_id = req.groups
        record = self.service.find(region, instance_id, req.param("project") or None)
        killed = self.service.kill(record)
        log.info("instance killed by control endpoint name=%s", record.name)
        return 200, {"instance": record.name, "killed": killed, "state": "REPAIRING"}

    def start_instance(self, req: Request) -> Response:
        region, instance_id = req.groups
        record = self.service.find(region, instance_id, req.param("project") or None)
        self.service.revive(record)
        return 200, {"instance": record.name, "state": "READY", "port": record.instance.port}



def _instance_from_body(body: bytes) -> InstanceMessage:
    """Parse a request body into an Instance; unknown fields and bad enums are INVALID_ARGUMENT."""
    inst = InstancePb()
    try:
        json_format.Parse(body or b"{}", inst)
    except json_format.ParseError as exc:
        raise invalid(f"Invalid JSON payload received. {exc}") from exc
    return inst


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "redisguard-emulator"
    # Headers and body go out in two writes: with Nagle on, keep-alive clients wait for a
    # delayed ACK (~40 ms) on every call.
    disable_nagle_algorithm = True
    api: RedisApi  # set on the subclass built by make_server

    def _handle(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            # The body cannot be delimited: answer and drop the connection.
            self.close_connection = True
            status, payload = 400, invalid("Invalid Content-Length header.").to_json()
        else:
            body = self.rfile.read(length) if length else b""
            status, payload = self.api.dispatch(self.command, self.path, body, dict(self.headers.items()))
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout during an injected hang).
            self.close_connection = True

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle  # noqa: N815 - http.server's naming

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        log.debug("http %s", format % args)


class RedisApiServer:
    """The REST server on its own thread."""

    def __init__(self, api: RedisApi, host: str, port: int) -> None:
        handler = type("Handler", (_Handler,), {"api": api})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="redis-api", daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()
