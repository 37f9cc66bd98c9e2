"""The daemon's HTTP server: /metrics, /healthz, /report and `/` (their content is site.py), with optional TLS and basic auth from a web config."""

from __future__ import annotations

import errno
import functools
import gzip
import json
import logging
import socket
import ssl
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from redisguard.core.errors import ConfigError
from redisguard.core.threads import start_daemon_thread
from redisguard.daemon.service import status_page
from redisguard.daemon.service.site import Site
from redisguard.daemon.service.webconfig import WebConfig

log = logging.getLogger(__name__)

# A TLS connection that has not finished its handshake by then is dropped; it must not hold a
# thread (or, worse, the accept loop) for ever.
HANDSHAKE_TIMEOUT_SECONDS = 10.0
# An idle keep-alive connection is closed after this long (Prometheus reconnects at the next scrape).
IDLE_TIMEOUT_SECONDS = 60.0
_TLS_HANDSHAKE_RECORD = 0x16
# What Go's net/http answers a plain-HTTP request on a TLS port, so a curl user sees the same hint.
_PLAIN_HTTP_ON_TLS = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
    b"Client sent an HTTP request to an HTTPS server.\n"
)


class _Handler(BaseHTTPRequestHandler):
    server: DaemonHTTPServer
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_SECONDS
    server_version = "redisguard"

    def version_string(self) -> str:
        # The Server header: http.server appends " " + sys_version (Python's version), which we do not show.
        return self.server_version

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch(send_body=False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        log.debug("http %s %s", self.address_string(), format % args)

    def _dispatch(self, *, send_body: bool) -> None:
        web = self.server.web
        if web.limiter is not None and not web.limiter.allow():
            # As the exporter toolkit: every request counts, before authentication.
            self._send(HTTPStatus.TOO_MANY_REQUESTS, b"429 Too Many Requests\n", "text/plain; charset=utf-8", send_body)
            return
        if not web.authorized(self.headers.get("Authorization")):
            self._send(HTTPStatus.UNAUTHORIZED, b"401 Unauthorized\n", "text/plain; charset=utf-8", send_body,
                       extra={"WWW-Authenticate": 'Basic realm="redisguard", charset="UTF-8"'})  # fmt: skip
            return
        url = urlsplit(self.path)
        site = self.server.site
        try:
            if url.path == "/metrics":
                body, content_type = site.exposition.render(self.headers.get("Accept"))
                self._send(HTTPStatus.OK, body, content_type, send_body, compress=True)
            elif url.path == "/healthz":
                health = site.health()
                body = (json.dumps(health.to_json(), indent=2) + "\n").encode()
                status = HTTPStatus.OK if health.ok else HTTPStatus.SERVICE_UNAVAILABLE
                self._send(status, body, "application/json", send_body)
            elif url.path == "/report":
                fmt = parse_qs(url.query).get("format", ["json"])[-1]
                if fmt == "markdown":
                    self._send(HTTPStatus.OK, site.report_markdown(), "text/markdown; charset=utf-8", send_body)
                elif fmt == "json":
                    self._send(HTTPStatus.OK, site.report_json(), "application/json", send_body)
                else:
                    self._send(HTTPStatus.BAD_REQUEST, f"format={fmt}: allowed values: json, markdown\n".encode(),
                               "text/plain; charset=utf-8", send_body)  # fmt: skip
            elif url.path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, site.index_html(), "text/html; charset=utf-8", send_body, extra=status_page.HEADERS)
            else:
                self._send(HTTPStatus.NOT_FOUND, b"404 Not Found: see / for the pages served here\n",
                           "text/plain; charset=utf-8", send_body)  # fmt: skip
        except (BrokenPipeError, ConnectionResetError):
            raise
        except Exception:  # a bug in a page must not take the server down; the scrape sees a 500
            log.exception("http %s failed", url.path)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"500 Internal Server Error\n", "text/plain; charset=utf-8", send_body)

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        send_body: bool,
        *,
        compress: bool = False,
        extra: dict[str, str] | None = None,
    ) -> None:
        if compress and "gzip" in self.headers.get("Accept-Encoding", "") and len(body) > 1024:
            body = gzip.compress(body, compresslevel=1)
            extra = {**(extra or {}), "Content-Encoding": "gzip"}
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in {**self.server.web.headers, **(extra or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)


class DaemonHTTPServer(ThreadingHTTPServer):
    """One thread per connection; the TLS handshake runs in that thread, never in the accept loop."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, site: Site, web: WebConfig) -> None:
        self.address_family = family
        self.site = site
        self.web = web
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            # [::]:PORT serves IPv6 only, as written; :PORT is every IPv4 interface.
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        web = self.web  # the one in force when the connection came in (SIGHUP may swap it)
        if web.ssl_context is not None:
            request = self._tls(request, web, web.ssl_context, client_address)
            if request is None:
                return
        super().process_request_thread(request, client_address)

    def _tls(self, sock: socket.socket, web: WebConfig, context: ssl.SSLContext, client: Any) -> ssl.SSLSocket | None:
        sock.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
        try:
            first = sock.recv(1, socket.MSG_PEEK)
            if first and first[0] != _TLS_HANDSHAKE_RECORD:
                sock.sendall(_PLAIN_HTTP_ON_TLS)
                log.debug("http %s: plain HTTP on the TLS listener, answered 400", client)
                self.shutdown_request(sock)
                return None
            tls = context.wrap_socket(sock, server_side=True)
        except (OSError, ssl.SSLError) as exc:  # a timeout, a refused client certificate, a reset
            log.debug("http %s: TLS handshake failed: %s", client, exc)
            self.shutdown_request(sock)
            return None
        if not web.allowed(tls.getpeercert()):
            # client_allowed_sans: Go fails the handshake; Python's ssl has no hook there, so the
            # connection is closed before a request is read.
            log.debug("http %s: client certificate has none of client_allowed_sans", client)
            self.shutdown_request(tls)
            return None
        tls.settimeout(IDLE_TIMEOUT_SECONDS)
        return tls

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("http %s: connection error", client_address, exc_info=True)


def bind(listen: str, host: str, port: int, site: Site, web: WebConfig) -> DaemonHTTPServer:
    """Bind the listener (before anything else starts); ConfigError naming the address when it cannot."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"server.listen {listen}: cannot resolve {host!r}: {exc.strerror}") from exc
    family, _, _, _, address = infos[0]
    try:
        return DaemonHTTPServer((str(address[0]), int(address[1])), family, site, web)
    except OSError as exc:
        reason = {
            errno.EADDRINUSE: "address already in use (another process listens on that port; stop it or pick another port)",
            errno.EADDRNOTAVAIL: "not an address of this machine",
            errno.EACCES: "permission denied (ports below 1024 need privileges)",
        }.get(exc.errno or 0, exc.strerror or str(exc))
        raise ConfigError(f"server.listen {listen}: cannot listen: {reason}") from exc


def serve_in_thread(server: DaemonHTTPServer) -> threading.Thread:
    return start_daemon_thread(functools.partial(server.serve_forever, poll_interval=0.2), "http")


def bound_address(server: DaemonHTTPServer) -> str:
    host, port = str(server.server_address[0]), int(server.server_address[1])
    scheme = "https" if server.web.tls else "http"
    shown = f"[{host}]" if ":" in str(host) else host
    return f"{scheme}://{shown}:{port}"
