"""The Analyzer protocol's messages without importing the Pulumi SDK: the SDK's own generated modules and classes."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from redisguard.policies import protocol
assert "pulumi" not in sys.modules, "loading the protocol imported the SDK"
request = protocol.analyzer_pb2.AnalyzeRequest(type="gcp:redis/instance:Instance", name="redis-cache")
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc, engine_pb2
# One descriptor pool entry per proto file, so the classes are the SDK's own.
assert protocol.analyzer_pb2.AnalyzeRequest is analyzer_pb2.AnalyzeRequest
assert protocol.engine_pb2.LogRequest is engine_pb2.LogRequest
assert analyzer_pb2.AnalyzeRequest.FromString(request.SerializeToString()) == request
assert hasattr(protocol.analyzer_pb2_grpc, "AnalyzerStub") and hasattr(analyzer_pb2_grpc, "AnalyzerStub")
print("ok")
"""

LOADED_FIRST = """
import pulumi.runtime.proto
from redisguard.policies import protocol
from pulumi.runtime.proto import analyzer_pb2
assert protocol.analyzer_pb2 is analyzer_pb2, "the SDK's modules are used once the SDK is loaded"
print("ok")
"""


def test_the_protocol_loads_without_the_sdk_and_its_messages_are_the_sdks() -> None:
    for probe in (PROBE, LOADED_FIRST):
        run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
        assert run.stdout.strip() == "ok", run.stderr
