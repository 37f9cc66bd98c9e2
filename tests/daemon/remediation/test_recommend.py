"""memory-report --recommend end to end: an instance filled with real writes in the emulator, the proposed memory_gb judged by the policy pack."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from redisguard.daemon.checks.memory import run_memory_check
from redisguard.daemon.cli.main import main
from redisguard.daemon.config import config_from_mapping
from redisguard.daemon.remediation.recommend import Bounds, recommend_size
from redisguard.daemon.reports.memory import InstanceMemory
from redisguard.policies.check import judge_stacks
from tests.fixtures.emulator import EmulatorHandle, start_emulator
from tests.fixtures.processes import wait_for
from tests.fixtures.repo import STAGING

GIB = 2**30


def test_a_growing_instance_is_sized_for_the_horizon_within_the_bounds() -> None:
    bounds = Bounds(min_gb=1, max_gb=16, min_gb_with_read_replicas=5, budget_gb=None, policy_config="test")
    memory = InstanceMemory(
        project_id="p", region="r", instance_id="i", stack="s", tier="BASIC", redis_version="REDIS_7_2", state="READY",
        capacity_bytes=4 * GIB, used_bytes=2.0 * GIB, max_bytes=4.0 * GIB, usage_ratio=0.5,
        time_to_full_seconds=20 * 86400.0,  # 0.1 GiB a day
    )  # fmt: skip
    # 2 GiB + 30 days x 0.1 GiB = 5 GiB; under 0.7 needs ceil(5 / 0.7) = 8 GB.
    assert recommend_size(memory, False, bounds, target=0.7, horizon=30 * 86400, warning=0.8)[0] == 8  # type: ignore[index]  # None here fails the test as a TypeError
    # Flat and half full: fits at 4 GB, and is not far below (2 / 0.7 = 3 GB > half of 4).
    flat = memory.model_copy(update={"time_to_full_seconds": None})
    assert recommend_size(flat, False, bounds, target=0.7, horizon=30 * 86400, warning=0.8) is None
    # Far below: 0.2 GiB used of 4 GB -> 1 GB; with read replicas never under 5 GB.
    idle = flat.model_copy(update={"used_bytes": 0.2 * GIB})
    assert recommend_size(idle, False, bounds, target=0.7, horizon=30 * 86400, warning=0.8)[0] == 1  # type: ignore[index]  # None here fails the test as a TypeError
    assert recommend_size(idle, True, bounds, target=0.7, horizon=1, warning=0.8) is None  # 5 GB floor > half of 4
    # Beyond the pack's maximum: the maximum, and the reason says so.
    huge = memory.model_copy(update={"time_to_full_seconds": 86400.0})
    size, why = recommend_size(huge, False, bounds, target=0.7, horizon=30 * 86400, warning=0.8)  # type: ignore[misc]  # None here fails the test as a TypeError
    assert size == 16 and "the bounds allow at most 16 GB" in why


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    """The staging fleet with redis-cache (1 GB) filled to 85 % of maxmemory by real writes."""
    emulator = start_emulator(tmp_path_factory.mktemp("recommend"), STAGING, sample_interval=0.1)
    try:
        emulator.fill("redis-cache", 0.85)
        config = config_from_mapping({"gcp": {"redis_endpoint": emulator.redis_endpoint, "monitoring_endpoint": emulator.monitoring_endpoint},
                                      "pulumi": {"work_dir": str(STAGING.parent), "stacks": ["staging"]}})  # fmt: skip
        wait_for(
            lambda: any((i.usage_ratio or 0) >= 0.8 for p in run_memory_check(config).projects for i in p.instances if i.instance_id == "redis-cache"),
            what="redis-cache's usage ratio to reach 0.8",
        )  # fmt: skip
        yield emulator
    finally:
        emulator.stop()


def _setup(tmp_path: Path, emulator: EmulatorHandle, **extra: object) -> tuple[Path, Path]:
    work = tmp_path / "program"
    work.mkdir()
    shutil.copy(STAGING, work / "Pulumi.staging.yaml")
    config = tmp_path / "redisguard.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "pulumi": {"work_dir": str(work), "stacks": ["staging"]},
                "gcp": {"redis_endpoint": emulator.redis_endpoint, "monitoring_endpoint": emulator.monitoring_endpoint},
                **extra,
            }
        )
    )
    return config, work / "Pulumi.staging.yaml"


def _memory_gb(stack_file: Path, name: str) -> int:
    clusters = yaml.safe_load(stack_file.read_text())["config"]["redis-fleet:redis"]
    return next(c["memory_gb"] for c in clusters if c["name"] == name)


@pytest.mark.slow
def test_recommendation_for_a_filled_instance_passes_the_policy_check(
    filled: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, stack_file = _setup(tmp_path, filled)
    report_file = tmp_path / "memory.json"
    capsys.readouterr()
    code = main(["memory-report", "--config", str(config), "--recommend", "--format", "json", "--output", str(report_file)])
    out, err = capsys.readouterr()
    assert code == 2, err  # the warning threshold is crossed
    assert "-      memory_gb: 1\n" in out and stack_file.read_text() == STAGING.read_text()  # proposed only

    code = main(["memory-report", "--config", str(config), "--recommend", "--write", "--format", "json", "--output", str(report_file)])
    assert code == 2  # a change, written
    size = _memory_gb(stack_file, "redis-cache")
    cache = next(i for i in json.loads(report_file.read_text())["projects"][0]["instances"] if i["instance_id"] == "redis-cache")
    per_gb = cache["max_bytes"] / (cache["capacity_bytes"] / GIB)
    assert size > 1
    assert cache["used_bytes"] / (per_gb * size) < 0.7  # under the target at current usage
    assert "# The original team's entry, unchanged." in stack_file.read_text()

    [verdict] = judge_stacks([("staging", stack_file)]).stacks
    assert verdict.error is None
    assert not verdict.blocked, verdict.violations
    assert not [v for v in verdict.violations if v.policy in ("memorystore-memory-bounds", "memorystore-stack-memory-budget")]

    capsys.readouterr()
    main(["memory-report", "--config", str(config), "--recommend", "--output", str(report_file)])
    out, err = capsys.readouterr()
    assert out == "" and "nothing to change" in err  # a second run proposes nothing


@pytest.mark.slow
def test_a_budget_too_small_is_named(filled: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, stack_file = _setup(tmp_path, filled)
    policy = tmp_path / "tight.json"
    policy.write_text(json.dumps({"memorystore-stack-memory-budget": {"maxTotalMemoryGb": 3}}))
    capsys.readouterr()
    main(["memory-report", "--config", str(config), "--recommend", "--write", "--policy-config", str(policy),
          "--output", str(tmp_path / "m.json")])  # fmt: skip
    out, err = capsys.readouterr()
    assert out == ""
    assert "memorystore-stack-memory-budget allows 3 GB in stack staging" in err and str(policy) in err
    assert "redis-cache 1 -> " in err
    assert stack_file.read_text() == STAGING.read_text()


@pytest.mark.slow
def test_recommend_exits_by_the_proposal_not_by_the_thresholds(
    filled: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rule of every command that proposes edits: 0 nothing to propose, 2 a change proposed
    (printed or written), 1 an error. Here no threshold is crossed (redis-cache at 0.85 of a 0.95
    warning ratio) yet a size is proposed: the memory report alone would exit 0."""
    config, stack_file = _setup(tmp_path, filled, thresholds={"memory_warning_ratio": 0.95, "memory_critical_ratio": 0.99})
    report_file = tmp_path / "memory.json"
    argv = ["memory-report", "--config", str(config), "--recommend", "--format", "json", "--output", str(report_file)]
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    assert json.loads(report_file.read_text())["exit_code"] == 0  # no threshold crossed
    assert code == 2, err  # but a change is proposed
    assert "-      memory_gb: 1\n" in out and stack_file.read_text() == STAGING.read_text()

    assert main([*argv, "--write"]) == 2  # a change, written
    assert _memory_gb(stack_file, "redis-cache") > 1

    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    assert (code, out) == (0, ""), err  # the stack file already says it: nothing to propose

    filled.inject_fault("monitoring", "partial")
    try:
        code = main(argv)
    finally:
        filled.clear_faults()
    assert code == 1  # the project's check failed: an error wins over whatever was proposed
    assert "error: project redisguard-staging" in capsys.readouterr().err
