"""The daemon's HTTP side over real sockets: metrics from published results, /healthz, /report, where it listens."""

from __future__ import annotations

import json
import socket
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
from redisguard.daemon.service.metrics import Exposition
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
    assert not [key for key in parse_samples(text) if ("target", "staging") in key[1] or ("stack", "staging") in key[1]]


def test_the_served_body_and_the_collector_give_the_same_samples(plain: Served) -> None:
    from prometheus_client import generate_latest

    plain.results.publish("drift_live", "staging", drifted("staging"))
    plain.results.publish("drift_live", "production", StackReport.failed("production", "live", "boom", 1.0))
    served = plain.server.site.exposition
    ours = {k: v for k, v in parse_samples(served.render().decode()).items() if k[0].startswith("redisguard_")}
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
