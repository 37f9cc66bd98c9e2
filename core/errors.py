"""The error hierarchy every part of redisguard raises; the CLI turns it into one line and an exit code."""

from __future__ import annotations

from typing import Literal

# transient: may pass on the next run (a timeout, a 503, a locked stack), so a daemon retries and
# an alert waits; permanent: a person must fix something (a config, a permission, a missing CLI).
ErrorKind = Literal["transient", "permanent"]


class RedisguardError(Exception):
    """Base of every error redisguard reports to a user (never with a traceback)."""

    exit_code = 1


class ConfigError(RedisguardError):
    """A config file or argument is invalid; the message names the file, key and allowed values.

    The stack-config error (`redisguard.program.config.StackConfigError`) and the policy pack's
    (`redisguard.policies.config.PolicyConfigError`) are subclasses, so one `except ConfigError`
    catches every kind of bad input.
    """


class TransientError(RedisguardError):
    """A failure that may go away on retry: a timeout, a 503/429/504, a locked stack."""


class PermanentError(RedisguardError):
    """A failure that retrying will not fix: a missing CLI, a permission denied, a bad request."""


class Cancelled(TransientError):
    """The run was cancelled by its caller (Ctrl-C, SIGTERM, a daemon shutting down) before it finished."""


def error_kind(error: BaseException) -> ErrorKind:
    """`transient` or `permanent`: what a report and a metric say about a failure."""
    return "transient" if isinstance(error, TransientError) else "permanent"
