"""Pulumi's wire constants every part that reads engine values shares: the resource type we judge
and watch, and the signatures the engine's protocol uses for secret and unknown values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The one resource type redisguard judges (policy pack), builds (program) and watches (daemon).
INSTANCE_TYPE = "gcp:redis/instance:Instance"

# An object with this key holding this value is a secret in Pulumi's property values (the
# engine's `sig.Secret`); its plaintext is under "value" and must never be shown.
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"

# The string the engine sends for a value not known until apply (`UnknownStringValue`).
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def is_secret(value: Any) -> bool:
    """Whether `value` is one of the engine's secret objects (in a checkpoint, an export, an event)."""
    return isinstance(value, Mapping) and value.get(SECRET_SIG_KEY) == SECRET_SIG


def resource_name(urn: str) -> str:
    """The logical name at the end of a URN (`urn:pulumi:stack::project::type::name`)."""
    return urn.rsplit("::", 1)[-1] if "::" in urn else urn
