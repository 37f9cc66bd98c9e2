"""The daemon's HTTP side over real sockets: metrics from published results, /healthz, /report, where it listens."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from redisguard.core.errors import ConfigError
from redisguard.daemon.reports.drift import DriftItem, DriftReport, PropertyDrift, StackReport, render
from redisguard.daemon.service.health import Expectation
from redisguard.daemon.service.http import bind, serve_in_thread
from redisguard.daemon.service.metrics import FAMILIES, Exposition
from redisguard.daemon.service.results import CheckFailure, Results
from redisguard.daemon.service.site import Site
from redisguard.daemon.service.webconfig import WebConfig
from tests.fixtures.daemon import parse_samples
from tests.fixtures.http_server import Served, serve
from tests.fixtures.processes import free_port


def value(text: str, name: str, **labels: str) -> float | None:
    return parse_samples(text).get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def plain() -> Iterator[Served]:
    results = Results()
    expectations = [
        Expectation("drift_live", ("staging", "production"), period_seconds=60, budget_seconds=30),
    ]
    served = serve(results, WebConfig.none(), expectations)
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
    ).model_copy(update={"unmanaged_projects": ("redisguard-staging",)})


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
    assert not [key for key in parse_samples(text) if ("target", "staging") in key[1] or ("stack", "staging") in key[1]]


def test_the_served_body_and_the_collector_give_the_same_samples(plain: Served) -> None:
    from prometheus_client import generate_latest

    plain.results.publish("drift_live", "staging", drifted("staging"))
    plain.results.publish("drift_live", "production", StackReport.failed("production", "live", "boom", 1.0))
    served = plain.server.site.exposition
    ours = {k: v for k, v in parse_samples(served.render()[0].decode()).items() if k[0].startswith("redisguard_")}
    collected = parse_samples(generate_latest(served.registry).decode())
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


def _version() -> str:
    from importlib.metadata import version

    return version("redisguard")


# What Prometheus 3 sends by default (its scrape_protocols, without the protobuf one) and what Prometheus 2 sent.
PROMETHEUS_3_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
PROMETHEUS_2_ACCEPT = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"


def _openmetrics_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parse_openmetrics(text)  # strict: refuses a body without its one `# EOF`
        for s in family.samples
    }


def test_metrics_are_openmetrics_when_the_scraper_asks_and_the_text_format_otherwise(plain: Served) -> None:
    plain.results.publish("drift_live", "staging", drifted("staging"))
    plain.results.publish("drift_live", "production", StackReport.failed("production", "live", "boom", 1.0))
    _, text, headers = plain.get("/metrics")
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# EOF" not in text
    for accept in (PROMETHEUS_3_ACCEPT, PROMETHEUS_2_ACCEPT, "application/openmetrics-text"):
        status, body, headers = plain.get("/metrics", headers={"Accept": accept})
        assert status == 200
        assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0; charset=utf-8"), accept
        assert body.endswith("# EOF\n") and body.count("# EOF") == 1
        assert "# TYPE redisguard_check_failures counter\n" in body  # OpenMetrics names the family, not its _total
        ours = {k: v for k, v in _openmetrics_samples(body).items() if k[0].startswith("redisguard_")}
        assert ours == {k: v for k, v in parse_samples(text).items() if k[0].startswith("redisguard_")}
    # A scraper that asks only for the text format gets it.
    _, _, headers = plain.get("/metrics", headers={"Accept": "text/plain;version=0.0.4"})
    assert headers["Content-Type"].startswith("text/plain")


def test_both_metrics_formats_pass_promtool_check_metrics(plain: Served) -> None:
    from tests.fixtures.alerting import tool

    plain.results.publish("drift_live", "staging", drifted("staging"))

    def promtool(body: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([tool("promtool"), "check", "metrics"], input=body, capture_output=True, text=True, timeout=60)

    _, text, _ = plain.get("/metrics")
    result = promtool(text)
    assert result.returncode == 0, result.stdout + result.stderr
    _, openmetrics_body, _ = plain.get("/metrics", headers={"Accept": PROMETHEUS_3_ACCEPT})
    _openmetrics_samples(openmetrics_body)  # the OpenMetrics grammar, strictly
    # promtool reads only the text format (promlint over the 0.0.4 parser, in 2.x and 3.x alike): an
    # OpenMetrics counter's `_total` samples look to it like a family without HELP. Anything else is a finding.
    result = promtool(openmetrics_body)
    counters = {f.sample_name for f in FAMILIES.values() if f.kind == "counter"} | {"process_cpu_seconds_total"}
    problems = [line for line in result.stderr.splitlines() if line.strip()]
    assert problems and all(p.split(" ", 1)[1] == "no help text" and p.split(" ", 1)[0] in counters for p in problems), problems


def test_the_server_header_names_redisguard_without_a_trailing_space(plain: Served) -> None:
    port = plain.server.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    servers = [line for line in head.split(b"\r\n") if line.lower().startswith(b"server:")]
    assert servers == [b"Server: redisguard"]
