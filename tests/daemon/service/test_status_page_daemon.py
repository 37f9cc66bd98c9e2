"""The status page of the real `redisguard daemon` against the emulator, as Chromium shows it.

One daemon process watches the staging fleet (real redis-servers) behind TLS and basic auth.
A person opening the page sees an out-of-band change as a drifted instance and property, and a
filled instance as a red bar; without credentials there is no page.
"""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import yaml
from google.cloud import redis_v1
from google.protobuf import field_mask_pb2
from playwright.sync_api import Browser, BrowserContext, Page

from redisguard.core.processes import die_with_parent_argv
from tests.fixtures.browser import screenshot
from tests.fixtures.emulator import EmulatorHandle, start_emulator
from tests.fixtures.http_get import http_get
from tests.fixtures.processes import free_port, wait_for
from tests.fixtures.repo import STAGING
from tests.fixtures.tls import Certificates, make_certificates

USER, PASSWORD = "oncall", "page-me-please"
pytestmark = pytest.mark.slow


class Daemon:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path, certs: Certificates) -> None:
        self.process, self.url, self.log, self.certs = process, url, log, certs

    def get(self, path: str, auth: tuple[str, str] | None) -> int:
        context = ssl.create_default_context(cafile=str(self.certs.ca))
        return http_get(self.url + path, auth=auth, context=context)[0]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    handle = start_emulator(tmp_path_factory.mktemp("status-emulator"), fleet=STAGING, sample_interval=0.1)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def daemon(emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    folder = tmp_path_factory.mktemp("status-daemon")
    certs = make_certificates(folder / "certs")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = folder / "web.yml"
    web.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key)},
                "basic_auth_users": {USER: hashed},
            }
        )
    )
    port = free_port()
    config = folder / "redisguard.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "pulumi": {"work_dir": str(STAGING.parent), "stacks": ["staging"]},
                "gcp": {"redis_endpoint": emulator.redis_endpoint, "monitoring_endpoint": emulator.monitoring_endpoint},
                "server": {"listen": f"127.0.0.1:{port}", "web_config_file": str(web)},
                "schedules": {"drift_pulumi": "off", "drift_live": "1s", "memory": "1s", "compliance": "off"},
            }
        )
    )
    log = folder / "daemon.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            die_with_parent_argv([sys.executable, "-m", "redisguard.daemon.cli", "daemon", "--config", str(config)]),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=folder,
        )
    handle = Daemon(process, f"https://localhost:{port}", log, certs)
    try:
        wait_for(lambda: process.poll() is None and handle.get("/healthz", (USER, PASSWORD)) == 200, timeout=60, what="the daemon's checks to pass")
        yield handle
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def context(browser: Browser, daemon: Daemon) -> Iterator[BrowserContext]:
    # The test CA is not in Chromium's store: the certificate is checked by the urllib requests above.
    ctx = browser.new_context(
        http_credentials={"username": USER, "password": PASSWORD},
        ignore_https_errors=True,
        viewport={"width": 1400, "height": 1000},
    )
    yield ctx
    ctx.close()


def reload_until(page: Page, url: str, selector: str, text: str, timeout: float = 60) -> str:
    """Reload the page (as its own refresh does) until `selector` shows `text`; what it shows then."""

    def shown() -> str | None:
        page.goto(url)
        found = page.locator(selector)
        content = " | ".join(found.all_inner_texts()) if found.count() else ""
        return content if text in content else None

    return wait_for(shown, timeout=timeout, interval=1.0, what=f"{selector} to show {text!r}")


def test_the_page_needs_the_same_credentials_as_metrics(daemon: Daemon) -> None:
    assert daemon.get("/", None) == 401
    assert daemon.get("/", (USER, "wrong")) == 401
    assert daemon.get("/", (USER, PASSWORD)) == 200
    assert daemon.get("/metrics", None) == 401


def test_out_of_band_change_shows_the_drifted_instance_and_property(
    daemon: Daemon, emulator: EmulatorHandle, context: BrowserContext, tmp_path: Path
) -> None:
    page = context.new_page()
    page.goto(daemon.url + "/")
    assert page.locator("#stack-staging .badge").inner_text() == "in sync"
    client = emulator.redis_client()
    name = emulator.instance_name("redis-cache")
    instance = client.get_instance(name=name)
    labels = dict(instance.labels) | {"team": "intruders"}
    client.update_instance(
        instance=redis_v1.Instance(name=name, labels=labels), update_mask=field_mask_pb2.FieldMask(paths=["labels"])
    ).result(timeout=60)

    rows = reload_until(page, daemon.url + "/", 'table.drifted[data-stack="staging"] tr', "labels.team")
    screenshot(page, tmp_path, "drift")
    assert page.locator("#stack-staging .badge").inner_text() == "drift"
    row = page.locator('table.drifted[data-stack="staging"] tr', has_text="labels.team").inner_text().split("\t")
    assert row[1:6] == ["redis-cache", "changed", "labels.team", "platform", "intruders"], rows
    assert "drift" in page.locator('#stack-staging + table.engines tr[data-engine="live"]').inner_text()
    page.close()


def test_filled_instance_shows_a_red_bar(daemon: Daemon, emulator: EmulatorHandle, context: BrowserContext, tmp_path: Path) -> None:
    # Real writes until INFO says 93 % of maxmemory: over the critical ratio (0.9).
    emulator.fill("redis-sidekiq", 0.93)
    auth = emulator.redis_client().get_instance_auth_string(name=emulator.instance_name("redis-sidekiq")).auth_string

    page = context.new_page()
    reload_until(page, daemon.url + "/", 'tr[data-instance="redis-sidekiq"]', "critical")
    screenshot(page, tmp_path, "memory")
    row = page.locator('tr[data-instance="redis-sidekiq"]')
    colour = row.locator(".meter .fill").evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(207, 34, 46)"  # the critical red
    percent = float(row.locator(".pct").inner_text().rstrip(" %"))
    assert percent >= 90
    other = page.locator('tr[data-instance="redis-cache"] .meter .fill').evaluate("e => getComputedStyle(e).backgroundColor")
    assert other == "rgb(26, 127, 55)"  # an instance below its thresholds stays green
    # The trend is drawn from the results the daemon took since it started.
    assert page.locator('tr[data-instance="redis-sidekiq"] svg.spark polyline').count() == 1
    assert auth not in page.content()  # the instance's AUTH string is never on the page
    page.close()
