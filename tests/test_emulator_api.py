"""The emulated Memorystore admin API, driven only through google-cloud-redis (REST) and redis-py."""

from __future__ import annotations

import pytest
import redis
from google.api_core import exceptions
from google.cloud import redis_v1
from google.protobuf import field_mask_pb2

from tests.fixtures.emulator import EmulatorHandle, connect_redis
from tests.fixtures.processes import wait_for

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory):
    from tests.fixtures.emulator import start_emulator

    handle = start_emulator(tmp_path_factory.mktemp("emulator-api"))
    yield handle
    handle.stop()


@pytest.fixture
def client(emulator: EmulatorHandle) -> redis_v1.CloudRedisClient:
    return emulator.redis_client()


def _create(client: redis_v1.CloudRedisClient, emulator: EmulatorHandle, instance_id: str, **fields) -> redis_v1.Instance:
    fields.setdefault("tier", redis_v1.Instance.Tier.BASIC)
    fields.setdefault("memory_size_gb", 1)
    op = client.create_instance(parent=emulator.parent(), instance_id=instance_id, instance=redis_v1.Instance(**fields))
    return op.result(timeout=30)


def _pid_alive(port: int) -> bool:
    try:
        connect_redis("127.0.0.1", port, timeout=0.5).ping()
    except redis.AuthenticationError:
        return True
    except redis.ConnectionError:
        return False
    return True


def test_lifecycle_create_connect_patch_delete(client: redis_v1.CloudRedisClient, emulator: EmulatorHandle) -> None:
    inst = _create(client, emulator, "lifecycle", auth_enabled=True, labels={"team": "platform"})
    assert inst.state == redis_v1.Instance.State.READY
    assert inst.host == "127.0.0.1" and inst.port > 0
    got = client.get_instance(name=inst.name)
    assert got.name == emulator.instance_name("lifecycle")
    assert got.labels == {"team": "platform"}
    assert got.redis_version == "REDIS_7_2"

    auth = client.get_instance_auth_string(name=inst.name).auth_string
    assert auth
    with pytest.raises(redis.AuthenticationError):
        connect_redis(inst.host, inst.port).ping()
    data = connect_redis(inst.host, inst.port, auth)
    data.set("greeting", "hello")
    assert data.config_get("maxmemory") == {"maxmemory": str(16 * MiB)}
    # Memorystore's default eviction policy, not redis's own noeviction.
    assert data.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-lru"}

    patched = client.update_instance(
        update_mask=field_mask_pb2.FieldMask(paths=["memory_size_gb", "redis_configs"]),
        instance=redis_v1.Instance(name=inst.name, memory_size_gb=3, redis_configs={"maxmemory-policy": "allkeys-lru"}),
    ).result(timeout=30)
    assert patched.memory_size_gb == 3
    assert data.config_get("maxmemory") == {"maxmemory": str(3 * 16 * MiB)}
    assert data.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    assert data.get("greeting") == b"hello"
    data.close()

    client.delete_instance(name=inst.name).result(timeout=30)
    with pytest.raises(exceptions.NotFound):
        client.get_instance(name=inst.name)
    wait_for(lambda: not _pid_alive(inst.port), timeout=10, what="redis-server of the deleted instance to exit")


def test_list_across_regions_and_pages(client: redis_v1.CloudRedisClient, emulator: EmulatorHandle) -> None:
    for region, instance_id in (("europe-west1", "list-a"), ("us-central1", "list-b"), ("us-central1", "list-c")):
        client.create_instance(
            parent=emulator.parent(region),
            instance_id=instance_id,
            instance=redis_v1.Instance(tier="BASIC", memory_size_gb=1),
        ).result(timeout=30)
    everywhere = {i.name for i in client.list_instances(request={"parent": emulator.parent("-"), "page_size": 1})}
    assert {emulator.instance_name("list-a"), emulator.instance_name("list-b", "us-central1")} <= everywhere
    assert emulator.instance_name("list-c", "us-central1") in everywhere
    pager = client.list_instances(request={"parent": emulator.parent("us-central1"), "page_size": 1})
    pages = list(pager.pages)
    assert [len(p.instances) for p in pages] == [1, 1]
    assert {i.name for p in pages for i in p.instances} == {
        emulator.instance_name("list-b", "us-central1"),
        emulator.instance_name("list-c", "us-central1"),
    }
