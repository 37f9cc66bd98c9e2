"""The daemon's HTTP side over real sockets: metrics from published results, /healthz, /report, TLS and basic auth."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from redisguard.core.errors import ConfigError
from redisguard.daemon.reports.drift import DriftItem, DriftReport, PropertyDrift, StackReport, render
from redisguard.daemon.service.health import Expectation
from redisguard.daemon.service.http import DaemonHTTPServer, bind, serve_in_thread
from redisguard.daemon.service.metrics import Exposition
from redisguard.daemon.service.results import CheckFailure, Results
from redisguard.daemon.service.site import Site
from redisguard.daemon.service.webconfig import WebConfig, load_web_config
from tests.fixtures.processes import free_port
from tests.fixtures.repo import REPO
from tests.fixtures.tls import Certificates, make_certificates

PASSWORD = "scrape-me-please"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


class Served:
    def __init__(self, results: Results, server: DaemonHTTPServer, expectations: list[Expectation]) -> None:
        self.results = results
        self.server = server
        self.expectations = expectations
        host, port = server.server_address[:2]
        self.base = f"{'https' if server.web.tls else 'http'}://127.0.0.1:{port}"

    def get(self, path: str, *, auth: tuple[str, str] | None = None, context: ssl.SSLContext | None = None) -> tuple[int, str, Any]:
        request = urllib.request.Request(self.base + path)
        if auth:
            request.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as response:
                return response.status, response.read().decode(), response.headers
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), exc.headers


def serve(results: Results, web: WebConfig, expectations: list[Expectation], owners: dict[str, str] | None = None) -> Served:
    site = Site(results, Exposition(results, lambda: owners or {}), lambda: (expectations, time.time() - 5))
    server = bind(f"127.0.0.1:{free_port()}", "127.0.0.1", 0, site, web)
    serve_in_thread(server)
    return Served(results, server, expectations)


@pytest.fixture
def plain() -> Iterator[Served]:
    results = Results()
    expectations = [
        Expectation("drift_live", ("staging", "production"), period_seconds=60, budget_seconds=30),
    ]
    served = serve(results, WebConfig.none(), expectations, owners={"redisguard-staging": "staging"})
    yield served
    served.server.shutdown()
    served.server.server_close()


def drifted(stack: str) -> StackReport:
    return StackReport.from_items(
        stack,
        "live",
        [
            DriftItem(resource="redis-sidekiq", kind="changed", properties=(PropertyDrift(path="memorySizeGb", expected=1, actual=2),)),
            DriftItem(resource="projects/redisguard-staging/locations/europe-west1/instances/stray", kind="unmanaged"),
        ],
        0.25,
    )


def test_metrics_follow_the_published_results_and_a_failure_hides_stale_values(plain: Served) -> None:
    plain.results.publish("drift_live", "staging", drifted("staging"))
    plain.results.publish("drift_live", "production", StackReport.from_items("production", "live", [], 0.1))
    status, text, headers = plain.get("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert value(text, "redisguard_drift_status", stack="staging", engine="live") == 1
    assert value(text, "redisguard_drift_status", stack="production", engine="live") == 0
    assert value(text, "redisguard_drifted_resources", stack="staging", engine="live") == 2
    assert value(
        text, "redisguard_drifted_resource",
        stack="staging", engine="live", resource="redis-sidekiq", type="gcp:redis/instance:Instance", kind="changed",
    ) == 1  # fmt: skip
    assert value(text, "redisguard_unmanaged_instances", project_id="redisguard-staging") == 1
    assert value(text, "redisguard_check_up", check="drift_live", target="staging") == 1
    assert value(text, "redisguard_check_duration_seconds", check="drift_live", target="staging") == 0.25
    assert value(text, "redisguard_check_failures_total", check="drift_live", target="staging") == 0
    assert value(text, "redisguard_build_info", version=_version()) == 1

    before = value(text, "redisguard_check_last_success_timestamp_seconds", check="drift_live", target="staging")
    plain.results.publish("drift_live", "staging", StackReport.failed("staging", "live", "ServiceUnavailable: try later", 2.0))
    _, text, _ = plain.get("/metrics")
    assert value(text, "redisguard_check_up", check="drift_live", target="staging") == 0
    assert value(text, "redisguard_check_failures_total", check="drift_live", target="staging") == 1
    assert value(text, "redisguard_check_last_success_timestamp_seconds", check="drift_live", target="staging") == before
    # The failed stack's drift is unknown now: no stale 1, no made-up 0.
    assert value(text, "redisguard_drift_status", stack="staging", engine="live") is None
    assert value(text, "redisguard_unmanaged_instances", project_id="redisguard-staging") is None
    # The other stack keeps its values.
    assert value(text, "redisguard_drift_status", stack="production", engine="live") == 0

    plain.results.retain("drift_live", ["production"])
    _, text, _ = plain.get("/metrics")
    assert not [key for key in samples(text) if ("target", "staging") in key[1] or ("stack", "staging") in key[1]]


def test_the_served_body_and_the_collector_give_the_same_samples(plain: Served) -> None:
    from prometheus_client import generate_latest

    plain.results.publish("drift_live", "staging", drifted("staging"))
    plain.results.publish("drift_live", "production", StackReport.failed("production", "live", "boom", 1.0))
    served = plain.server.site.exposition
    ours = {k: v for k, v in samples(served.render().decode()).items() if k[0].startswith("redisguard_")}
    collected = samples(generate_latest(served.registry).decode())
    assert ours == collected
    assert len(ours) > 10


def test_every_metric_has_help_text_with_its_meaning(plain: Served) -> None:
    plain.results.publish("drift_live", "staging", drifted("staging"))
    _, text, _ = plain.get("/metrics")
    helps = {f.name: f.documentation for f in text_string_to_metric_families(text) if f.name.startswith("redisguard_")}
    assert {"redisguard_check_up", "redisguard_drift_status", "redisguard_check_failures"} <= set(helps)
    assert all(len(doc) > 30 for doc in helps.values()), helps


def test_healthz_names_each_failing_or_pending_target(plain: Served) -> None:
    status, body, _ = plain.get("/healthz")
    assert status == 503
    problems = {(p["check"], p["target"]): p for p in json.loads(body)["problems"]}
    assert problems[("drift_live", "staging")]["status"] == "pending"

    plain.results.publish("drift_live", "staging", StackReport.failed("staging", "live", "TooManyRequests: quota", 1.0))
    plain.results.publish("drift_live", "production", StackReport.from_items("production", "live", [], 0.1))
    status, body, _ = plain.get("/healthz")
    assert status == 503
    assert json.loads(body)["problems"] == [
        {"check": "drift_live", "target": "staging", "status": "failed", "reason": "TooManyRequests: quota"}
    ]

    plain.results.publish("drift_live", "staging", drifted("staging"))  # drift is a finding, not a failure
    status, body, _ = plain.get("/healthz")
    assert status == 200, body
    assert json.loads(body)["status"] == "ok"

    # A success older than 3 periods + the run budget is stale.
    plain.results.publish("drift_live", "production", StackReport.from_items("production", "live", [], 0.1), now=time.time() - 600)
    status, body, _ = plain.get("/healthz")
    assert status == 503
    assert "last success 10m ago, limit 210s" in body


def test_report_serves_the_drift_report_model_as_json_and_markdown(plain: Served) -> None:
    plain.results.publish("drift_live", "staging", drifted("staging"))
    status, body, headers = plain.get("/report")
    assert status == 200 and headers["Content-Type"] == "application/json"
    report = json.loads(body)
    assert [s["stack"] for s in report["drift"]["stacks"]] == ["staging"]
    assert report["drift"]["stacks"][0]["items"][1]["resource"] == "projects/redisguard-staging/locations/europe-west1/instances/stray"
    status, markdown, headers = plain.get("/report?format=markdown")
    assert status == 200 and headers["Content-Type"].startswith("text/markdown")
    assert markdown.startswith("## redisguard drift report")
    assert "`memorySizeGb`" in markdown
    assert plain.get("/report?format=xml")[0] == 400
    assert plain.get("/nope")[0] == 404
    status, page, _ = plain.get("/")
    assert status == 200 and 'href="/metrics"' in page


def test_report_json_is_what_the_report_commands_write_with_each_failures_kind() -> None:
    from redisguard.daemon.reports.memory import MemoryReport, ProjectMemoryReport
    from redisguard.daemon.reports.memory import render as render_memory

    results = Results()
    site = Site(results, Exposition(results, dict), lambda: ([], time.time()))
    server = bind(f"127.0.0.1:{free_port()}", "127.0.0.1", 0, site, WebConfig.none())
    serve_in_thread(server)
    served = Served(results, server, [])
    try:
        results.publish("drift_live", "staging", drifted("staging"))
        # Targets whose check could not even start (the scheduler's CheckFailure): a 503 in the
        # set-up may pass on the next run, a config problem needs a person.
        results.publish("drift_live", "production", CheckFailure("the check failed: TransientError: 503", 1.0, "transient"))
        results.publish("memory", "redisguard-staging", CheckFailure("the check failed: TransientError: 503", 1.0, "transient"))
        results.publish("memory", "redisguard-production", CheckFailure("the check failed: ConfigError: bad", 1.0))
        status, body, _ = served.get("/report")
    finally:
        server.shutdown()
        server.server_close()
    assert status == 200
    report = json.loads(body)
    drift, memory = report["drift"], report["memory"]
    # The same document `drift-report --format json` and `memory-report --format json` write.
    head = ["schema_version", "tool_version", "generated_at", "exit_code", "summary"]
    assert list(drift)[:5] == head and list(memory)[:5] == head
    failed = StackReport.failed("production", "live", "the check failed: TransientError: 503", 1.0, kind="transient")
    expected_drift = DriftReport(generated_at=drift["generated_at"], stacks=(failed, drifted("staging")))
    assert drift == json.loads(render(expected_drift, "json"))
    assert drift["exit_code"] == 1 and drift["summary"]["errors"] == 1 and drift["summary"]["drift"] == 1
    assert drift["stacks"][0]["error_kind"] == "transient"
    expected_memory = MemoryReport(
        generated_at=memory["generated_at"],
        projects=(
            ProjectMemoryReport.failed("redisguard-production", "the check failed: ConfigError: bad", 1.0),
            ProjectMemoryReport.failed(
                "redisguard-staging", "the check failed: TransientError: 503", 1.0, kind="transient"
            ),
        ),
    )
    assert memory == json.loads(render_memory(expected_memory, "json"))
    assert [p["error_kind"] for p in memory["projects"]] == ["permanent", "transient"]
    assert memory["exit_code"] == 1 and memory["summary"]["errors"] == 2


def test_a_port_in_use_is_named(plain: Served) -> None:
    port = plain.server.server_address[1]
    site = plain.server.site
    with pytest.raises(ConfigError, match=rf"server.listen 127.0.0.1:{port}: cannot listen: address already in use"):
        bind(f"127.0.0.1:{port}", "127.0.0.1", port, site, WebConfig.none())


def test_ipv6_loopback_is_served(plain: Served) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        server = bind("[::1]:0", "::1", 0, plain.server.site, WebConfig.none())
    except ConfigError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    serve_in_thread(server)
    try:
        with urllib.request.urlopen(f"http://[::1]:{server.server_address[1]}/metrics", timeout=10) as response:
            assert response.status == 200
    finally:
        server.shutdown()
        server.server_close()


# --- TLS and basic auth -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def write_web_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


@pytest.fixture
def secured(tmp_path: Path, certs: Certificates) -> Iterator[Served]:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = load_web_config(
        write_web_config(
            tmp_path,
            f"""
tls_server_config:
  cert_file: {certs.server_cert}
  key_file: {certs.server_key}
basic_auth_users:
  prometheus: "{hashed}"
http_server_config:
  headers:
    X-Frame-Options: deny
""",
        )
    )
    served = serve(Results(), web, [])
    yield served
    served.server.shutdown()
    served.server.server_close()


def client_context(certs: Certificates) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs.ca))


def test_tls_with_basic_auth_serves_the_right_credentials_only(secured: Served, certs: Certificates) -> None:
    context = client_context(certs)
    status, text, headers = secured.get("/metrics", auth=("prometheus", PASSWORD), context=context)
    assert status == 200
    assert "redisguard_build_info" in text
    assert headers["X-Frame-Options"] == "deny"
    for auth in (("prometheus", "wrong"), ("someone", PASSWORD), None):
        status, _, headers = secured.get("/metrics", auth=auth, context=context)
        assert status == 401, auth
        assert headers["WWW-Authenticate"].startswith("Basic realm=")
    # Every path is behind the same credentials.
    assert secured.get("/healthz", context=context)[0] == 401


def test_plain_http_and_silent_clients_on_the_tls_port_do_not_hang_the_server(secured: Served, certs: Certificates) -> None:
    port = secured.server.server_address[1]
    silent = socket.create_connection(("127.0.0.1", port), timeout=10)  # connects, never says anything
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as plain_http:
            plain_http.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = plain_http.recv(4096)
        assert answer.startswith(b"HTTP/1.0 400 Bad Request")
        assert b"Client sent an HTTP request to an HTTPS server." in answer
        # Meanwhile TLS clients are served.
        status, _, _ = secured.get("/metrics", auth=("prometheus", PASSWORD), context=client_context(certs))
        assert status == 200
    finally:
        silent.close()


def test_a_client_certificate_can_be_required(tmp_path: Path, certs: Certificates) -> None:
    web = load_web_config(
        write_web_config(
            tmp_path,
            f"tls_server_config: {{cert_file: {certs.server_cert}, key_file: {certs.server_key}, client_ca_file: {certs.ca}}}\n",
        )
    )
    assert web.summary()["client_auth"] == "RequireAndVerifyClientCert"
    served = serve(Results(), web, [])
    try:
        without = client_context(certs)
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            served.get("/metrics", context=without)
        with_cert = client_context(certs)
        with_cert.load_cert_chain(str(certs.client_cert), str(certs.client_key))
        assert served.get("/metrics", context=with_cert)[0] == 200
    finally:
        served.server.shutdown()
        served.server.server_close()


def test_a_bad_web_config_lists_every_problem(tmp_path: Path, certs: Certificates) -> None:
    path = write_web_config(
        tmp_path,
        f"""
tls_server_config:
  cert_file: {certs.server_cert}
  key_file: {tmp_path / "missing.key"}
  client_auth_type: RequireAnyClientCert
  cipher_suites: [TLS_AES_128_GCM_SHA256]
basic_auth_users:
  prometheus: plain-text-password
http_server_config:
  headers: {{Server: nginx}}
unknown: 1
""",
    )
    with pytest.raises(ConfigError) as info:
        load_web_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: 5 problems in the web config")
    for line in [
        "tls_server_config.cipher_suites: an exporter-toolkit key redisguard does not support; remove it",
        "tls_server_config.client_auth_type: RequireAnyClientCert is not supported",
        "basic_auth_users: the password of prometheus is not a bcrypt hash",
        "http_server_config.headers: header Server may not be set; allowed: Strict-Transport-Security",
        "unknown: unknown key",
    ]:
        assert line in message
    assert "plain-text-password" not in message


def test_a_key_that_does_not_match_the_certificate_is_a_config_error(tmp_path: Path, certs: Certificates) -> None:
    path = write_web_config(tmp_path, f"tls_server_config: {{cert_file: {certs.server_cert}, key_file: {certs.other_key}}}\n")
    with pytest.raises(ConfigError, match="cannot use cert_file .* with key_file .*other.key"):
        load_web_config(path)


def test_relative_paths_in_a_web_config_are_taken_from_its_folder(tmp_path: Path, certs: Certificates) -> None:
    folder = certs.server_cert.parent
    path = folder / "web-relative.yml"
    path.write_text("tls_server_config: {cert_file: server.pem, key_file: server.key}\n")
    assert load_web_config(path).tls


def _version() -> str:
    from importlib.metadata import version

    return version("redisguard")


def test_check_config_names_web_config_problems_without_showing_a_password(tmp_path: Path) -> None:
    import subprocess
    import sys

    web = write_web_config(tmp_path, "basic_auth_users: {prometheus: hunter2-in-clear}\n")
    config = tmp_path / "redisguard.yaml"
    config.write_text(f"pulumi: {{work_dir: {REPO / 'program'}}}\nserver: {{web_config_file: {web.name}}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "redisguard.daemon.cli", "check-config", "--config", str(config)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"{web}: 1 problem in the web config" in result.stderr
    assert "basic_auth_users: the password of prometheus is not a bcrypt hash" in result.stderr
    assert "hunter2-in-clear" not in result.stderr + result.stdout


# --- log lines ----------------------------------------------------------------------------------


def test_log_lines_carry_stable_fields_as_text_or_json_and_never_a_known_secret() -> None:
    import io
    import logging

    from redisguard.daemon.service import logs

    root = logging.getLogger()
    for fmt in ("text", "json"):
        stream = io.StringIO()
        saved, level = list(root.handlers), root.level
        logs.configure(fmt, "INFO", lambda: ("s3cr3t-token",), stream=stream)
        try:
            logs.event(logging.getLogger("redisguard.test"), logging.WARNING, "check finished",
                       check="drift_live", target="staging", status="error", duration=1.5, error="token s3cr3t-token refused")  # fmt: skip
        finally:
            root.handlers[:] = saved
            root.setLevel(level)
        line = stream.getvalue().strip()
        assert "s3cr3t-token" not in line
        if fmt == "json":
            data = json.loads(line)
            assert (data["level"], data["message"], data["check"], data["target"], data["status"], data["duration"]) == (
                "WARNING", "check finished", "drift_live", "staging", "error", 1.5,
            )  # fmt: skip
            assert data["error"] == "token [redacted] refused"
        else:
            assert line.endswith(
                'WARNING redisguard.test check finished check=drift_live target=staging status=error duration=1.500 error="token [redacted] refused"'
            )
