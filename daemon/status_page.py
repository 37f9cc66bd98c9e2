"""The page at `/`: a link list for now; the status page replaces `render` (same StatusView in, HTML out)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from redisguard.daemon.health import Health
from redisguard.daemon.report import DriftReport


@dataclass(frozen=True)
class StatusView:
    """Everything the page may show, taken from one snapshot of the results."""

    version: str
    health: Health
    drift: DriftReport
    memory: Any
    """The latest MemoryReport, or None while the memory check is off or has no result."""


def render(view: StatusView) -> str:
    state = "all checks healthy" if view.health.ok else f"{len(view.health.problems)} check target(s) failing or stale"
    links = [
        ("/metrics", "Prometheus metrics"),
        ("/healthz", "health (JSON; 503 when a check is failing or stale)"),
        ("/report", "latest drift and memory results (JSON)"),
        ("/report?format=markdown", "the same as Markdown"),
    ]
    items = "\n".join(f'    <li><a href="{href}">{html.escape(href)}</a> — {html.escape(text)}</li>' for href, text in links)
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>redisguard</title></head>\n<body>\n"
        f"  <h1>redisguard {html.escape(view.version)}</h1>\n  <p>{html.escape(state)}</p>\n  <ul>\n{items}\n  </ul>\n"
        "</body>\n</html>\n"
    )
