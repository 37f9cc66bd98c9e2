"""Which stacks and projects this daemon checks when several run side by side: kube-state-metrics' sharding.

Each key (a stack name, a project id) belongs to one shard: the 64-bit FNV-1a hash of its UTF-8
bytes put in a bucket by Jump Consistent Hash, as kube-state-metrics shards objects by their UID
(pkg/sharding/listwatch.go). Both are stable across processes, machines and Python's hash seeds,
and growing from M to M+1 shards moves only about 1/(M+1) of the keys. M daemons with ordinals
0..M-1 and the same total together check every key once.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

import fnvhash
import jump

from redisguard.core.errors import ConfigError
from redisguard.daemon.config import ShardingSettings

# A StatefulSet's pod is named <statefulset>-<ordinal>; so is its hostname.
_ORDINAL = re.compile(r"-(\d+)$")


def shard_of(key: str, total: int) -> int:
    """The shard (0..total-1) that owns `key`."""
    return int(jump.hash(fnvhash.fnv1a_64(key.encode()), total))


@dataclass(frozen=True)
class Shard:
    """This daemon's part of the fleet: shard `ordinal` of `total`."""

    ordinal: int = 0
    total: int = 1

    @property
    def whole(self) -> bool:
        """True when this daemon checks everything (one shard)."""
        return self.total == 1

    def __str__(self) -> str:
        return "the whole fleet" if self.whole else f"shard {self.ordinal} of {self.total}"

    def owns(self, key: str) -> bool:
        """Whether this shard checks the stack or project named `key`."""
        return self.whole or shard_of(key, self.total) == self.ordinal

    @classmethod
    def of(cls, settings: ShardingSettings, hostname: str | None = None) -> Shard:
        """The shard the settings give; `shard: auto` takes the ordinal from `pod` (default: this host's
        name, which in a StatefulSet's pod is the pod's name) as kube-state-metrics does."""
        if settings.shard != "auto":
            return cls(settings.shard, settings.total_shards)
        name = settings.pod or hostname or socket.gethostname()
        match = _ORDINAL.search(name)
        where = "sharding.pod (--pod)" if settings.pod else "the hostname"
        if match is None:
            raise ConfigError(
                f"sharding.shard (--shard) is auto but {where} {name!r} does not end in -N (a StatefulSet "
                "pod's ordinal): set sharding.pod, or a number from 0 to total_shards - 1"
            )
        ordinal = int(match[1])
        if ordinal >= settings.total_shards:
            raise ConfigError(
                f"sharding.shard (--shard) is auto: {where} {name!r} gives shard {ordinal}, but "
                f"sharding.total_shards (--total-shards) is {settings.total_shards}: allowed shards are "
                f"0 to {settings.total_shards - 1} (set total_shards to the StatefulSet's replicas)"
            )
        return cls(ordinal, settings.total_shards)


WHOLE = Shard()
"""One daemon for the whole fleet: what the report commands and an unsharded daemon check."""
