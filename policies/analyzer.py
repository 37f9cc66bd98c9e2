"""The engine side of the Analyzer protocol: starts a policy pack the way Pulumi's Python host does and speaks Analyzer gRPC to it.

What the Pulumi engine does for `pulumi preview --policy-pack DIR --policy-pack-config FILE`
(pulumi/pulumi sdk/go/common/resource/plugin/analyzer_plugin.go `NewPolicyAnalyzer`,
pkg/engine `installAndLoadPolicyPlugins`, pkg/resource/analyzer `ReconcilePolicyPackConfig`),
and what this module does the same way:

1. run the `pulumi-analyzer-policy-python` shim in the pack folder: with `runtime.options.virtualenv`
   in `PulumiPolicy.yaml` that is `<virtualenv>/bin/python -u -m pulumi.policy <engine-address> .`
   (the virtualenv relative to the pack folder, its `bin` first on PATH, PYTHONHOME unset), with
   `PULUMI_ORGANIZATION`, `PULUMI_PROJECT`, `PULUMI_STACK`, `PULUMI_DRY_RUN` and, when the stack has
   config, `PULUMI_CONFIG` set; read the port the pack prints on its first stdout line
   (`launch.launch_pack`, light enough to run before anything imports Pulumi; `PolicyPackProcess.start`);
2. `Handshake` (a pack that does not implement it answers UNIMPLEMENTED, which is fine);
3. `ConfigureStack` with the stack, project, organization, dry-run flag, stack tags and config;
4. `GetAnalyzerInfo`, with the version from `PulumiPolicy.yaml` overriding the SDK's (`info`);
5. reconcile the config file with each policy's default level, its schema's defaults and the pack's
   initial config, apply `all`, validate against each policy's JSON schema, and refuse invalid
   config before the pack sees it; then `Configure` with every policy (`configure`);
6. `Analyze` per resource (inputs, unknowns marshalled as the engine's sentinels, secrets as
   secret objects) and `AnalyzeStack` for the whole stack (`analyze`, `analyze_stack`).

`redisguard policy-check` and the policy tests both run packs through it. Deliberate
differences: the pack gets this process's environment without any `PULUMI_*` variable of the
caller's (the engine passes its own environment through), so a verdict does not depend on who
runs it; it is exec'd through a tiny wrapper that ties its life to this process; and schema
errors are worded by Python's `jsonschema`, where the CLI uses Go's gojsonschema (same checks,
other words). tests/e2e/test_pulumi_engine.py checks the verdicts against the real engine's.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import jsonschema
from google.protobuf import empty_pb2, json_format, struct_pb2

from redisguard.core.pulumi import SECRET_SIG, SECRET_SIG_KEY, UNKNOWN
from redisguard.policies.launch import PROJECT, EngineService, LaunchedPack, launch_pack, load_pack_file
from redisguard.policies.pack_config import (
    LEVEL_NAMES,
    PACK_DIR,
    PolicyConfigInvalid,
    parse_policy_pack_config,
    read_config_file,
)
from redisguard.policies.protocol import analyzer_pb2, analyzer_pb2_grpc

# The sentinels the engine writes for values unknown during preview (MarshalOptions{KeepUnknowns});
# a secret value is signed with core.pulumi's SECRET_SIG (KeepSecrets): pulumi/sdk/go/common/resource/plugin/rpc.go.
UNKNOWN_SENTINELS = {
    "bool": "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",
    "number": "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
    "string": UNKNOWN,
    "array": "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",
    "object": "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",
}

# The engine's level names (pack_config.LEVEL_NAMES) as the protocol's enum values.
ENFORCEMENT_LEVELS = {name: analyzer_pb2.EnforcementLevel.Value(name.upper()) for name in LEVEL_NAMES}
_LEVEL_NAME_OF = {v: k for k, v in ENFORCEMENT_LEVELS.items()}
_SEVERITY_NAMES = {
    analyzer_pb2.POLICY_SEVERITY_UNSPECIFIED: "",
    analyzer_pb2.POLICY_SEVERITY_LOW: "low",
    analyzer_pb2.POLICY_SEVERITY_MEDIUM: "medium",
    analyzer_pb2.POLICY_SEVERITY_HIGH: "high",
    analyzer_pb2.POLICY_SEVERITY_CRITICAL: "critical",
}


@dataclass(frozen=True)
class Unknown:
    """A property value the engine does not know yet (preview); `kind` picks the sentinel."""

    kind: str = "string"


@dataclass(frozen=True)
class Secret:
    """A property value the engine marks secret."""

    value: Any


def unknown(kind: str = "string") -> Unknown:
    return Unknown(kind)


def secret(value: Any) -> Secret:
    return Secret(value)


def marshal(value: Any) -> Any:
    """A Python value as the engine puts it into a protobuf Struct for an analyzer.

    MarshalOptions{KeepUnknowns, KeepSecrets, SkipInternalKeys}: internal `__` keys are left out,
    nulls are kept (None becomes a null value).
    """
    if isinstance(value, Unknown):
        return UNKNOWN_SENTINELS[value.kind]
    if isinstance(value, Secret):
        return {SECRET_SIG_KEY: SECRET_SIG, "value": marshal(value.value)}
    if isinstance(value, Mapping):
        return {str(k): marshal(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, (list, tuple)):
        return [marshal(v) for v in value]
    return value


def to_struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(marshal(props))
    return struct


def urn_for(stack: str, project: str, resource_type: str, name: str) -> str:
    return f"urn:pulumi:{stack}::{project}::{resource_type}::{name}"


@dataclass(frozen=True)
class Diagnostic:
    """One policy violation as the engine receives it."""

    policy: str
    message: str
    level: str
    urn: str
    severity: str
    pack: str
    version: str


@dataclass(frozen=True)
class AnalyzeResult:
    """The pack's answer to one Analyze / AnalyzeStack call."""

    diagnostics: tuple[Diagnostic, ...]
    not_applicable: Mapping[str, str]

    @property
    def policies(self) -> set[str]:
        return {d.policy for d in self.diagnostics}

    @property
    def mandatory(self) -> set[str]:
        """Policies whose violations block the deployment."""
        return {d.policy for d in self.diagnostics if d.level == "mandatory"}

    @property
    def advisory(self) -> set[str]:
        return {d.policy for d in self.diagnostics if d.level == "advisory"}

    @property
    def blocks(self) -> bool:
        return bool(self.mandatory)

    def messages(self, policy: str) -> list[str]:
        return [d.message for d in self.diagnostics if d.policy == policy]

    def level(self, policy: str) -> str:
        levels = {d.level for d in self.diagnostics if d.policy == policy}
        assert len(levels) == 1, f"{policy}: expected one level, got {levels}"
        return levels.pop()


@dataclass(frozen=True)
class PolicyMeta:
    name: str
    display_name: str
    description: str
    level: str
    severity: str
    kind: str  # "resource" or "stack"
    config_schema: Mapping[str, Any]
    required: tuple[str, ...]
    remediation: str
    url: str


@dataclass(frozen=True)
class PackInfo:
    name: str
    version: str
    supports_config: bool
    policies: Mapping[str, PolicyMeta]
    # The pack's own initial config (PolicyPack(initial_config=...)): name -> (level, properties).
    initial_config: Mapping[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)


class AnalyzerFailed(Exception):
    """The pack answered an Analyze call with a gRPC error (the engine fails the deployment)."""

    def __init__(self, error: grpc.RpcError) -> None:
        self.code = error.code()
        self.details = error.details() or ""
        super().__init__(f"{self.code.name}: {self.details}")


def _apply_config(
    result: dict[str, tuple[str, dict[str, Any]]], given: Mapping[str, tuple[str | None, dict[str, Any]]]
) -> dict[str, tuple[str, dict[str, Any]]]:
    # The engine's applyConfig: `all` sets every level, then each entry (`all` included) overrides its
    # own; an entry that names no policy keeps an empty level unless it sets one.
    all_level = given["all"][0] if "all" in given else None
    if all_level:
        result = {name: (all_level, props) for name, (_, props) in result.items()}
    for name, (level, props) in given.items():
        base_level, base_props = result.get(name, ("", {}))
        result[name] = (level or base_level, {**base_props, **props})
    return result


def reconcile_config(info: PackInfo, raw: Mapping[str, Any] | None) -> dict[str, tuple[str, dict[str, Any]]]:
    """Defaults from the pack's metadata, its initial config, then `--policy-pack-config`; validated like the engine."""
    result: dict[str, tuple[str, dict[str, Any]]] = {}
    for meta in info.policies.values():
        defaults = {k: v["default"] for k, v in meta.config_schema.items() if isinstance(v, Mapping) and "default" in v}
        result[meta.name] = (meta.level, defaults)
    result = _apply_config(result, info.initial_config)
    result = _apply_config(result, parse_policy_pack_config(raw or {}))
    errors: list[str] = []
    for meta in info.policies.values():
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {
                **meta.config_schema,
                "enforcementLevel": {"type": "string", "enum": list(ENFORCEMENT_LEVELS)},
            },
        }
        if meta.required:
            schema["required"] = list(meta.required)
        validator = jsonschema.Draft7Validator(schema)
        for error in sorted(validator.iter_errors(result[meta.name][1]), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in error.path)
            errors.append(f"{meta.name}: {where + ': ' if where else ''}{error.message}")
    if errors:
        raise PolicyConfigInvalid(errors)
    for name, (level, _) in result.items():
        if level not in ENFORCEMENT_LEVELS:
            # Configure refuses it; the engine's message does not name the entry, this one does.
            raise PolicyConfigInvalid(
                [f'configuring policy pack: invalid enforcement level "{level}" (entry "{name}")']
            )
    return result


@dataclass
class StackResource:
    """One resource of a stack for AnalyzeStack."""

    type: str
    name: str
    props: Mapping[str, Any]
    protect: bool = False


@dataclass
class PolicyPackProcess:
    """A running policy pack and an engine-side client for it."""

    stack: str
    project: str = PROJECT
    organization: str = "organization"
    pack_dir: Path = PACK_DIR
    dry_run: bool = True
    # None: the interpreter Pulumi's shim picks from PulumiPolicy.yaml (runtime.options.virtualenv).
    python: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    stack_tags: Mapping[str, str] = field(default_factory=dict)
    # The stack's config (`project:key` -> value), as `pulumi config` holds it.
    stack_config: Mapping[str, str] = field(default_factory=dict)
    startup_seconds: float = 0.0
    port: int = 0
    interpreter: str = ""  # the Python that runs the pack
    engine: EngineService = field(default_factory=EngineService)
    _proc: subprocess.Popen | None = None
    _stderr: Any = None
    _stderr_final: str = ""
    _engine_server: grpc.Server | None = None
    _channel: grpc.Channel | None = None
    _stub: analyzer_pb2_grpc.AnalyzerStub | None = None
    _info: PackInfo | None = None
    _engine_address: str = ""

    def start(self, timeout: float = 60.0, launched: LaunchedPack | None = None) -> PolicyPackProcess:
        """Start the pack, or take the one `launched` for this stack (launch.launch_pack), and wait
        until it answers the engine's first calls."""
        try:
            if launched is None:
                launched = launch_pack(
                    self.pack_dir, stack=self.stack, project=self.project, organization=self.organization,
                    dry_run=self.dry_run, stack_config=self.stack_config, extra_env=self.extra_env,
                    python=self.python, engine=self.engine,
                )  # fmt: skip
            self.interpreter = launched.interpreter
            self.engine = launched.engine
            self._engine_server = launched.engine_server
            self._engine_address = launched.engine_address
            self._proc = launched.process
            self._stderr = launched.stderr
            began = launched.began
            self.port = self._read_port(began + timeout)
            self._channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
            self._stub = analyzer_pb2_grpc.AnalyzerStub(self._channel)
            # The first call waits for the connection (not grpc.channel_ready_future: its
            # connectivity poller made every channel.close() wait 0.2 s for its next poll).
            self._handshake(timeout=max(0.1, began + timeout - time.monotonic()))
            self.startup_seconds = time.monotonic() - began
            self._configure_stack()
        except BaseException:
            # Leave neither the pack nor the engine service running behind a failed start.
            self.stop()
            raise
        return self

    def _pack_file(self) -> dict[str, Any]:
        return load_pack_file(self.pack_dir)

    def _handshake(self, timeout: float) -> None:
        # The engine's first call; the Python policy SDK does not implement it yet.
        request = analyzer_pb2.AnalyzerHandshakeRequest(
            engine_address=self._engine_address,
            root_directory=str(self.pack_dir),
            program_directory=str(self.pack_dir),
        )
        try:
            self.stub.Handshake(request, timeout=timeout, wait_for_ready=True)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise

    def _configure_stack(self) -> None:
        # Recent engines tell the pack which stack it analyses; packs on an older SDK answer UNIMPLEMENTED.
        request = analyzer_pb2.AnalyzerStackConfigureRequest(
            stack=self.stack,
            project=self.project,
            organization=self.organization,
            dry_run=self.dry_run,
            tags=self.stack_tags,
            config=self.stack_config,
        )
        try:
            self.stub.ConfigureStack(request, timeout=30)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise

    def _read_port(self, deadline: float) -> int:
        # The engine reads the first line of the plugin's stdout as its port.
        assert self._proc is not None and self._proc.stdout is not None
        line = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"policy pack printed no port in time; stderr:\n{self.stderr_text()}")
                if not sel.select(timeout=remaining):
                    continue
                chunk = os.read(self._proc.stdout.fileno(), 1)
                if not chunk:
                    code = self._proc.wait(timeout=5)
                    raise RuntimeError(
                        f"policy pack exited ({code}) before printing its port; stderr:\n{self.stderr_text()}"
                    )
                line += chunk
        try:
            return int(line.strip())
        except ValueError as exc:
            raise RuntimeError(
                f"policy pack printed {line!r} instead of its port; stderr:\n{self.stderr_text()}"
            ) from exc

    @property
    def pid(self) -> int | None:
        """The pack process's id while it runs (None before start())."""
        return self._proc.pid if self._proc is not None else None

    def stderr_text(self) -> str:
        """What the pack wrote on stderr (kept after stop())."""
        if self._stderr is None:
            return self._stderr_final
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def stop(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._proc is not None and self._proc.poll() is None:
            # The pack serves until KeyboardInterrupt, then stops its server.
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()
        if self._engine_server is not None:
            self._engine_server.stop(0)
            self._engine_server = None
        if self._stderr is not None:
            self._stderr_final = self.stderr_text()
            self._stderr.close()
            self._stderr = None

    # --- the Analyzer protocol ---------------------------------------------------------------

    @property
    def stub(self) -> analyzer_pb2_grpc.AnalyzerStub:
        assert self._stub is not None, "start() the pack first"
        return self._stub

    def info(self) -> PackInfo:
        if self._info is None:
            resp = self.stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
            version = str(self._pack_file().get("version") or resp.version)
            policies = {}
            for p in resp.policies:
                policies[p.name] = PolicyMeta(
                    name=p.name,
                    display_name=p.displayName,
                    description=p.description,
                    level=_LEVEL_NAME_OF[p.enforcementLevel],
                    severity=_SEVERITY_NAMES[p.severity],
                    kind="stack" if p.policy_type == analyzer_pb2.POLICY_TYPE_STACK else "resource",
                    config_schema=json_format.MessageToDict(p.configSchema.properties),
                    required=tuple(p.configSchema.required),
                    remediation=p.remediation_steps,
                    url=p.url,
                )
            initial = {
                name: (_LEVEL_NAME_OF[c.enforcementLevel], json_format.MessageToDict(c.properties))
                for name, c in resp.initialConfig.items()
            }
            self._info = PackInfo(resp.name, version, resp.supportsConfig, policies, initial)
        return self._info

    def configure(self, config: Mapping[str, Any] | str | Path | None = None) -> dict[str, tuple[str, dict[str, Any]]]:
        """Configure the pack as `--policy-pack-config` would; raises PolicyConfigInvalid like the engine."""
        raw: Mapping[str, Any] | None = read_config_file(config) if isinstance(config, (str, Path)) else config
        info = self.info()
        if not info.supports_config:
            if raw:
                raise PolicyConfigInvalid([f'policy pack "{info.name}" at "{self.pack_dir}" does not support config'])
            return {}
        effective = reconcile_config(info, raw)
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for name, (level, props) in effective.items():
            policy_config = analyzer_pb2.PolicyConfig(enforcementLevel=ENFORCEMENT_LEVELS[level])
            if props:
                policy_config.properties.update(json.loads(json.dumps(props)))
            request.policyConfig[name].CopyFrom(policy_config)
        self.stub.Configure(request, timeout=30)
        return effective

    def analyze(
        self,
        resource_type: str,
        name: str,
        props: Mapping[str, Any],
        *,
        protect: bool = False,
        stack: str | None = None,
    ) -> AnalyzeResult:
        """The pack's verdict on one resource; `stack`: the stack its URN names (default this
        process's), which the pack's rules read as the resource's stack."""
        request = self._analyze_request(resource_type, name, props, protect, stack)
        try:
            return self._result(self.stub.Analyze(request, timeout=30))
        except grpc.RpcError as exc:
            raise AnalyzerFailed(exc) from exc

    def analyze_many(
        self, resources: Sequence[tuple[str, str, Mapping[str, Any], bool]], *, stack: str | None = None, window: int = 8
    ) -> list[AnalyzeResult]:
        """`analyze` for each (type, name, props, protect), in order, with up to `window` requests in
        flight: the next requests are marshalled while the pack judges the earlier ones (the pack
        serves on its own threads), so a thousand resources cost the pack's time, not the sum of
        both sides'."""
        pending: deque[grpc.Future] = deque()
        results: list[AnalyzeResult] = []
        try:
            for resource_type, name, props, protect in resources:
                request = self._analyze_request(resource_type, name, props, protect, stack)
                pending.append(self.stub.Analyze.future(request, timeout=30))
                if len(pending) >= window:
                    results.append(self._result(pending.popleft().result()))
            while pending:
                results.append(self._result(pending.popleft().result()))
        except grpc.RpcError as exc:
            for future in pending:
                future.cancel()
            raise AnalyzerFailed(exc) from exc
        return results

    def _analyze_request(
        self, resource_type: str, name: str, props: Mapping[str, Any], protect: bool, stack: str | None
    ) -> analyzer_pb2.AnalyzeRequest:
        return analyzer_pb2.AnalyzeRequest(
            type=resource_type,
            name=name,
            urn=urn_for(stack or self.stack, self.project, resource_type, name),
            properties=to_struct(props),
            options=analyzer_pb2.AnalyzerResourceOptions(protect=protect),
        )

    def analyze_stack(self, resources: Sequence[StackResource]) -> AnalyzeResult:
        request = analyzer_pb2.AnalyzeStackRequest(
            resources=[
                analyzer_pb2.AnalyzerResource(
                    type=r.type,
                    name=r.name,
                    urn=urn_for(self.stack, self.project, r.type, r.name),
                    properties=to_struct(r.props),
                    options=analyzer_pb2.AnalyzerResourceOptions(protect=r.protect),
                )
                for r in resources
            ]
        )
        try:
            return self._result(self.stub.AnalyzeStack(request, timeout=30))
        except grpc.RpcError as exc:
            raise AnalyzerFailed(exc) from exc

    def _result(self, resp: analyzer_pb2.AnalyzeResponse) -> AnalyzeResult:
        version = self.info().version
        return AnalyzeResult(
            diagnostics=tuple(
                Diagnostic(
                    policy=d.policyName,
                    message=d.message,
                    level=_LEVEL_NAME_OF[d.enforcementLevel],
                    urn=d.urn,
                    severity=_SEVERITY_NAMES[d.severity],
                    pack=d.policyPackName,
                    # The engine reports the version from PulumiPolicy.yaml.
                    version=version or d.policyPackVersion,
                )
                for d in resp.diagnostics
            ),
            not_applicable={n.policy_name: n.reason for n in resp.not_applicable},
        )


def start_policy_pack(stack: str, **kwargs: Any) -> PolicyPackProcess:
    """Start the pack for `stack` (see PolicyPackProcess for options) and wait until it answers."""
    return PolicyPackProcess(stack=stack, **kwargs).start()
