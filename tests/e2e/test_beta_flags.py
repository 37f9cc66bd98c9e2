"""beta_flags under the real engine, the original team's story: a cluster's `gcloud beta redis instances update`
runs through the real `pulumi-resource-command`, once per lifecycle, never half-recorded.

The program runs as a user runs it: the real `pulumi` CLI and Python language host in a copy of
program/ laid out like the repository (`Pulumi.yaml` as shipped), against the emulator through the
stand-in gcp provider, with a stand-in `gcloud` first on PATH that logs each call and the instance
as it was then (state and tier). One stack, one emulator; the steps build on each other, in one test.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.emulator import EmulatorHandle, start_emulator
from tests.fixtures.gcloud import StandinGcloud, install_gcloud, path_without
from tests.fixtures.pulumi_engine import Engine, user_checkout

pytestmark = pytest.mark.slow

PROJECT, REGION, NAME = "redisguard-beta", "europe-west1", "redis-beta"
ON_THE_HOUR = {"apply": {"persistence-mode": "rdb", "rdb-snapshot-period": "1h"}, "revert": {"persistence-mode": "disabled"}}
EVERY_SIX_HOURS = {"apply": {"persistence-mode": "rdb", "rdb-snapshot-period": "6h"}, "revert": {"persistence-mode": "disabled"}}
GCLOUD_ERROR = "ERROR: (gcloud.beta.redis.instances.update) INVALID_ARGUMENT: persistence is not supported in this zone"


def _update(*flags: str) -> list[str]:
    return ["beta", "redis", "instances", "update", NAME, "--quiet", f"--project={PROJECT}", f"--region={REGION}", *flags]


APPLY_HOURLY = _update("--persistence-mode=rdb", "--rdb-snapshot-period=1h")
APPLY_SIX_HOURLY = _update("--persistence-mode=rdb", "--rdb-snapshot-period=6h")
REVERT = _update("--persistence-mode=disabled")
BASIC, STANDARD_HA = {"state": "READY", "tier": "BASIC"}, {"state": "READY", "tier": "STANDARD_HA"}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory, engine: Engine) -> Iterator[EmulatorHandle]:
    handle = start_emulator(tmp_path_factory.mktemp("beta-emulator"), project=PROJECT, region=REGION)
    yield handle
    handle.stop()


class Checkout:
    """program/ as a user has it, one stack in it, and `pulumi` typed there."""

    def __init__(self, engine: Engine, emulator: EmulatorHandle, gcloud: StandinGcloud, root: Path) -> None:
        self.engine, self.emulator, self.gcloud, self.root = engine, emulator, gcloud, root
        self.program = user_checkout(root / "checkout") / "program"
        self.stack_file = self.program / "Pulumi.beta.yaml"

    def pulumi(self, *args: str, gcloud: str = "ok") -> subprocess.CompletedProcess[str]:
        """`pulumi ARGS --stack beta` in program/; gcloud is "ok", "fails" (GCLOUD_ERROR) or "missing" from PATH."""
        if gcloud == "missing":
            env = {"PATH": path_without("gcloud", self.engine.subprocess_env()["PATH"], self.root / "no-gcloud")}
        else:
            env = {"PATH": f"{self.gcloud.bin_dir}:{self.engine.subprocess_env()['PATH']}"}
            env.update(self.gcloud.env(exit_code=1, stderr=GCLOUD_ERROR) if gcloud == "fails" else self.gcloud.env())
        return self.engine.pulumi(self.program, *args, "--stack", "beta", env=env)

    def set_flags(self, flags: dict[str, Any] | None, tier: str = "BASIC") -> None:
        """Edit the stack file as a user does: one cluster, with these beta_flags or none."""
        document = yaml.safe_load(self.stack_file.read_text())
        cluster: dict[str, Any] = {
            "name": NAME, "memory_gb": 1, "tier": tier, "redis_version": "REDIS_7_2", "deletion_protection": False,
        }  # fmt: skip
        if flags is not None:
            cluster["beta_flags"] = flags
        document.setdefault("config", {}).update(
            {
                "gcp:project": PROJECT,
                "gcp:region": REGION,
                "gcp:redisCustomEndpoint": f"{self.emulator.redis_endpoint}/v1/",
                "redis-fleet:redis": [cluster],
            }
        )
        self.stack_file.write_text(yaml.safe_dump(document, sort_keys=False))

    def commands_in_state(self) -> list[dict[str, Any]]:
        """The beta-flags commands the stack's state records (and it has no operation left pending)."""
        exported = json.loads(_ok(self.pulumi("stack", "export")).stdout)
        assert not exported["deployment"].get("pending_operations"), exported["deployment"]["pending_operations"]
        return [r for r in exported["deployment"].get("resources", []) if r["type"] == "command:local:Command"]


def _ok(run: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert run.returncode == 0, run.stdout + run.stderr
    return run


def _failed_up(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode != 0, run.stdout + run.stderr
    return run.stdout + run.stderr


def test_beta_flags_run_once_per_lifecycle_through_the_real_command_provider(
    engine: Engine, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    gcloud = install_gcloud(tmp_path / "gcloud", emulator.redis_endpoint)
    user = Checkout(engine, emulator, gcloud, tmp_path)
    _ok(user.pulumi("stack", "init"))
    user.set_flags(ON_THE_HOUR)

    # up (with its preview, which runs nothing): apply once, after the instance exists.
    _ok(user.pulumi("up", "--yes"))
    assert gcloud.take_calls() == [{"args": APPLY_HOURLY, "instance": BASIC}]
    (recorded,) = user.commands_in_state()
    assert recorded["parent"].endswith(f"gcp:redis/instance:Instance::{NAME}")

    # An unchanged up runs nothing.
    _ok(user.pulumi("up", "--yes", "--skip-preview"))
    assert gcloud.take_calls() == []

    # New flags: the old revert, then the new apply.
    user.set_flags(EVERY_SIX_HOURS)
    _ok(user.pulumi("up", "--yes", "--skip-preview"))
    assert [c["args"] for c in gcloud.take_calls()] == [REVERT, APPLY_SIX_HOURLY]

    # No flags: revert; the instance stays.
    user.set_flags(None)
    _ok(user.pulumi("up", "--yes", "--skip-preview"))
    assert gcloud.take_calls() == [{"args": REVERT, "instance": BASIC}]
    assert user.commands_in_state() == []

    # gcloud fails: the up fails with gcloud's own message, and nothing claims the flags applied.
    user.set_flags(ON_THE_HOUR)
    output = _failed_up(user.pulumi("up", "--yes", "--skip-preview", gcloud="fails"))
    assert GCLOUD_ERROR in output
    assert [c["args"] for c in gcloud.take_calls()] == [APPLY_HOURLY]
    assert user.commands_in_state() == []

    # gcloud missing: the up fails saying so, and again nothing is recorded.
    output = _failed_up(user.pulumi("up", "--yes", "--skip-preview", gcloud="missing"))
    assert "gcloud: not found" in output
    assert user.commands_in_state() == []

    # The next up retries: apply runs again.
    _ok(user.pulumi("up", "--yes", "--skip-preview"))
    assert gcloud.take_calls() == [{"args": APPLY_HOURLY, "instance": BASIC}]

    # A replaced instance (a new tier) is replaced with its command: revert on the old one, then apply on the new.
    user.set_flags(ON_THE_HOUR, tier="STANDARD_HA")
    _ok(user.pulumi("up", "--yes", "--skip-preview"))
    assert gcloud.take_calls() == [{"args": REVERT, "instance": BASIC}, {"args": APPLY_HOURLY, "instance": STANDARD_HA}]

    # destroy: revert while the instance is still there, then the instance goes.
    _ok(user.pulumi("destroy", "--yes", "--skip-preview"))
    assert gcloud.take_calls() == [{"args": REVERT, "instance": STANDARD_HA}]
    assert list(emulator.redis_client().list_instances(parent=emulator.parent())) == []
