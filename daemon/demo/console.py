"""What the demo does to the fleet, as a person in the console and a busy application would: an out-of-band
change through the official Memorystore client, and real writes to an instance's redis-server.

The AUTH string the writes need is read from the API and handed to the Redis client only: it is
never printed, logged or put in an error.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from redisguard.core.errors import PermanentError

if TYPE_CHECKING:
    from google.cloud import redis_v1

FILL_VALUE_BYTES = 4096
"""Each write's value: a cache entry's size, so a few hundred writes fill an emulated instance."""


def redis_client(endpoint: str) -> redis_v1.CloudRedisClient:
    """The official Memorystore client (REST) pointed at the emulator, without credentials."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import redis_v1

    return redis_v1.CloudRedisClient(
        transport="rest", client_options={"api_endpoint": endpoint}, credentials=AnonymousCredentials()
    )


def change_out_of_band(client: redis_v1.CloudRedisClient, name: str) -> list[str]:
    """Grow instance `name`'s memory by 1 GB and switch its eviction policy, as someone in the console
    would; returns what changed, for the demo's output."""
    from google.api_core import exceptions as gexc
    from google.cloud import redis_v1
    from google.protobuf import field_mask_pb2

    instance_id = name.rsplit("/", 1)[-1]
    try:
        before = client.get_instance(name=name)
        configs = dict(before.redis_configs)
        old_policy = configs.get("maxmemory-policy", "unset")
        configs["maxmemory-policy"] = "allkeys-lru" if old_policy != "allkeys-lru" else "allkeys-lfu"
        operation = client.update_instance(
            update_mask=field_mask_pb2.FieldMask(paths=["memory_size_gb", "redis_configs"]),
            instance=redis_v1.Instance(name=name, memory_size_gb=before.memory_size_gb + 1, redis_configs=configs),
        )
        operation.result(timeout=60)
    except gexc.GoogleAPICallError as exc:
        raise PermanentError(f"could not change {instance_id}: {exc.message}") from exc
    return [
        f"memory_size_gb {before.memory_size_gb} -> {before.memory_size_gb + 1}",
        f"maxmemory-policy {old_policy} -> {configs['maxmemory-policy']}",
    ]


def fill(client: redis_v1.CloudRedisClient, name: str, ratio: float) -> float:
    """Real writes (FILL_VALUE_BYTES values) to instance `name`'s redis-server until INFO's used_memory
    is at least `ratio` of maxmemory, as an application filling its cache would; the ratio reached."""
    from google.api_core import exceptions as gexc
    from redis.exceptions import RedisError

    from redisguard.emulator.memorystore.processes import connect

    instance_id = name.rsplit("/", 1)[-1]
    try:
        inst = client.get_instance(name=name)
        auth = client.get_instance_auth_string(name=name).auth_string if inst.auth_enabled else None
    except gexc.GoogleAPICallError as exc:
        raise PermanentError(f"could not read {instance_id}: {exc.message}") from exc
    data = connect(inst.host, inst.port, auth)
    try:
        maxmemory = int(data.config_get("maxmemory").get("maxmemory") or 0)
        if maxmemory <= 0:
            raise PermanentError(f"{instance_id} has no maxmemory: nothing to fill")
        value, prefix, n = b"x" * FILL_VALUE_BYTES, f"demo:{uuid.uuid4().hex[:8]}", 0
        while (used := int(data.info("memory")["used_memory"])) < ratio * maxmemory:
            # Pipelined, yet never far past the goal: a batch writes at most half of what is left.
            batch = max(1, min(200, int(ratio * maxmemory - used) // (2 * len(value))))
            with data.pipeline(transaction=False) as pipe:
                for _ in range(batch):
                    pipe.set(f"{prefix}:{n}", value)
                    n += 1
                pipe.execute()
        return int(data.info("memory")["used_memory"]) / maxmemory
    except RedisError as exc:
        # The exception's text names host and port, never the password; type only, to be sure.
        raise PermanentError(f"could not write to {instance_id}'s redis-server ({type(exc).__name__})") from exc
    finally:
        data.close()
