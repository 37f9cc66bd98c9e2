"""The live engine when the API cannot be used (a wrong endpoint, nothing listening, TLS to plain HTTP, bad
credentials): one line naming what is wrong; and a failed check's duration still counts reading its stack file."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from redisguard.daemon.checks import drift
from redisguard.daemon.config import config_from_mapping
from redisguard.daemon.fleet import stacks
from redisguard.program.config import StackConfig
from tests.fixtures.cli import run_cli
from tests.fixtures.repo import REPO


def test_a_live_check_counts_reading_its_stack_file_in_its_duration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Reading a large stack file is most of a live check (0.5 s for 1000 clusters); a duration
    # without it would tell a user the check is faster than it is.
    real_parse = stacks.parse_stack_file

    def slow_parse(text: str, path: Path, **options: Any) -> StackConfig:
        time.sleep(0.3)
        return real_parse(text, path, **options)

    monkeypatch.setattr(stacks, "parse_stack_file", slow_parse)  # where every stack file is parsed
    # A copy: a file this process parsed before, unchanged, is not parsed again.
    (tmp_path / "Pulumi.staging.yaml").write_text((REPO / "program" / "Pulumi.staging.yaml").read_text())
    config = config_from_mapping(
        {
            "pulumi": {"work_dir": str(tmp_path), "stacks": ["staging"]},
            "gcp": {"redis_endpoint": "http://127.0.0.1:9", "request_timeout_seconds": 2},
        }
    )
    [stack] = drift.run_scan(config, ["staging"], ["live"]).stacks
    assert stack.status == "error"  # nobody listens on port 9
    assert stack.duration_seconds >= 0.3


def test_an_endpoint_that_is_not_the_memorystore_api_is_named(tmp_path: Path) -> None:
    # A wrong port in gcp.redis_endpoint (some other web server): say so, with the endpoint.
    class NotTheApi(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            body = b"<html>welcome</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotTheApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        config = tmp_path / "redisguard.yaml"
        config.write_text(
            f"pulumi:\n  work_dir: {REPO / 'program'}\n  stacks: [staging]\ngcp:\n  redis_endpoint: {endpoint}\n"
        )
        result = run_cli("drift-report", "--config", str(config), "--engine", "live", "--format", "json")
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "redisguard drift-report: error: stack staging (live): list_instances projects/redisguard-staging/locations/-: "
        f"{endpoint} did not answer as the Memorystore API does (Failed to load JSON: Expecting value: line 1 column 1 (char 0).)"
    ]


class _HtmlNotFound(http.server.BaseHTTPRequestHandler):
    """A plain web server's 404 page, as `python3 -m http.server` sends it."""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        body = b"<!DOCTYPE HTML>\n<html lang='en'>\n<body>\n<h1>Error response</h1>\n<p>SECRET-PAGE-BODY</p>\n</body>\n</html>\n"
        self.send_response(404)
        self.send_header("Content-Type", "text/html;charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _redis_like_server() -> tuple[socket.socket, int]:
    """Answers any request as redis-server does to HTTP (an error line, then closes)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"-ERR wrong number of arguments for 'get' command\r\n")

    threading.Thread(target=serve, daemon=True).start()
    return listener, listener.getsockname()[1]


@pytest.mark.parametrize("server", ["html-404", "redis"])
def test_a_wrong_port_says_it_is_not_the_api_on_one_line_without_the_body(tmp_path: Path, server: str) -> None:
    if server == "html-404":
        http_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HtmlNotFound)
        threading.Thread(target=http_server.serve_forever, daemon=True).start()

        def close_http() -> None:
            http_server.shutdown()
            http_server.server_close()

        port, close = http_server.server_address[1], close_http
        detail = "(HTTP 404, text/html)"
    else:
        listener, port = _redis_like_server()
        close, detail = listener.close, "(the connection closed without an HTTP answer)"
    endpoint = f"http://127.0.0.1:{port}"
    config = tmp_path / "redisguard.yaml"
    config.write_text(f"pulumi:\n  work_dir: {REPO / 'program'}\n  stacks: [staging]\ngcp:\n  redis_endpoint: {endpoint}\n")
    try:
        result = run_cli("drift-report", "--config", str(config), "--engine", "live", "--format", "json")
    finally:
        close()
    expected = (
        f"list_instances projects/redisguard-staging/locations/-: {endpoint} did not answer as the Memorystore API does {detail}"
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"redisguard drift-report: error: stack staging (live): {expected}"]
    assert json.loads(result.stdout)["stacks"][0]["error"] == expected
    assert "SECRET-PAGE-BODY" not in result.stdout + result.stderr


def test_nothing_listening_is_cannot_connect(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    config = config_from_mapping(
        {"pulumi": {"work_dir": str(REPO / "program"), "stacks": ["staging"]}, "gcp": {"redis_endpoint": f"http://127.0.0.1:{port}"}}
    )
    [stack] = drift.run_scan(config, ["staging"], ["live"]).stacks
    assert stack.error == (
        f"list_instances projects/redisguard-staging/locations/-: cannot connect to http://127.0.0.1:{port} "
        "(connection refused), which has not answered since redisguard started: a configuration problem, "
        "not a passing one; check gcp.redis_endpoint in the config and that the API runs there"
    )
    assert stack.error_kind == "permanent"


def test_https_to_a_plain_http_port_says_the_endpoint_may_not_speak_tls(tmp_path: Path) -> None:
    # The emulator speaks plain HTTP; `https://` in gcp.redis_endpoint is the usual slip.
    http_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HtmlNotFound)
    threading.Thread(target=http_server.serve_forever, daemon=True).start()
    endpoint = f"https://127.0.0.1:{http_server.server_address[1]}"
    config = config_from_mapping(
        {"pulumi": {"work_dir": str(REPO / "program"), "stacks": ["staging"]}, "gcp": {"redis_endpoint": endpoint}}
    )
    try:
        [stack] = drift.run_scan(config, ["staging"], ["live"]).stacks
    finally:
        http_server.shutdown()
        http_server.server_close()
    assert (stack.error or "").startswith(
        f"list_instances projects/redisguard-staging/locations/-: the TLS handshake with {endpoint} failed; "
        "the endpoint may not speak TLS (use http:// for a plain-HTTP endpoint such as the emulator)"
    )
    assert "\n" not in (stack.error or "")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "File {path} was not found."),
        ("{}", "The file {path} does not have a valid type."),
        ("not json", "File {path} is not a valid json file."),
    ],
    ids=["missing", "not-a-key-file", "not-json"],
)
def test_a_bad_google_application_credentials_file_keeps_google_auths_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None, reason: str
) -> None:
    path = tmp_path / "key.json"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    config = config_from_mapping({"pulumi": {"work_dir": str(REPO / "program"), "stacks": ["staging"]}})
    [stack] = drift.run_scan(config, ["staging"], ["live"]).stacks
    assert stack.status == "error"
    assert (stack.error or "").startswith(
        f"GOOGLE_APPLICATION_CREDENTIALS={path} gives no usable Google Cloud credentials: {reason.format(path=path)}"
    )
    assert "set GOOGLE_APPLICATION_CREDENTIALS" not in (stack.error or "")
