"""A finding's likely cause: the Admin Activity audit log entries for its instance since it was last seen in sync.

Drift (reports/drift.py) and compliance findings carry the same `Cause`; the entries are read by
daemon/checks/audit.py. A principal's email is personal data: it is shown in reports, `/report`
and the status page, never in a metric label or a log line.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from redisguard.core.models import Frozen

Via = Literal["console", "gcloud", "terraform", "pulumi", "api"]
VIAS: tuple[Via, ...] = ("console", "gcloud", "terraform", "pulumi", "api")

# The Memorystore methods that change an instance (v1 and v1beta1), as `protoPayload.methodName` spells them.
MUTATING_METHODS: tuple[str, ...] = tuple(
    f"google.cloud.redis.{version}.CloudRedis.{verb}"
    for version in ("v1", "v1beta1")
    for verb in ("CreateInstance", "UpdateInstance", "UpgradeInstance", "FailoverInstance", "DeleteInstance",
                 "ImportInstance", "RescheduleMaintenance")
)  # fmt: skip

# Checked in this order: the gcp provider of Pulumi is built on Terraform's, so its agent names
# both; gcloud's agent names the Cloud SDK; the console's is a browser's.
_AGENTS: tuple[tuple[Via, re.Pattern[str]], ...] = (
    ("pulumi", re.compile(r"pulumi", re.IGNORECASE)),
    ("terraform", re.compile(r"terraform", re.IGNORECASE)),
    ("gcloud", re.compile(r"gcloud|google-cloud-sdk", re.IGNORECASE)),
    ("console", re.compile(r"^Mozilla/|cloud[ -]?console", re.IGNORECASE)),
)


def classify_agent(user_agent: str) -> Via:
    """What made a call, from `requestMetadata.callerSuppliedUserAgent`; `api` for any other client."""
    return next((via for via, pattern in _AGENTS if pattern.search(user_agent)), "api")


def short_method(method_name: str) -> str:
    """`google.cloud.redis.v1.CloudRedis.UpdateInstance` -> `UpdateInstance`."""
    return method_name.rsplit(".", 1)[-1]


class Change(Frozen):
    """One Admin Activity audit log entry for an instance: who changed it, when, how and what."""

    at: datetime
    method: str
    """`protoPayload.methodName`, e.g. google.cloud.redis.v1.CloudRedis.UpdateInstance."""
    principal: str
    """`authenticationInfo.principalEmail` (empty when the log does not name one)."""
    via: Via
    user_agent: str = ""
    fields: tuple[str, ...] = ()
    """The request's `updateMask` paths (UpdateInstance); empty for other methods."""
    by_pulumi: bool = False
    """Made by an identity configured as the one that runs `pulumi up` (audit.pulumi_principals)."""

    def describe(self) -> str:
        """One line for a table, a Markdown cell or the status page."""
        who = self.principal or "unknown principal"
        label = " (the identity that runs pulumi up)" if self.by_pulumi else ""
        fields = f" [{', '.join(self.fields)}]" if self.fields else ""
        return f"{self.at:%Y-%m-%d %H:%M:%SZ} {short_method(self.method)}{fields} by {who}{label} via {self.via}"


class Cause(Frozen):
    """What the audit log says about a finding: its changes, newest first, or why that is unknown."""

    changes: tuple[Change, ...] = ()
    unknown: str | None = None
    """Why the cause cannot be known (the project's audit log could not be read); None when it was read."""

    def lines(self) -> list[str]:
        """The cause as lines for people: each change, `unknown: <reason>`, or that the log shows none."""
        if self.unknown is not None:
            return [f"unknown: {self.unknown}"]
        if not self.changes:
            return ["no Memorystore change in the audit log since it was last seen in sync (or within audit.lookback)"]
        return [change.describe() for change in self.changes]
