"""The engine's gRPC messages (Analyzer, Engine) from the Pulumi SDK's own generated modules, without importing the SDK.

The engine side of the Analyzer protocol (analyzer.py, launch.py) needs only the generated
`pulumi/runtime/proto/{analyzer,plugin,engine}_pb2` modules, but importing them by their package
runs `pulumi/__init__.py`, which imports the whole SDK (its runtime, the Automation API, dynamic
providers, OpenTelemetry): as long as `python -c "import pulumi"`, in a command (`policy-check`)
whose pack imports Pulumi once already. So the same files are loaded from the installed SDK's
folder as the private package `redisguard.policies._pulumi_proto`. Their descriptors go to the
default pool under their own proto names (`pulumi/analyzer.proto`), so messages are the very
classes the SDK's modules give once both are loaded (the pool keeps one copy of an identical file;
tests/policies/test_protocol.py holds it). Where the SDK is imported already, its modules are used.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc, engine_pb2

_PACKAGE = f"{__name__.rpartition('.')[0]}._pulumi_proto"


def _module(name: str) -> Any:
    """`pulumi.runtime.proto.<name>`, loaded without the SDK's package unless the SDK is loaded already."""
    if "pulumi.runtime.proto" in sys.modules:
        return importlib.import_module(f"pulumi.runtime.proto.{name}")
    if _PACKAGE not in sys.modules:
        spec = importlib.util.find_spec("pulumi")  # finds the SDK's folder without importing it
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("the Pulumi SDK (package `pulumi`) is not installed")
        package = types.ModuleType(_PACKAGE, __doc__)
        package.__path__ = [str(Path(next(iter(spec.submodule_search_locations))) / "runtime" / "proto")]
        sys.modules[_PACKAGE] = package
    return importlib.import_module(f"{_PACKAGE}.{name}")


if TYPE_CHECKING:
    __all__ = ["analyzer_pb2", "analyzer_pb2_grpc", "engine_pb2"]
else:
    analyzer_pb2 = _module("analyzer_pb2")
    analyzer_pb2_grpc = _module("analyzer_pb2_grpc")
    engine_pb2 = _module("engine_pb2")
