"""A stack's policy-pack config read in process (remediation, recommend) as the engine reads it for `pulumi preview`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redisguard.core.errors import ConfigError
from redisguard.policies.config import MemoryBoundsConfig
from redisguard.policies.pack_config import PACK_DIR, default_config_file, stack_policy_config


def _config(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(data))
    return path


def test_the_shipped_stack_file_is_the_default_and_a_stack_without_one_gets_the_packs_defaults() -> None:
    assert default_config_file("production") == PACK_DIR / "config" / "production.json"
    assert stack_policy_config("production").options("memorystore-memory-bounds", MemoryBoundsConfig).max_memory_gb == 100
    defaults = stack_policy_config("no-such-stack")
    assert defaults.path is None and defaults.source == "the pack's defaults"
    assert defaults.level("memorystore-cmek-in-production", "advisory") == "advisory"


def test_levels_follow_the_engine_an_entry_over_all_over_the_policys_own(tmp_path: Path) -> None:
    path = _config(tmp_path, {"all": "disabled", "memorystore-auth-required": "mandatory",
                              "memorystore-memory-bounds": {"maxMemoryGb": 16}})  # fmt: skip

    config = stack_policy_config("staging", path)

    assert config.level("memorystore-auth-required", "advisory") == "mandatory"  # the string form
    assert config.level("memorystore-memory-bounds", "mandatory") == "disabled"  # options only: `all` sets its level
    assert config.options("memorystore-memory-bounds", MemoryBoundsConfig).max_memory_gb == 16


def test_an_empty_file_is_no_config_as_for_the_engine(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("\n")

    assert stack_policy_config("staging", path).level("memorystore-memory-bounds", "mandatory") == "mandatory"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", "cannot read the policy config"),
        (json.dumps(["memorystore-memory-bounds"]), "a policy config is a JSON object"),
        (json.dumps({"memorystore-memory-bounds": "blocking"}), '"blocking" is not a valid enforcement level'),
    ],
)
def test_an_unreadable_or_invalid_file_is_a_config_error_naming_it(tmp_path: Path, data: str, message: str) -> None:
    path = tmp_path / "policy.json"
    path.write_text(data)

    with pytest.raises(ConfigError, match=message) as caught:
        stack_policy_config("staging", path)
    assert str(caught.value).startswith(f"{path}: ")


def test_an_invalid_option_names_the_file_and_the_policy(tmp_path: Path) -> None:
    config = stack_policy_config("staging", _config(tmp_path, {"memorystore-memory-bounds": {"maxMemoryGb": 0}}))

    with pytest.raises(ConfigError, match=r"policy\.json: policy config for 'memorystore-memory-bounds' is invalid"):
        config.options("memorystore-memory-bounds", MemoryBoundsConfig)
