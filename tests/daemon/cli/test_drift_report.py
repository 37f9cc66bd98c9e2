"""`redisguard drift-report` and `redisguard check-config` as a user runs them."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from redisguard.daemon.checks import drift
from redisguard.daemon.cli.main import main
from redisguard.daemon.config import config_from_mapping
from redisguard.daemon.fleet import stacks
from redisguard.program.config import StackConfig
from tests.fixtures.processes import wait_for
from tests.fixtures.repo import REPO


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "redisguard.daemon.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=REPO,
    )


def test_check_config_accepts_the_repository_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(REPO / "redisguard.yaml")]) == 0
    out = capsys.readouterr().out
    assert "redisguard.yaml: valid" in out
    assert "staging (redisguard-staging/europe-west1, 3 clusters)" in out
    assert "production (redisguard-production/europe-west1, 4 clusters)" in out
    assert "  gcp.monitoring_endpoint           127.0.0.1:8471" in out.splitlines()
    # Every effective key, the defaults too, each on its own line.
    assert "  gcp.request_timeout_seconds       30" in out.splitlines()
    from redisguard.daemon.config import RedisguardConfig

    shown = {line.split()[0] for line in out.splitlines()[1:]}
    for section, field in RedisguardConfig.model_fields.items():
        model = field.annotation
        keys = [f"{section}.{k}" for k in model.model_fields] if isinstance(model, type) and hasattr(model, "model_fields") else [section]
        assert set(keys) <= shown, set(keys) - shown


def test_check_config_lists_every_problem_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "redisguard.yaml"
    config.write_text("parallelism: -1\npulumi:\n  stacks: [staging]\n  work_dirr: program\n")
    assert main(["check-config", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"redisguard check-config: error: {config}: 2 problems in config")
    assert "parallelism: -1 is out of range; allowed: 1 to 64" in err
    assert "pulumi.work_dirr: unknown key" in err
    assert "Traceback" not in err


def test_check_config_names_a_missing_stack_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "redisguard.yaml"
    config.write_text(f"pulumi:\n  work_dir: {REPO / 'program'}\n  stacks: [staging, qa]\n")
    assert main(["check-config", "--config", str(config)]) == 1
    assert f"'qa' has no stack file {REPO / 'program' / 'Pulumi.qa.yaml'}" in capsys.readouterr().err


def test_missing_pulumi_cli_exits_1_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "redisguard.yaml"
    config.write_text(f"pulumi:\n  work_dir: {REPO / 'program'}\n  stacks: [staging]\n")
    env = {**os.environ, "PATH": str(tmp_path)}  # no pulumi on PATH
    result = run_cli("drift-report", "--config", str(config), "--engine", "pulumi", "--format", "json", env=env)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors == [
        "redisguard drift-report: error: stack staging (pulumi): the pulumi CLI was not found on PATH; "
        "install it (https://www.pulumi.com/docs/install/) or use --engine live"
    ]
    report = json.loads(result.stdout)
    assert report["stacks"][0]["status"] == "error"


def test_unknown_stack_argument_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["drift-report", "--config", str(REPO / "redisguard.yaml"), "--stack", "qa", "--engine", "live"])
    assert code == 1
    assert "--stack qa: not in pulumi.stacks; allowed: staging, production" in capsys.readouterr().err


def test_report_goes_to_the_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "redisguard.yaml"
    # An endpoint nobody listens on: the live check fails, and the report still lands in the file.
    config.write_text(
        f"pulumi:\n  work_dir: {REPO / 'program'}\n  stacks: [staging]\n"
        "gcp:\n  redis_endpoint: http://127.0.0.1:9\n  request_timeout_seconds: 2\n"
    )
    out = tmp_path / "drift.md"
    code = main(["drift-report", "--config", str(config), "--engine", "live", "--format", "markdown", "--output", str(out)])
    assert code == 1
    text = out.read_text()
    assert text.startswith("## redisguard drift report")
    assert "cannot connect to http://127.0.0.1:9" in text
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "terraform"], "argument --engine: invalid choice: 'terraform' (choose from 'pulumi', 'live', 'all')"),
        (["--format", "xml"], "argument --format: invalid choice: 'xml' (choose from 'table', 'json', 'markdown')"),
    ],
)
def test_a_bad_argument_exits_1_not_2_with_one_line_naming_the_allowed_values(args: list[str], message: str) -> None:
    # 2 means "drift found" to CI; argparse's own usage-error status would read as drift.
    result = run_cli("drift-report", "--config", str(REPO / "redisguard.yaml"), *args)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"redisguard drift-report: error: {message} (see redisguard drift-report --help)"]
    assert result.stdout == ""


def test_invalid_yaml_is_one_line_with_its_position(tmp_path: Path) -> None:
    config = tmp_path / "redisguard.yaml"
    # The unclosed `[` is on line 3; the parser only notices at line 4. The line to fix comes first.
    config.write_text("pulumi:\n  work_dir: program\n  stacks: [staging\n")
    result = run_cli("drift-report", "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"redisguard drift-report: error: {config}: line 3, column 11: in the flow sequence that starts here: "
        "did not find expected ',' or ']' (noticed at line 4, column 1)"
    ]


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    result = run_cli("drift-report", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"redisguard drift-report: error: {tmp_path / 'nope.yaml'}: config file not found"]


def test_a_live_check_counts_reading_its_stack_file_in_its_duration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Reading a large stack file is most of a live check (0.5 s for 1000 clusters); a duration
    # without it would tell a user the check is faster than it is.
    real_parse = stacks.parse_stack_file

    def slow_parse(text: str, path: Path) -> StackConfig:
        time.sleep(0.3)
        return real_parse(text, path)

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


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_hung_api_call_exits_at_once_with_one_line(tmp_path: Path, sig: signal.Signals) -> None:
    # An endpoint that accepts the connection and never answers: the listing would wait for
    # the whole request timeout (120 s here) if an interrupt waited for the running checks.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    config = tmp_path / "redisguard.yaml"
    config.write_text(
        f"pulumi:\n  work_dir: {REPO / 'program'}\n  stacks: [staging]\n"
        f"gcp:\n  redis_endpoint: http://127.0.0.1:{listener.getsockname()[1]}\n  request_timeout_seconds: 120\n"
    )
    scan = subprocess.Popen(
        [sys.executable, "-m", "redisguard.daemon.cli", "drift-report", "--config", str(config), "--engine", "live", "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: accepted, timeout=30, what="the listing request")
        scan.send_signal(sig)
        stdout, stderr = scan.communicate(timeout=15)  # a hang guard, far below the 120 s request timeout
    finally:
        scan.kill()
        listener.close()
        for conn in accepted:
            conn.close()
    assert scan.returncode == 128 + sig
    assert stdout == ""
    assert stderr.splitlines() == [
        f"redisguard drift-report: interrupted by {sig.name}; running checks were stopped, no report written"
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
    assert stack.error == f"list_instances projects/redisguard-staging/locations/-: cannot connect to http://127.0.0.1:{port}"


def test_check_config_of_an_empty_file_lists_each_missing_stack_file_under_one_header(tmp_path: Path) -> None:
    (tmp_path / "redisguard.yaml").write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "redisguard.daemon.cli", "check-config"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "redisguard check-config: error: redisguard.yaml: 2 problems in the stacks it names",
        f"  pulumi.stacks: 'staging' has no stack file {tmp_path / 'program' / 'Pulumi.staging.yaml'}",
        f"  pulumi.stacks: 'production' has no stack file {tmp_path / 'program' / 'Pulumi.production.yaml'}",
    ]


@pytest.mark.parametrize(
    ("args", "unrecognized"),
    [
        (["drift-report", "--engin", "live"], "--engin live"),
        (["drift-report", "--form", "json"], "--form json"),
        (["check-config", "--conf", "redisguard.yaml"], "--conf redisguard.yaml"),
        (["demo", "--no-proc"], "--no-proc"),
        (["emulator", "--redis-api-p", "0"], "--redis-api-p 0"),
    ],
)
def test_abbreviated_options_are_rejected(args: list[str], unrecognized: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"redisguard: error: unrecognized arguments: {unrecognized} (see redisguard --help)"]


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


def test_output_dash_is_stdout_not_a_file_named_dash(tmp_path: Path) -> None:
    config = tmp_path / "redisguard.yaml"
    config.write_text(
        f"pulumi:\n  work_dir: {REPO / 'program'}\n  stacks: [staging]\n"
        "gcp:\n  redis_endpoint: http://127.0.0.1:9\n  request_timeout_seconds: 2\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "redisguard.daemon.cli", "drift-report", "--config", str(config), "--engine", "live",
         "--format", "json", "--output", "-"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert json.loads(result.stdout)["stacks"][0]["stack"] == "staging"
    assert not (tmp_path / "-").exists()


def test_a_misspelt_stack_gets_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["drift-report", "--config", str(REPO / "redisguard.yaml"), "--stack", "stagin", "--engine", "live"])
    assert code == 1
    assert capsys.readouterr().err.strip().endswith(
        "--stack stagin: not in pulumi.stacks; allowed: staging, production; did you mean staging?"
    )


def test_log_level_is_accepted_after_the_subcommand(tmp_path: Path) -> None:
    config = tmp_path / "redisguard.yaml"
    config.write_text(f"pulumi:\n  work_dir: {REPO / 'program'}\n  stacks: [staging]\n")
    result = run_cli("check-config", "--config", str(config), "--log-level", "DEBUG")
    assert result.returncode == 0, result.stderr
    result = run_cli("drift-report", "--log-level", "DEBUG", "--config", str(config), "--engine", "pulumi",
                     env={**os.environ, "PATH": str(tmp_path)})  # fmt: skip
    assert "DEBUG redisguard.daemon.cli.reports effective config" in result.stderr


def test_markdown_and_json_show_paths_relative_to_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "program").mkdir()
    config = tmp_path / "redisguard.yaml"
    config.write_text("pulumi:\n  work_dir: program\n  stacks: [qa]\n")
    for fmt in ("markdown", "json"):
        out = tmp_path / f"drift.{fmt}"
        assert main(["drift-report", "--config", str(config), "--engine", "live", "--format", fmt, "--output", str(out)]) == 1
        text = out.read_text()
        assert "program/Pulumi.qa.yaml: stack file not found" in text
        assert str(tmp_path) not in text
