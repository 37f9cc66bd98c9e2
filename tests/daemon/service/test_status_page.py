"""The status page as Chromium shows it, served by the daemon's HTTP server from published results.

These tests publish result models into `Results` the way the checks do, through the real
HTTP server, and read the page in a real browser (headless Debian Chromium, offline): what a
person sees, not the HTML source. The page of the real daemon against the emulator is in
test_status_page_daemon.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from redisguard.core.links import doc_url
from redisguard.daemon.config import config_from_mapping
from redisguard.daemon.fleet.pending import PendingChange, PendingProperty
from redisguard.daemon.reports.drift import DriftItem, PropertyDrift, StackReport
from redisguard.daemon.reports.memory import InstanceMemory, ProjectMemoryReport
from redisguard.daemon.service.health import Expectation
from redisguard.daemon.service.http import DaemonHTTPServer, bind, serve_in_thread
from redisguard.daemon.service.metrics import Exposition
from redisguard.daemon.service.results import Results
from redisguard.daemon.service.site import Site
from redisguard.daemon.service.status_page import UsageHistory, sparkline
from redisguard.daemon.service.webconfig import WebConfig
from tests.fixtures.browser import screenshot
from tests.fixtures.processes import free_port

PROJECT = "redisguard-staging"
HOSTILE = "<img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>&amp;"


def memory(instance_id: str, ratio: float | None, level: str, *, stack: str = "staging", state: str = "READY", ttf: float | None = None) -> InstanceMemory:
    max_bytes = 16 * 2**20
    return InstanceMemory(
        project_id=PROJECT,
        region="europe-west1",
        instance_id=instance_id,
        stack=stack,
        tier="BASIC",
        redis_version="REDIS_7_2",
        state=state,
        capacity_bytes=2**30,
        used_bytes=None if ratio is None else ratio * max_bytes,
        max_bytes=max_bytes,
        usage_ratio=ratio,
        system_memory_usage_ratio=0.31,
        time_to_full_seconds=ttf,
        level=level,
    )


class Served:
    def __init__(self, server: DaemonHTTPServer, results: Results, history: UsageHistory) -> None:
        self.server = server
        self.results = results
        self.history = history
        self.url = f"http://127.0.0.1:{server.server_address[1]}/"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    config_file = tmp_path / "redisguard.yaml"
    config = config_from_mapping(
        {
            "pulumi": {"stacks": ["staging", "production"], "backend_url": "https://user:hunter2-secret@state.example/x"},
            "schedules": {"drift_pulumi": "off", "drift_live": "5m", "memory": "1m"},
        },
        source=str(config_file),
        base_dir=tmp_path,
    )
    history = UsageHistory()
    results = Results(listeners=[history.observe])
    expectations = [
        Expectation("drift_live", ("staging", "production"), period_seconds=300, budget_seconds=30),
        Expectation("memory", (PROJECT,), period_seconds=60, budget_seconds=30),
    ]
    site = Site(
        results,
        Exposition(results),
        lambda: (expectations, time.time() - 5),
        config=lambda: (config, str(config_file)),
        history=history,
    )
    server = bind("127.0.0.1:0", "127.0.0.1", free_port(), site, WebConfig.none())
    serve_in_thread(server)
    yield Served(server, results, history)
    server.shutdown()
    server.server_close()


def publish_memory(served: Served, report: ProjectMemoryReport, at: float | None = None) -> None:
    served.results.publish("memory", report.project_id, report, now=at)


def open_page(browser: Browser, url: str) -> Page:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    response = page.goto(url)
    assert response is not None and response.status == 200
    return page


def test_drifted_property_and_failing_check_are_shown(served: Served, browser: Browser, tmp_path: Path) -> None:
    drifted = StackReport.from_items(
        "staging",
        "live",
        [
            DriftItem(resource="redis-cache", kind="changed", properties=(PropertyDrift(path="memorySizeGb", expected=1, actual=2),)),
            DriftItem(resource="projects/redisguard-staging/locations/europe-west1/instances/stray", kind="unmanaged"),
        ],
        0.04,
    ).model_copy(update={"source": "both", "pending": (PendingChange(
        resource="redis-sessions", change="update", properties=(PendingProperty(path="memorySizeGb", config=2, deployed=1),)),)})  # fmt: skip
    served.results.publish("drift_live", "staging", drifted)
    served.results.publish("drift_live", "production", StackReport.failed("production", "live", "the Memorystore API answered 503", 0.2))
    page = open_page(browser, served.url)
    screenshot(page, tmp_path, "drift")
    # The config ahead of the deployment, apart from the drift and said not to be drift.
    pending = page.locator('table.pending[data-stack="staging"] tr').all_inner_texts()
    assert [r.split("\t") for r in pending[1:]] == [["redis-sessions", "update", "memorySizeGb", "2", "1"]]
    assert "not drift" in page.locator("#drift").inner_text()

    staging = page.locator("#stack-staging")
    assert "drift" in staging.inner_text()
    rows = page.locator('table.drifted[data-stack="staging"] tr').all_inner_texts()
    assert any(r.split("\t")[1:6] == ["redis-cache", "changed", "memorySizeGb", "1", "2"] for r in rows), rows
    assert any("stray" in r and "unmanaged" in r for r in rows)
    # The pulumi engine is off in this config; production's live check failed, with its reason.
    assert page.locator('#stack-staging + table.engines tr[data-engine="pulumi"]').inner_text().split("\t")[1] == "off"
    assert "the Memorystore API answered 503" in page.locator("#drift").inner_text()
    failing = page.locator('table.checks tr[data-check="drift_live"][data-target="production"]')
    assert failing.locator(".badge").inner_text() == "failed"
    # The memory check has no result yet: pending, not ok; the page says there is none.
    assert "No memory results yet." in page.locator("#memory").inner_text()
    assert page.locator(f'table.checks tr[data-check="memory"][data-target="{PROJECT}"]').get_attribute("data-status") == "pending"
    page.close()


def test_memory_bars_are_coloured_by_threshold(served: Served, browser: Browser, tmp_path: Path) -> None:
    report = ProjectMemoryReport(
        project_id=PROJECT,
        status="threshold",
        duration_seconds=0.1,
        instances=(
            memory("redis-cache", 0.12, "ok"),
            memory("redis-sessions", 0.85, "warning", ttf=7300),
            memory("redis-sidekiq", 0.95, "critical", ttf=400),
            memory("redis-stray", None, "unknown", stack="", state="REPAIRING"),
        ),
    )
    now = time.time()
    for minute in range(10, 0, -1):
        publish_memory(served, report, at=now - minute * 60)
    page = open_page(browser, served.url)
    screenshot(page, tmp_path, "memory")

    def bar_colour(instance: str) -> str:
        return page.locator(f'tr[data-instance="{instance}"] .meter .fill').evaluate("e => getComputedStyle(e).backgroundColor")

    ok, warning, critical = bar_colour("redis-cache"), bar_colour("redis-sessions"), bar_colour("redis-sidekiq")
    assert len({ok, warning, critical}) == 3
    assert critical == "rgb(207, 34, 46)" and warning == "rgb(191, 135, 0)" and ok == "rgb(26, 127, 55)"
    sidekiq = page.locator('tr[data-instance="redis-sidekiq"]').inner_text()
    assert "95.0 %" in sidekiq and "critical" in sidekiq and "15.2 MiB / 16.0 MiB" in sidekiq and "6m" in sidekiq
    width = page.locator('tr[data-instance="redis-sidekiq"] .meter .fill').evaluate("e => e.getBoundingClientRect().width")
    total = page.locator('tr[data-instance="redis-sidekiq"] .meter').evaluate("e => e.getBoundingClientRect().width")
    assert width == pytest.approx(0.95 * total, abs=2)
    stray = page.locator('tr[data-instance="redis-stray"]').inner_text()
    assert "unmanaged" in stray and "REPAIRING" in stray
    # The sparkline: one polyline point per published run.
    points = page.locator('tr[data-instance="redis-sessions"] svg.spark polyline').get_attribute("points")
    assert points is not None and len(points.split()) == 10
    assert page.locator('tr[data-instance="redis-stray"] svg.spark').count() == 0
    page.close()


def test_hostile_values_are_shown_as_text_and_never_run(served: Served, browser: Browser, tmp_path: Path) -> None:
    """Label values are untrusted (the API limits them, a provider or a proxy may not): the page
    shows them as text, and no markup in them becomes an element or runs."""
    hostile = StackReport.from_items(
        "staging",
        "live",
        [
            DriftItem(
                resource=f"redis-{HOSTILE}",
                kind="changed",
                properties=(PropertyDrift(path=f"labels.{HOSTILE}", expected="platform", actual=HOSTILE),),
            )
        ],
        0.01,
    )
    served.results.publish("drift_live", "staging", hostile)
    served.results.publish("drift_live", "production", StackReport.failed("production", "live", f"API said {HOSTILE}", 0.1))
    page = open_page(browser, served.url)
    screenshot(page, tmp_path, "hostile")
    assert page.title() == "redisguard status"
    assert page.locator("main img, main script").count() == 0
    cells = page.locator('table.drifted[data-stack="staging"] tr').nth(1).locator("td").all_inner_texts()
    assert cells[1] == f"redis-{HOSTILE}" and cells[3] == f"labels.{HOSTILE}" and cells[5] == HOSTILE
    assert f"API said {HOSTILE}" in page.locator("#drift").inner_text()
    page.close()


def test_page_is_self_contained_and_shows_nothing_secret(served: Served, browser: Browser, monkeypatch: pytest.MonkeyPatch) -> None:
    token = "pul-0123456789abcdef-token"
    monkeypatch.setenv("PULUMI_ACCESS_TOKEN", token)
    served.results.publish("drift_live", "staging", StackReport.failed("staging", "live", f"the CLI printed {token}", 0.1))
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    response = page.goto(served.url)
    assert response is not None
    headers = response.headers
    assert "default-src 'none'" in headers["content-security-policy"]
    html = page.content()
    text = page.locator("body").inner_text()
    assert token not in html and "hunter2-secret" not in html
    assert "[redacted]" in text
    assert requests == [served.url], "the page loads nothing besides itself"
    # The config in use is shown, with the backend password redacted.
    config_text = page.locator("#config pre").inner_text()
    assert "backend_url: https://user:[redacted]@state.example/x" in config_text
    assert page.locator('meta[http-equiv="refresh"]').get_attribute("content") == "30"
    page.close()


def test_usage_history_forgets_deleted_instances_and_skips_failed_runs() -> None:
    history = UsageHistory(points=3)
    first = ProjectMemoryReport(project_id=PROJECT, status="ok", duration_seconds=0.1, instances=(memory("a", 0.1, "ok"), memory("b", 0.2, "ok")))
    for at in range(5):
        history.record(first, float(at))
    assert [r for _, r in history.series((PROJECT, "europe-west1", "a"))] == [0.1, 0.1, 0.1]
    history.record(ProjectMemoryReport.failed(PROJECT, "503", 0.1), 10.0)
    assert len(history.series((PROJECT, "europe-west1", "a"))) == 3
    history.record(ProjectMemoryReport(project_id=PROJECT, status="ok", duration_seconds=0.1, instances=(memory("a", 0.5, "ok"),)), 11.0)
    assert history.series((PROJECT, "europe-west1", "b")) == ()
    assert history.series((PROJECT, "europe-west1", "a"))[-1] == (11.0, 0.5)


def test_sparkline_draws_on_a_fixed_scale() -> None:
    line = sparkline([(0.0, 0.0), (60.0, 0.5), (120.0, 1.0)], 0.8, 0.9, width=100, height=20)
    assert line is not None
    ys = [float(p.split(",")[1]) for p in line.points.split()]
    assert ys[0] > ys[1] > ys[2]  # higher usage is higher on the page
    assert ys[2] == pytest.approx(1.5) and ys[0] == pytest.approx(18.5)
    assert line.critical_y < line.warning_y
    assert sparkline([(0.0, 0.4)], 0.8, 0.9) is None


@pytest.mark.parametrize("width", [1280, 390], ids=["laptop-1280px", "phone-390px"])
def test_page_fits_the_screen_without_scrolling_sideways(served: Served, browser: Browser, tmp_path: Path, width: int) -> None:
    """A busy fleet (long instance names, failing checks with long reasons, long drifted paths) on a
    1280 px laptop shows every column, the trend last, with no sideways scroll; on a 390 px phone the
    page does not scroll sideways either and each instance's name and memory bar are on screen."""
    now = time.time()
    instances = tuple(
        memory(f"redis-{name}-europe-west1-primary", ratio, level, ttf=ttf)
        for name, ratio, level, ttf in [("sessions", 0.85, "warning", 7300.0), ("sidekiq-jobs", 0.95, "critical", 400.0), ("cache", 0.12, "ok", None)]
    )
    for minute in range(10, 0, -1):
        publish_memory(served, ProjectMemoryReport(project_id=PROJECT, status="threshold", duration_seconds=0.1, instances=instances), at=now - minute * 60)
    long_path = "redisConfigs.notify-keyspace-events"
    served.results.publish(
        "drift_live",
        "staging",
        StackReport.from_items("staging", "live", [DriftItem(resource="redis-sessions-europe-west1-primary", kind="changed", properties=(PropertyDrift(path=long_path, expected="", actual="KEA" * 20),))], 0.04),
    )
    reason = "the Memorystore API answered 503 Service Unavailable: " + "the service is currently unavailable; retry later " * 3
    served.results.publish("drift_live", "production", StackReport.failed("production", "live", reason, 0.2))
    page = browser.new_page(viewport={"width": width, "height": 900})
    response = page.goto(served.url)
    assert response is not None and response.status == 200
    screenshot(page, tmp_path, f"width-{width}")

    assert page.evaluate("document.documentElement.scrollWidth") <= width, "the page scrolls sideways"
    row = page.locator(f'tr[data-instance="{instances[1].instance_id}"]')
    for part in ("strong", ".meter"):
        box = row.locator(part).bounding_box()
        assert box is not None and 0 <= box["x"] and box["x"] + box["width"] <= width, f"{part} is off-screen at {width} px"
    if width >= 1280:
        for table in page.locator("table").all():
            box = table.bounding_box()
            assert box is not None and box["x"] + box["width"] <= width, f"a table is wider than {width} px"
        trend = row.locator("svg.spark").bounding_box()
        assert trend is not None and trend["x"] + trend["width"] <= width, "the trend column is off-screen"
    assert page.locator(f'a[href="{doc_url("status-page.md")}"]').count() == 1
    page.close()
