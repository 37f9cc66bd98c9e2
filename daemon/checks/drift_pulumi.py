"""The pulumi drift engine: `pulumi refresh --preview-only` per stack through the Automation API, its engine events read into drift items."""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pulumi.automation import (
    CommandError,
    ConcurrentUpdateError,
    DiffKind,
    EngineEvent,
    InvalidVersionError,
    LocalWorkspaceOptions,
    OpType,
    PropertyDiff,
    StackNotFoundError,
    StepEventMetadata,
    StepEventStateMetadata,
    select_stack,
)

from redisguard.core.errors import Cancelled, PermanentError, TransientError
from redisguard.core.pulumi import SECRET_SIG_KEY, resource_name
from redisguard.core.secrets import SECRET
from redisguard.daemon.checks.ignore import IgnoreRules
from redisguard.daemon.checks.protocol import CancelToken
from redisguard.daemon.checks.pulumi_command import BoundedPulumiCommand, RefreshTimeout
from redisguard.daemon.config import PulumiSettings
from redisguard.daemon.fleet.paths import PathPart, format_path, parse_path
from redisguard.daemon.fleet.state import workspace_env
from redisguard.daemon.reports.drift import DriftItem, PropertyDrift

log = logging.getLogger(__name__)

# Properties that hold secrets whatever the event says (defence in depth: an event log
# written with --show-secrets must still not put an AUTH string in a report).
_SECRET_KEYS = frozenset({"authString", "auth_string", "password", "passphrase", "token", "privateKey"})
_SKIPPED_TYPES = ("pulumi:pulumi:Stack", "pulumi:providers:")
_MISSING = object()
_INSTALL_HINT = "install it (https://www.pulumi.com/docs/install/) or use --engine live"


# --- engine events -> drift items ------------------------------------------------------------


def _is_secret(value: Any) -> bool:
    return value == SECRET or (isinstance(value, Mapping) and SECRET_SIG_KEY in value)


def _mask(value: Any, parts: Sequence[PathPart] = ()) -> Any:
    """The value with every secret (marked, or under a secret-named key) replaced by `[secret]`."""
    if any(isinstance(p, str) and p in _SECRET_KEYS for p in parts) and value is not None:
        return SECRET
    if _is_secret(value):
        return SECRET
    if isinstance(value, Mapping):
        return {k: _mask(v, (*parts, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, parts) for v in value]
    return value


def _lookup(root: Any, parts: Sequence[PathPart]) -> Any:
    """The value at `parts` in an engine event's state, SECRET where a secret covers it.

    policies/rules.py's `lookup` walks the pack's inputs alike but answers UNKNOWN for values a
    preview has not computed; a refresh's states have no unknowns and do have secrets to hide, and
    the pack cannot import the daemon: two walks, each with what its own side holds."""
    value = root
    for part in parts:
        if _is_secret(value):
            return SECRET
        if isinstance(part, int):
            if not isinstance(value, list) or part >= len(value):
                return _MISSING
            value = value[part]
        else:
            if not isinstance(value, Mapping) or part not in value:
                return _MISSING
            value = value[part]
    return value


def _state_value(state: StepEventStateMetadata | None, parts: Sequence[PathPart], sources: Sequence[str]) -> Any:
    """A property of a state, from the first of `sources` ("inputs", "outputs") that holds it."""
    if state is None:
        return None
    for source in sources:
        values = state.inputs if source == "inputs" else state.outputs
        if values is None:
            continue
        found = _lookup(values, parts)
        if found is not _MISSING:
            return _mask(found, parts)
    return None


# Where each side of a refresh diff comes from. The engine computes it as the diff an `up`
# would show right after the refresh (olds: the refreshed, i.e. live, outputs; news: the
# state's inputs) and inverts it. So the state side is read from the old state's inputs and
# the live side from the new state's outputs; an `inputDiff` compares inputs on both sides.
_STATE_SOURCES = ("inputs", "outputs")
_LIVE_SOURCES = ("outputs", "inputs")
_INPUTS_ONLY = ("inputs",)


def _leaf_diffs(old: Any, new: Any, parts: tuple[PathPart, ...]) -> Iterable[tuple[tuple[PathPart, ...], Any, Any]]:
    """Paths where two values differ, down to the leaves (used when the provider gave no detailed diff)."""
    if _is_secret(old) or _is_secret(new):
        if old != new or _is_secret(old) != _is_secret(new):
            yield parts, SECRET if old is not None else None, SECRET if new is not None else None
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new)):
            yield from _leaf_diffs(old.get(key), new.get(key), (*parts, key))
        return
    if isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            yield from _leaf_diffs(old[i] if i < len(old) else None, new[i] if i < len(new) else None, (*parts, i))
        return
    if old != new:
        yield parts, _mask(old, parts), _mask(new, parts)


def _top_value(state: StepEventStateMetadata | None, key: str, sources: Sequence[str]) -> Any:
    """A top-level property of a state, unmasked (the leaf comparison masks), from the first of `sources` holding it."""
    if state is None:
        return None
    for source in sources:
        values = (state.inputs if source == "inputs" else state.outputs) or {}
        if key in values:
            return values[key]
    return None


def _changed_properties(md: StepEventMetadata) -> list[tuple[str, Any, Any]]:
    """(path, state value, live value) for each property the refresh found changed."""
    out: list[tuple[str, Any, Any]] = []
    detailed: Mapping[str, PropertyDiff] = md.detailed_diff or {}
    if detailed:
        for raw_path, diff in detailed.items():
            parts = parse_path(raw_path)
            expected = _state_value(md.old, parts, _INPUTS_ONLY if diff.input_diff else _STATE_SOURCES)
            actual = _state_value(md.new, parts, _INPUTS_ONLY if diff.input_diff else _LIVE_SOURCES)
            # The refresh diff is inverted from the `up` diff: "add" is a property the cloud has
            # and the state does not, "delete" one the state has and the cloud no longer has.
            if diff.diff_kind in (DiffKind.ADD, DiffKind.ADD_REPLACE):
                expected = None
            elif diff.diff_kind in (DiffKind.DELETE, DiffKind.DELETE_REPLACE):
                actual = None
            out.append((format_path(parts), expected, actual))
        return out
    # No detailed diff: the changed top-level keys, or for a legacy refresh (no diff computed by
    # the engine) every output, as the engine itself compared them.
    legacy = not md.diffs
    keys = md.diffs or sorted(set((md.old and md.old.outputs) or {}) | set((md.new and md.new.outputs) or {}))
    for key in keys:
        old = _top_value(md.old, key, ("outputs",) if legacy else _STATE_SOURCES)
        new = _top_value(md.new, key, ("outputs",) if legacy else _LIVE_SOURCES)
        for parts, expected, actual in _leaf_diffs(old, new, (key,)):
            out.append((format_path(parts), expected, actual))
    return out


def items_from_events(events: Iterable[EngineEvent], rules: IgnoreRules) -> list[DriftItem]:
    """Drift items from a refresh preview's engine events (resOutputsEvent with op update/delete)."""
    items: dict[str, DriftItem] = {}
    for event in events:
        outputs = event.res_outputs_event
        if outputs is None:
            continue
        md = outputs.metadata
        if md.type.startswith(_SKIPPED_TYPES):
            continue
        name = resource_name(md.urn)
        if md.op == OpType.DELETE:
            items[md.urn] = DriftItem(resource=name, type=md.type, kind="deleted")
            continue
        if md.op != OpType.UPDATE:
            continue
        properties = [
            PropertyDrift(path=path, expected=expected, actual=actual)
            for path, expected, actual in _changed_properties(md)
            if not rules.ignored(md.type, name, path)
        ]
        if properties:  # only ignored properties changed: no phantom drift
            properties.sort(key=lambda p: p.path)
            items[md.urn] = DriftItem(resource=name, type=md.type, kind="changed", properties=tuple(properties))
    return list(items.values())


# --- the Automation API call ------------------------------------------------------------------


_ENGINE_SUMMARY = re.compile(r"^(preview|update) (failed|canceled)$")


def _first_error_line(error: CommandError) -> str:
    """The CLI's own `error:` line (one line, no stack traces). The CLI masks the secrets it knows;
    run_scan scrubs the credentials redisguard knows from it as well (a plugin may echo them)."""
    # str(CommandError) is the SDK's "code: N / stdout: ... / stderr: ..." rendering.
    lines = [re.sub(r"^(code|stdout|stderr):\s*", "", line.strip()) for line in str(error).splitlines()]
    errors = [re.sub(r"\s+", " ", line[len("error:") :].strip()) for line in lines if line.startswith("error:")]
    # The engine's own "preview failed" (the stack's diagnostic, often listed first) says only that
    # something failed; a resource's error says what ("Error reading AuthString: ... denied").
    specific = [e for e in errors if not _ENGINE_SUMMARY.match(e)]
    if errors:
        return (specific or errors)[0][:300]
    for line in reversed(lines):
        if line and not line.isdigit():
            return line[:300]
    return "pulumi failed without a message"


def _preview_refresh(
    stack: str, settings: PulumiSettings, opts: LocalWorkspaceOptions, on_event: Callable[[EngineEvent], None], cancel: CancelToken
) -> None:
    try:
        ws_stack = select_stack(stack, work_dir=str(settings.work_dir), opts=opts)
        # show_secrets=False says what we mean, though the SDK forwards it to no refresh flag: the
        # CLI writes secret values into its event log as "[secret]", and _mask covers a log that
        # would hold them in the clear.
        ws_stack.preview_refresh(on_event=on_event, show_secrets=False, color="never", suppress_progress=True)
    except Cancelled:
        raise
    except Exception as exc:
        if cancel.cancelled:  # whatever the SDK made of a CLI that the cancel killed (exit -15, no summary)
            raise Cancelled("the scan was cancelled; the pulumi CLI and its child processes were killed") from exc
        raise


def refresh_events(stack: str, settings: PulumiSettings, cancel: CancelToken) -> list[EngineEvent]:
    """Run `pulumi refresh --preview-only` for one stack and return its engine events.

    Raises TransientError (timeout, locked stack), Cancelled (the caller cancelled the run; the
    CLI was killed) or PermanentError (no CLI, unknown stack, any other CLI failure), each with
    a one-line message.
    """
    try:
        command = BoundedPulumiCommand(settings.refresh_timeout_seconds, cancel)
    except FileNotFoundError as exc:
        raise PermanentError(f"the pulumi CLI was not found on PATH; {_INSTALL_HINT}") from exc
    except (subprocess.CalledProcessError, InvalidVersionError) as exc:
        raise PermanentError(f"the pulumi CLI did not report a usable version: {exc}") from exc

    events: list[EngineEvent] = []
    opts = LocalWorkspaceOptions(env_vars=workspace_env(settings), pulumi_command=command)
    try:
        _preview_refresh(stack, settings, opts, events.append, cancel)
    except RefreshTimeout as exc:
        raise TransientError(
            f"pulumi refresh timed out after {settings.refresh_timeout_seconds:g}s ({exc}); the CLI and its child processes were killed"
        ) from exc
    except ConcurrentUpdateError as exc:
        raise TransientError(f"stack is locked by another update: {_first_error_line(exc)}") from exc
    except StackNotFoundError as exc:
        raise PermanentError(f"stack not found in the backend: {_first_error_line(exc)}") from exc
    except CommandError as exc:
        raise PermanentError(f"pulumi refresh failed: {_first_error_line(exc)}") from exc
    except RuntimeError as exc:  # the SDK's "summary event never found"
        raise PermanentError(f"pulumi refresh ended without a summary: {exc}") from exc
    return events


def refresh_stack(
    stack: str, settings: PulumiSettings, rules: IgnoreRules, cancel: CancelToken | None = None
) -> list[DriftItem]:
    """The pulumi engine for one stack: drifted resources, never writing the state."""
    events = refresh_events(stack, settings, cancel or CancelToken())
    items = items_from_events(events, rules)
    log.debug("pulumi refresh stack=%s events=%d drifted=%d", stack, len(events), len(items))
    return items
