"""The daemon's log lines: text with stable key=value fields, or one JSON object per line; known secrets scrubbed."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from redisguard.core.secrets import scrub
from redisguard.daemon.config import LogFormat

# The `extra` key that carries an event's fields to the formatters.
FIELDS = "redisguard_fields"


def _value(value: Any) -> str:
    """A field value for a text line, never holding a space outside quotes (a line splits on spaces):
    a plain word bare, other text JSON-quoted, a mapping or list as compact JSON."""
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    text = str(value)
    if text and all(c.isalnum() or c in "-_./:@[]" for c in text):
        return text
    return json.dumps(text)


def event(logger: logging.Logger, level: int, message: str, /, **fields: Any) -> None:
    """Log `message` with `fields`: `message k=v k=v` as text, keys of their own in JSON."""
    if logger.isEnabledFor(level):
        logger.log(level, message, extra={FIELDS: fields})


class _Scrubbing(logging.Formatter):
    def __init__(self, secrets: Callable[[], Sequence[str]]) -> None:
        super().__init__()
        self.secrets = secrets

    def _time(self, record: logging.LogRecord) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(_Scrubbing):
    """`2026-12-01T23:12:28.123Z INFO redisguard.daemon.service.scheduler check finished check=memory target=p status=ok duration=0.12`"""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, FIELDS, None) or {}
        line = f"{self._time(record)} {record.levelname} {record.name} {record.getMessage()}"
        if fields:
            line += " " + " ".join(f"{key}={_value(value)}" for key, value in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return scrub(line, self.secrets())


class JsonFormatter(_Scrubbing):
    """`{"time": ..., "level": "INFO", "logger": ..., "message": ..., "check": "memory", ...}`"""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self._time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in (getattr(record, FIELDS, None) or {}).items():
            data.setdefault(key, value)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return scrub(json.dumps(data, default=str), self.secrets())


def configure(fmt: LogFormat, level: str | int, secrets: Callable[[], Sequence[str]], stream: TextIO | None = None) -> None:
    """Send every log line (ours and the libraries') to stderr in `fmt`, replacing the CLI's default handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(secrets) if fmt == "json" else TextFormatter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # APScheduler logs every job start and end at INFO; the daemon logs its own line per target.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
