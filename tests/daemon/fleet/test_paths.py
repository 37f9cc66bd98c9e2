"""Property paths in one form whatever the engine prints."""

from __future__ import annotations

import pytest

from redisguard.daemon.fleet.paths import normalize_path, parse_path


@pytest.mark.parametrize(
    ("raw", "parts", "canonical"),
    [
        ("memorySizeGb", ("memorySizeGb",), "memorySizeGb"),
        ('redisConfigs["maxmemory-policy"]', ("redisConfigs", "maxmemory-policy"), "redisConfigs.maxmemory-policy"),
        ("labels.last-touched-by", ("labels", "last-touched-by"), "labels.last-touched-by"),
        (
            "maintenancePolicy.weeklyMaintenanceWindows[0].startTime.hours",
            ("maintenancePolicy", "weeklyMaintenanceWindows", 0, "startTime", "hours"),
            "maintenancePolicy.weeklyMaintenanceWindows[0].startTime.hours",
        ),
        ('labels["a.b"]', ("labels", "a.b"), 'labels["a.b"]'),
    ],
)
def test_paths_parse_into_keys_and_indexes(raw: str, parts: tuple, canonical: str) -> None:
    assert parse_path(raw) == parts
    assert normalize_path(raw) == canonical
