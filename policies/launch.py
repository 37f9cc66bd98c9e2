"""Starting a policy pack as Pulumi's Python host starts it, before anything imports Pulumi.

The first step of the engine's side (analyzer.py, step 1): the interpreter `PulumiPolicy.yaml`
names, the pack's environment, the engine's log service the pack is given the address of, and the
process. Light to import (no gRPC, no Pulumi): `policy-check` starts its packs with it as soon as
its config is read, so the pack's start-up (an interpreter importing Pulumi and the policy SDK)
overlaps the command's own; the engine service's gRPC server is started once the pack runs, on the
port reserved for it beforehand. analyzer.PolicyPackProcess then reads the port and speaks the
Analyzer protocol.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import yaml

from redisguard.core.processes import die_with_parent_argv

if TYPE_CHECKING:
    import grpc

# The Pulumi project the packs are told they judge (the program's, program/Pulumi.yaml).
PROJECT = "redis-fleet"


def load_pack_file(pack_dir: Path) -> dict[str, Any]:
    """The pack's PulumiPolicy.yaml ({} without one)."""
    pack_file = pack_dir / "PulumiPolicy.yaml"
    return (yaml.safe_load(pack_file.read_text()) or {}) if pack_file.exists() else {}


def pack_python(pack_dir: Path, env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The Python Pulumi's host runs a pack with, and the environment it runs it in: the
    virtualenv `runtime.options.virtualenv` in PulumiPolicy.yaml names (relative to the pack
    folder), its `bin` first on PATH and PYTHONHOME unset; `python3` without one."""
    runtime = load_pack_file(pack_dir).get("runtime") or {}
    # `runtime: python` (a plain name) has no options.
    options = (runtime.get("options") or {}) if isinstance(runtime, Mapping) else {}
    virtualenv = str(options.get("virtualenv") or "").rstrip("/")
    if not virtualenv:
        return "python3", env
    venv = Path(os.path.join(pack_dir, virtualenv))
    if not (venv / "bin" / "python").is_file():
        raise RuntimeError(f'"{venv}" doesn\'t appear to be a virtual environment')
    env = {k: v for k, v in env.items() if k != "PYTHONHOME"}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return str(venv / "bin" / "python"), env


class EngineService:
    """The engine's own gRPC service (pulumirpc.Engine), which plugins log to; records every message.

    Served through a generic handler whose messages (protocol.py) are loaded on the first call,
    so serving it loads no protobuf module."""

    def __init__(self) -> None:
        self.logs: list[tuple[str, str]] = []

    def Log(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC method name
        from google.protobuf import empty_pb2

        from redisguard.policies.protocol import engine_pb2

        self.logs.append((engine_pb2.LogSeverity.Name(request.severity), request.message))
        return empty_pb2.Empty()

    def GetRootResource(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        from redisguard.policies.protocol import engine_pb2

        return engine_pb2.GetRootResourceResponse(urn="")

    def SetRootResource(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        from redisguard.policies.protocol import engine_pb2

        return engine_pb2.SetRootResourceResponse()

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's methods for a grpc.Server (the other Engine methods answer UNIMPLEMENTED)."""
        import grpc

        def method(name: str, request_type: str) -> grpc.RpcMethodHandler:
            def deserialize(data: bytes) -> Any:
                from redisguard.policies.protocol import engine_pb2

                return getattr(engine_pb2, request_type).FromString(data)

            return grpc.unary_unary_rpc_method_handler(
                getattr(self, name), request_deserializer=deserialize, response_serializer=lambda m: m.SerializeToString()
            )

        return grpc.method_handlers_generic_handler(
            "pulumirpc.Engine",
            {
                "Log": method("Log", "LogRequest"),
                "GetRootResource": method("GetRootResource", "GetRootResourceRequest"),
                "SetRootResource": method("SetRootResource", "SetRootResourceRequest"),
            },
        )


@dataclass
class LaunchedPack:
    """A pack process just started, its engine service and what it writes on stderr."""

    pack_dir: Path
    process: subprocess.Popen[bytes]
    interpreter: str
    engine: EngineService
    engine_server: grpc.Server
    engine_address: str
    stderr: IO[bytes]
    began: float = field(default_factory=time.monotonic)


def launch_pack(
    pack_dir: Path,
    *,
    stack: str,
    project: str = PROJECT,
    organization: str = "organization",
    dry_run: bool = True,
    stack_config: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    python: str | None = None,
    engine: EngineService | None = None,
) -> LaunchedPack:
    """Start the pack in `pack_dir` as Pulumi's Python host does: `python -u -m pulumi.policy
    <engine-address> .` in the pack folder, with the stack's PULUMI_* variables; returns at once
    (the port comes on its stdout: analyzer.PolicyPackProcess reads it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    interpreter, env = (python, env) if python is not None else pack_python(pack_dir, env)
    engine = engine or EngineService()
    # The engine's address goes on the pack's command line, but its server can start after the
    # pack does (a Python pack calls the engine only to log, once its program runs): the port is
    # held by a socket that never listens, bound with SO_REUSEPORT as gRPC binds its own, so
    # importing gRPC and starting its server overlap the pack's start-up instead of preceding it.
    reserved = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reserved.bind(("127.0.0.1", 0))
    engine_address = f"127.0.0.1:{reserved.getsockname()[1]}"
    env.update(
        PULUMI_ORGANIZATION=organization,
        PULUMI_PROJECT=project,
        PULUMI_STACK=stack,
        PULUMI_DRY_RUN="true" if dry_run else "false",
    )
    if stack_config:
        env["PULUMI_CONFIG"] = json.dumps(dict(stack_config))
    env.update(extra_env or {})
    stderr = tempfile.TemporaryFile()
    began = time.monotonic()
    try:
        with reserved:
            process = subprocess.Popen(
                # SIGTERM if this process dies: a pack never outlives whoever started it (the
                # engine kills its plugins itself; a killed pytest or CLI would not).
                die_with_parent_argv([interpreter, "-u", "-m", "pulumi.policy", engine_address, "."], signal.SIGTERM),
                cwd=pack_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
            try:
                server = _serve_engine(engine, engine_address)
            except BaseException:
                process.kill()
                process.wait()
                process.stdout.close()  # type: ignore[union-attr]  # stdout=PIPE
                raise
    except BaseException:
        stderr.close()
        raise
    return LaunchedPack(pack_dir, process, interpreter, engine, server, engine_address, stderr, began)


def _serve_engine(engine: EngineService, address: str) -> grpc.Server:
    """The engine service's gRPC server on `address` (its port still held by the reserved socket)."""
    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[engine.handler()])
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot serve the engine service on {address}")
    server.start()
    return server


@dataclass
class StackPack:
    """One stack's pack as launch_stack_packs left it: started, or why it is not."""

    stack_config: dict[str, str] = field(default_factory=dict)
    launched: LaunchedPack | None = None
    stack_file_error: str | None = None
    """The stack file could not be read: the stack's error, no pack started."""
    launch_error: Exception | None = None
    """The pack could not be started (no virtualenv, no interpreter): raised where it is waited for."""


def launch_stack_packs(stacks: Sequence[tuple[str, Path]], pack_dir: Path) -> dict[str, StackPack]:
    """Start each (stack, stack file)'s pack at once, one per stack as the engine does for each
    preview, with the stack file's config as PULUMI_CONFIG."""
    from redisguard.program.config import stack_config_values

    packs: dict[str, StackPack] = {}
    for stack, stack_file in stacks:
        try:
            config = stack_config_values(stack_file)
        except FileNotFoundError:
            packs[stack] = StackPack(stack_file_error=f"{stack_file}: stack file not found")
            continue
        except (OSError, ValueError) as exc:
            packs[stack] = StackPack(stack_file_error=f"{stack_file}: cannot read the stack file: {exc}")
            continue
        try:
            packs[stack] = StackPack(config, launch_pack(pack_dir, stack=stack, stack_config=config))
        except (OSError, RuntimeError) as exc:
            packs[stack] = StackPack(config, launch_error=exc)
    return packs


def launch_state_packs(stacks: Sequence[tuple[str, str]], pack_dir: Path) -> dict[str, StackPack]:
    """Start a pack for each (stack, project) whose deployed state is judged, at once, as `pulumi
    policy analyze` starts one: the project the state's URNs name, not a preview, no stack config
    (the state holds none)."""
    packs: dict[str, StackPack] = {}
    for stack, project in stacks:
        try:
            packs[stack] = StackPack(launched=launch_pack(pack_dir, stack=stack, project=project, dry_run=False))
        except (OSError, RuntimeError) as exc:
            packs[stack] = StackPack(launch_error=exc)
    return packs
