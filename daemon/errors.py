"""The error hierarchy every part of redisguard raises; the CLI turns it into one line and an exit code."""

from __future__ import annotations


class RedisguardError(Exception):
    """Base of every error redisguard reports to a user (never with a traceback)."""

    exit_code = 1


class ConfigError(RedisguardError):
    """A config file or argument is invalid; the message names the file, key and allowed values."""


class TransientError(RedisguardError):
    """A failure that may go away on retry: a timeout, a 503/429, a locked stack."""


class PermanentError(RedisguardError):
    """A failure that retrying will not fix: a missing CLI, a permission denied, a bad request."""
