"""Pending changes: a stack's config ahead of its deployed state (what the next `pulumi up` would do).

Light on purpose (reports and the status page import it); fleet/declared.py computes them.
"""

from __future__ import annotations

from typing import Any, Literal

from redisguard.core.models import Frozen

Change = Literal["create", "update", "delete"]


class PendingProperty(Frozen):
    """One property whose value in the stack's config is not the deployed one."""

    path: str
    config: Any = None
    deployed: Any = None


class PendingChange(Frozen):
    """What the next `pulumi up` would do to one instance: the config ahead of the deployed state.
    Not drift: nothing runs other than what was deployed."""

    resource: str
    change: Change
    properties: tuple[PendingProperty, ...] = ()
