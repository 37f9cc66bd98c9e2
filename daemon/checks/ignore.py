"""Property paths in one canonical form, and the rules that keep noisy properties out of drift reports."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from redisguard.core.pulumi import INSTANCE_TYPE
from redisguard.daemon.reports.drift import DriftItem

if TYPE_CHECKING:
    from redisguard.daemon.config import IgnoreRule

PathPart = str | int

# Properties Memorystore changes by itself (placement after a failover, scheduled maintenance,
# snapshot times, node lists, rotated CA certs) or that only ever exist as outputs. Reporting
# them would make every scan "drift" and teach people to ignore the report.
BUILTIN_IGNORED_PATHS: dict[str, tuple[str, ...]] = {
    INSTANCE_TYPE: (
        "currentLocationId",
        "maintenanceSchedule",
        "maintenanceSchedules",
        "maintenanceVersion",
        "persistenceConfig.rdbNextSnapshotTime",
        "persistenceConfig.rdbSnapshotStartTime",
        "nodes",
        "serverCaCerts",
        "host",
        "port",
        "readEndpoint",
        "readEndpointPort",
        "persistenceIamIdentity",
        "createTime",
        "maintenancePolicy.createTime",
        "maintenancePolicy.updateTime",
        "maintenancePolicy.weeklyMaintenanceWindows[*].duration",
    ),
}

_SEGMENT = re.compile(r'\.?([^.\[\]"]+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')


def parse_path(path: str) -> tuple[PathPart, ...]:
    """Split a Pulumi property path (`a.b[0]["c.d"]`) into keys and list indexes."""
    parts: list[PathPart] = []
    pos = 0
    while pos < len(path):
        m = _SEGMENT.match(path, pos)
        if not m or m.end() == pos:
            # Not a path Pulumi would print; keep the rest as one opaque key rather than fail a scan.
            parts.append(path[pos:].lstrip("."))
            break
        key, index, quoted = m.group(1), m.group(2), m.group(3)
        if key is not None:
            parts.append(key)
        elif index is not None:
            parts.append(int(index))
        else:
            parts.append(quoted.replace('\\"', '"').replace("\\\\", "\\"))
        pos = m.end()
    return tuple(parts)


def format_path(parts: Sequence[PathPart]) -> str:
    """The canonical text of a path: dotted keys, `[n]` indexes, `["k.ey"]` for keys with . [ ] or "."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "" or any(c in part for c in '.[]"'):
            escaped = part.replace("\\", "\\\\").replace('"', '\\"')
            out += f'["{escaped}"]'
        else:
            out += ("." if out else "") + part
    return out


def normalize_path(path: str) -> str:
    return format_path(parse_path(path))


@lru_cache(maxsize=512)
def _pattern(rule_path: str) -> re.Pattern[str]:
    # `*` stands for one key or one index and never crosses a `.`; the rule also covers every
    # path below the one it names (ignoring `nodes` ignores `nodes[0].id`).
    text = re.escape(rule_path).replace(r"\*", r"[^.\[\]]*")
    return re.compile(rf"{text}(?:[.\[].*)?")


@dataclass(frozen=True)
class Rule:
    """A property rule (`path` set) or a whole-resource rule (`path` None, `kind` set)."""

    type: str
    path: str | None = None
    resource: str = "*"
    kind: str | None = None

    def _matches_resource(self, resource_type: str, resource: str) -> bool:
        if self.type != "*" and not fnmatch.fnmatchcase(resource_type, self.type):
            return False
        if self.resource == "*":
            return True
        # An unmanaged instance is named in full (projects/P/locations/R/instances/ID); a rule
        # may name it so, or by the short id people call it by.
        return fnmatch.fnmatchcase(resource, self.resource) or fnmatch.fnmatchcase(
            resource.rsplit("/", 1)[-1], self.resource
        )

    def matches(self, resource_type: str, resource: str, path: str) -> bool:
        if self.path is None or not self._matches_resource(resource_type, resource):
            return False
        return _pattern(self.path).fullmatch(path) is not None

    def matches_resource(self, resource_type: str, resource: str, kind: str) -> bool:
        if self.path is not None or self.kind not in ("*", kind):
            return False
        return self._matches_resource(resource_type, resource)


class IgnoreRules:
    """The built-in rules plus the user's `ignore:` rules from redisguard.yaml."""

    def __init__(self, user_rules: Iterable[Rule] = (), builtins: bool = True) -> None:
        rules: list[Rule] = []
        if builtins:
            for type_, paths in BUILTIN_IGNORED_PATHS.items():
                rules.extend(Rule(type=type_, path=p) for p in paths)
        # A rule written with Pulumi's quoted form (labels["a.b"]) is brought to the canonical
        # form; one with wildcards is kept as written (`[*]` is not a path Pulumi prints).
        rules.extend(
            Rule(
                type=r.type,
                path=normalize_path(r.path) if r.path and '"' in r.path else r.path,
                resource=r.resource,
                kind=r.kind,
            )
            for r in user_rules
        )
        self.rules: tuple[Rule, ...] = tuple(rules)

    @classmethod
    def from_config(cls, config_rules: Iterable[IgnoreRule]) -> IgnoreRules:
        """From `RedisguardConfig.ignore`."""
        return cls(Rule(type=r.type, path=r.path, resource=r.resource, kind=r.kind) for r in config_rules)

    def ignored(self, resource_type: str, resource: str, path: str) -> bool:
        """Whether one property of a changed resource is never reported."""
        canonical = normalize_path(path)
        return any(rule.matches(resource_type, resource, canonical) for rule in self.rules)

    def resource_ignored(self, item: DriftItem) -> bool:
        """Whether a whole drifted resource (a missing cluster, an unmanaged instance, ...) is never reported."""
        return any(rule.matches_resource(item.type, item.resource, item.kind) for rule in self.rules)
