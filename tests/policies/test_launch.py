"""policies/launch.py: a pack started as Pulumi's Python host starts it, with the engine's log service at the address it is given."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
from google.protobuf import empty_pb2

from redisguard.policies.launch import launch_pack
from redisguard.policies.protocol import engine_pb2


def test_the_engine_service_answers_at_the_address_the_pack_is_given(tmp_path: Path) -> None:
    # The server starts after the pack (its port reserved beforehand): a pack that logs as soon as
    # it runs must still reach it. This pack prints the address it was given as its "port" line.
    (tmp_path / "__main__.py").write_text("import sys, time\nprint(sys.argv[1], flush=True)\ntime.sleep(60)\n")
    launched = launch_pack(tmp_path, stack="staging", python=sys.executable)
    try:
        assert launched.process.stdout is not None
        given = launched.process.stdout.readline().decode().strip()
        assert given == launched.engine_address
        with grpc.insecure_channel(given) as channel:
            log = channel.unary_unary(
                "/pulumirpc.Engine/Log",
                request_serializer=engine_pb2.LogRequest.SerializeToString,
                response_deserializer=empty_pb2.Empty.FromString,
            )
            log(engine_pb2.LogRequest(severity=engine_pb2.WARNING, message="from the pack"), timeout=10)
        assert launched.engine.logs == [("WARNING", "from the pack")]
    finally:
        launched.process.kill()
        launched.process.wait()
        assert launched.process.stdout is not None
        launched.process.stdout.close()
        launched.engine_server.stop(0)
        launched.stderr.close()
