"""The program's Memorystore message types load without the API clients, and a later full import is the usual package."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout


def test_the_program_imports_the_message_types_but_not_the_clients() -> None:
    # The clients cost `policy-check` about half a second of imports it never uses.
    out = _run("import sys, redisguard.program.fleet\nprint('google.cloud.redis_v1.services' in sys.modules)")
    assert out.split() == ["False"]


def test_a_later_import_of_the_package_gives_its_clients_and_the_same_types() -> None:
    out = _run(
        "from redisguard.program.redis_types import cloud_redis\n"
        "from google.cloud import redis_v1\n"
        "from google.cloud.redis_v1 import CloudRedisClient\n"
        "print(redis_v1.Instance is cloud_redis.Instance, redis_v1.types.cloud_redis is cloud_redis,"
        " CloudRedisClient.__name__, redis_v1.__version__ != '')"
    )
    assert out.split() == ["True", "True", "CloudRedisClient", "True"]
