"""The daemon's log lines: stable key=value fields as text or JSON, and never a known secret."""

from __future__ import annotations

import json


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
