"""Run the redis-fleet program under the Pulumi SDK's mocks and record what it registers (tests and `redisguard policy-check`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import rpc, settings
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import Stack

from redisguard.core.pulumi import INSTANCE_TYPE
from redisguard.program.config import stack_config_values

PROGRAM_DIR = Path(__file__).resolve().parent
COMMAND_TYPE = "command:local:Command"


@dataclass(frozen=True)
class RegisteredResource:
    """One resource the program registered: its type token, name and inputs (camelCase, as the engine sees them)."""

    type: str
    name: str
    inputs: dict[str, Any]
    parent: str = ""
    dependencies: tuple[str, ...] = ()
    delete_before_replace: bool = False
    additional_secret_outputs: tuple[str, ...] = ()
    replace_with: tuple[str, ...] = ()
    import_id: str = ""
    """The `import` resource option: the id of an existing resource the engine adopts."""


@dataclass
class ProgramRun:
    resources: list[RegisteredResource] = field(default_factory=list)
    exports: dict[str, Any] = field(default_factory=dict)
    # The stack outputs serialized as the engine receives them (secrets still wrapped in
    # Pulumi's secret signature): what `pulumi stack output` would show.
    stack_outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[RegisteredResource]:
        return [r for r in self.resources if r.type == type_]

    def named(self, type_: str, name: str) -> RegisteredResource:
        (match,) = [r for r in self.of_type(type_) if r.name == name]
        return match


class RecordingMonitor(MockMonitor):
    """The SDK's mock monitor, also keeping the resource options of each RegisterResource request."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.requests: dict[tuple[str, str], Any] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        self.requests[(request.type, request.name)] = request
        return _closing_worker_loop(super().RegisterResource, request)

    def Invoke(self, request: Any) -> Any:  # noqa: N802
        return _closing_worker_loop(super().Invoke, request)

    def ReadResource(self, request: Any) -> Any:  # noqa: N802
        return _closing_worker_loop(super().ReadResource, request)


def _closing_worker_loop(call: Callable[[Any], Any], request: Any) -> Any:
    """`call(request)`, closing the event loop the SDK's mock monitor makes for the executor thread
    it runs in (sync_await._ensure_event_loop). Left open, each such loop is closed by its __del__
    at interpreter exit, after its self-pipe is gone: "Exception ignored in BaseEventLoop.__del__
    ... Invalid file descriptor: -1" on the command's stderr."""
    if threading.current_thread() is threading.main_thread():
        return call(request)
    try:
        return call(request)
    finally:
        try:
            loop = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:  # this thread has no loop: nothing to close
            pass
        else:
            asyncio.set_event_loop(None)
            loop.close()


class RecordingMocks(pulumi.runtime.Mocks):
    """Mocks that record each registration and answer with plausible provider outputs."""

    def __init__(self, run: ProgramRun) -> None:
        self.run = run

        self.monitor = RecordingMonitor(self)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        request = self.monitor.requests[(args.typ, args.name)]
        self.run.resources.append(
            RegisteredResource(
                args.typ,
                args.name,
                dict(args.inputs),
                parent=request.parent,
                dependencies=tuple(request.dependencies),
                delete_before_replace=request.deleteBeforeReplace,
                additional_secret_outputs=tuple(request.additionalSecretOutputs),
                replace_with=tuple(request.replace_with),
                import_id=request.importId,
            )
        )
        outputs = dict(args.inputs)
        if args.typ == INSTANCE_TYPE:
            outputs.update(
                host="10.0.0.3",
                port=6378 if args.inputs.get("transitEncryptionMode") == "SERVER_AUTHENTICATION" else 6379,
                currentLocationId=args.inputs.get("locationId") or "europe-west1-b",
                authString="mock-auth-string-not-for-logs",
            )
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


def run_program(config: dict[str, str], stack: str = "staging", preview: bool = False) -> ProgramRun:
    """Run `program/__main__.py`'s logic under mocks with the given config values."""
    from redisguard.program import fleet

    run = ProgramRun()
    mocks = RecordingMocks(run)
    pulumi.runtime.set_mocks(mocks, project="redis-fleet", stack=stack, preview=preview, monitor=mocks.monitor)
    pulumi.runtime.set_all_config(config)

    async def serialize_stack_outputs() -> None:
        root = settings.get_root_resource()
        if not isinstance(root, Stack):
            raise RuntimeError(f"the program ran without a root stack resource: {root!r}")
        outputs = await rpc.serialize_properties(root.outputs, {})
        run.stack_outputs.update(json_format.MessageToDict(outputs))

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        clusters = fleet.main()
        pulumi.Output.from_input(serialize_stack_outputs())  # type: ignore[arg-type]  # pulumi's Input[U] binds no U from an awaitable under mypy (Output[Never])
        return pulumi.Output.all(
            **{
                name: pulumi.Output.all(
                    host=c.host, port=c.port, current_location_id=c.current_location_id, auth_string=c.auth_string
                )
                for name, c in clusters.items()
            }
        ).apply(run.exports.update)

    program()
    return run


def run_stack(stack_file: str | Path, preview: bool = False) -> list[RegisteredResource]:
    """Every resource a stack file makes the program register (for the policy tests too)."""
    path = Path(stack_file)
    stack = path.name.split(".")[1]
    return run_program(stack_config_values(path), stack=stack, preview=preview).resources
