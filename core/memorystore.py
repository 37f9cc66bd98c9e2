"""Memorystore for Redis facts (enum values, name patterns, limits, defaults): the one copy the program, the pack and the daemon read.

The emulator does not import this module on purpose: it stands in for Google's server and keeps
its own checks (emulator/memorystore/rules.py), so a mistake here is caught there instead of copied there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal, get_args

Tier = Literal["BASIC", "STANDARD_HA"]
RedisVersion = Literal["REDIS_3_2", "REDIS_4_0", "REDIS_5_0", "REDIS_6_X", "REDIS_7_0", "REDIS_7_2"]
DayOfWeek = Literal["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
PersistenceMode = Literal["DISABLED", "RDB"]
SnapshotPeriod = Literal["ONE_HOUR", "SIX_HOURS", "TWELVE_HOURS", "TWENTY_FOUR_HOURS"]
TransitEncryption = Literal["SERVER_AUTHENTICATION", "DISABLED"]
ConnectMode = Literal["DIRECT_PEERING", "PRIVATE_SERVICE_ACCESS"]
ReadReplicasMode = Literal["READ_REPLICAS_DISABLED", "READ_REPLICAS_ENABLED"]
# The eviction policies Memorystore accepts for `maxmemory-policy`.
MaxMemoryPolicy = Literal[
    "noeviction",
    "allkeys-lru",
    "volatile-lru",
    "allkeys-lfu",
    "volatile-lfu",
    "allkeys-random",
    "volatile-random",
    "volatile-ttl",
]

ALL_DAYS: tuple[DayOfWeek, ...] = get_args(DayOfWeek)
ALL_EVICTION_POLICIES: tuple[MaxMemoryPolicy, ...] = get_args(MaxMemoryPolicy)
DEFAULT_REDIS_VERSION: RedisVersion = "REDIS_7_2"

# Memorystore's spelling of any Redis version (REDIS_6_X, REDIS_7_2), for config that may name a
# version newer than the ones listed above.
REDIS_VERSION_PATTERN = r"^REDIS_[0-9]+_([0-9]+|X)$"
# Instance ids: start with a lowercase letter, then lowercase letters, digits and hyphens, at most
# 40 characters, not ending in a hyphen.
INSTANCE_ID = re.compile(r"^[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?$")
LABEL_KEY_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
LABEL_KEY = re.compile(LABEL_KEY_PATTERN)
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
ZONE = re.compile(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")
KMS_KEY = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$")

# Memory limits (GB) per instance, and with read replicas (about-read-replicas).
MIN_MEMORY_GB = 1
MAX_MEMORY_GB = 300
MIN_MEMORY_GB_WITH_READ_REPLICAS = 5
MAX_READ_REPLICAS = 5
# What Memorystore runs when replica_count is not given on a STANDARD_HA instance.
DEFAULT_REPLICAS_STANDARD_HA = 1
DEFAULT_REPLICAS_WITH_READ_REPLICAS = 2

# Versions that support read replicas, and those with LFU eviction and active defrag
# (supported-redis-configurations).
READ_REPLICA_VERSIONS: tuple[RedisVersion, ...] = ("REDIS_5_0", "REDIS_6_X", "REDIS_7_0", "REDIS_7_2")
LFU_AND_DEFRAG_VERSIONS: tuple[RedisVersion, ...] = ("REDIS_4_0", *READ_REPLICA_VERSIONS)

# Snapshot periods from the shortest to the longest; Memorystore takes 24 hours when RDB is on
# and no period is given. Keyed by any string: the pack looks up a resource's input unchecked.
SNAPSHOT_PERIOD_HOURS: Mapping[str, int] = {
    "ONE_HOUR": 1,
    "SIX_HOURS": 6,
    "TWELVE_HOURS": 12,
    "TWENTY_FOUR_HOURS": 24,
}
DEFAULT_SNAPSHOT_PERIOD: SnapshotPeriod = "TWENTY_FOUR_HOURS"

GIB = 2**30

# Instance.State names as the API spells them. Only a READY instance serves as declared (and is
# compared); in the NOT_SERVING states Redis does not serve, and Monitoring's newest point predates them.
READY = "READY"
NOT_SERVING = frozenset({"CREATING", "REPAIRING", "DELETING"})


def capacity_bytes(memory_size_gb: int) -> int:
    """An instance's capacity in bytes: Memorystore's `memorySizeGb` is in GiB."""
    return memory_size_gb * GIB
