"""The check registry is the one description of the daemon's checks: the config's schedules, the drift engines and the checks themselves agree with it."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from redisguard.daemon.checks.names import CHECK_NAMES
from redisguard.daemon.checks.registry import CHECKS, DRIFT_CHECK_OF, build_checks
from redisguard.daemon.config import ScheduleSettings, config_from_mapping
from redisguard.daemon.reports.drift import Engine

REPO = Path(__file__).resolve().parents[3]


def test_the_config_has_one_schedule_per_registered_check_in_the_same_order() -> None:
    assert tuple(ScheduleSettings.model_fields) == CHECK_NAMES == tuple(CHECKS)


def test_each_drift_engine_is_run_by_exactly_one_check() -> None:
    assert sorted(DRIFT_CHECK_OF) == sorted(get_args(Engine))
    assert {CHECKS[name].kind for name in DRIFT_CHECK_OF.values()} == {"drift"}


def test_every_enabled_check_is_built_under_its_registry_name(tmp_path: Path) -> None:
    pulumi = {"work_dir": str(REPO / "program"), "stacks": ["staging"]}
    config = config_from_mapping({"pulumi": pulumi}, source=str(tmp_path / "redisguard.yaml"), base_dir=tmp_path)
    checks = build_checks(config)
    assert list(checks) == list(CHECK_NAMES)
    assert all(check.name == name for name, check in checks.items())
