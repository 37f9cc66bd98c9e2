"""The shard assignment (daemon/sharding.py): stable across processes and hash seeds, every stack and project in exactly one shard, and the ordinal from a StatefulSet pod's name."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from redisguard.core.errors import ConfigError
from redisguard.daemon.config import ShardingSettings, config_from_mapping
from redisguard.daemon.sharding import Shard, shard_of

STACKS = tuple(f"team-{i}/redis-fleet/{env}" for i in range(40) for env in ("staging", "production"))
PROJECTS = tuple(f"team-{i}-prod" for i in range(60))


def _assignment_in_a_new_process(seed: str) -> list[int]:
    code = (
        "import json, sys\n"
        "from redisguard.daemon.sharding import shard_of\n"
        "print(json.dumps([shard_of(key, 7) for key in json.load(sys.stdin)]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(STACKS + PROJECTS),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": seed},
        timeout=60,
    )
    result: list[int] = json.loads(out.stdout)
    return result


def test_the_assignment_is_the_same_in_every_process_whatever_the_hash_seed() -> None:
    here = [shard_of(key, 7) for key in STACKS + PROJECTS]
    assert _assignment_in_a_new_process("1") == here
    assert _assignment_in_a_new_process("4242") == here


def test_the_hash_is_kube_state_metrics_fnv1a_64_and_jump_hash() -> None:
    # FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (the FNV reference vectors); Jump Consistent Hash puts
    # one key in bucket 0 of 1 and keeps a key's bucket or moves it to the new one as buckets grow.
    assert shard_of("a", 1) == 0
    for key in STACKS:
        for total in range(1, 12):
            before, after = shard_of(key, total), shard_of(key, total + 1)
            assert after in (before, total), (key, total)


@pytest.mark.parametrize("total", [1, 2, 3, 4, 7])
def test_every_stack_and_project_belongs_to_exactly_one_shard(total: int) -> None:
    shards = [Shard(ordinal, total) for ordinal in range(total)]
    for key in STACKS + PROJECTS:
        assert sum(shard.owns(key) for shard in shards) == 1, key
    # And the shards share the work: none is empty with 80 stacks.
    assert all(any(shard.owns(stack) for stack in STACKS) for shard in shards)


def test_shard_auto_takes_the_ordinal_from_the_pod_name_or_the_hostname() -> None:
    assert Shard.of(ShardingSettings(shard="auto", total_shards=3, pod="redisguard-2")) == Shard(2, 3)
    assert Shard.of(ShardingSettings(shard="auto", total_shards=4), hostname="redisguard-shard-3") == Shard(3, 4)
    assert Shard.of(ShardingSettings(shard=1, total_shards=2), hostname="ignored-0") == Shard(1, 2)


def test_shard_auto_without_an_ordinal_or_past_the_total_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match=r"sharding.shard \(--shard\) is auto but the hostname 'build-host' does not end in -N"):
        Shard.of(ShardingSettings(shard="auto", total_shards=3), hostname="build-host")
    with pytest.raises(ConfigError, match=r"sharding.pod \(--pod\) 'redisguard-3' gives shard 3, but sharding.total_shards \(--total-shards\) is 3: allowed shards are 0 to 2"):
        Shard.of(ShardingSettings(shard="auto", total_shards=3, pod="redisguard-3"))


def test_a_shard_outside_the_total_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"sharding": {"shard": 3, "total_shards": 3}}, source="redisguard.yaml")
    assert "sharding" in str(caught.value)
    assert "allowed shards are 0 to 2" in str(caught.value)
    with pytest.raises(ConfigError, match="total_shards"):
        config_from_mapping({"sharding": {"total_shards": 51}}, source="redisguard.yaml")


def test_the_command_line_overrides_the_configs_sharding() -> None:
    config = config_from_mapping({"sharding": {"shard": 0, "total_shards": 2}})
    assert config.with_sharding({"shard": 1}).sharding == ShardingSettings(shard=1, total_shards=2)
    assert config.with_sharding({"shard": "auto", "pod": "rg-1"}).sharding.pod == "rg-1"
    with pytest.raises(ConfigError, match=r"--shard 2: shard 2 is not below total_shards 2"):
        config.with_sharding({"shard": 2})
