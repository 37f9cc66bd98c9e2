"""The emulated Memorystore admin API, driven only through google-cloud-redis (REST) and redis-py."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

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
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    from tests.fixtures.emulator import start_emulator

    handle = start_emulator(tmp_path_factory.mktemp("emulator-api"))
    yield handle
    handle.stop()


@pytest.fixture
def client(emulator: EmulatorHandle) -> redis_v1.CloudRedisClient:
    return emulator.redis_client()


def _create(
    client: redis_v1.CloudRedisClient, emulator: EmulatorHandle, instance_id: str, **fields: Any
) -> redis_v1.Instance:
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


@pytest.mark.parametrize(
    ("instance_id", "fields", "message"),
    [
        ("Upper-Case", {}, "Invalid instance_id 'Upper-Case'"),
        ("ends-with-hyphen-", {}, "Invalid instance_id"),
        ("x" * 41, {}, "Invalid instance_id"),
        ("no-tier", {"tier": redis_v1.Instance.Tier.TIER_UNSPECIFIED}, "instance.tier"),
        ("too-big", {"memory_size_gb": 301}, "memory_size_gb': 301"),
        (
            "replicas-small",
            {"tier": "STANDARD_HA", "read_replicas_mode": "READ_REPLICAS_ENABLED", "memory_size_gb": 2},
            "between 5 and 300",
        ),
        ("basic-replicas", {"replica_count": 1}, "BASIC"),
        ("bad-policy", {"redis_configs": {"maxmemory-policy": "lru-ish"}}, "maxmemory-policy"),
        ("bad-config", {"redis_configs": {"save": "60 1"}}, "Invalid redis_configs key 'save'"),
        ("bad-label", {"labels": {"Team": "x"}}, "Invalid label key 'Team'"),
        ("bad-version", {"redis_version": "REDIS_9_9"}, "REDIS_9_9"),
        ("bad-zone", {"location_id": "us-east1-b"}, "zone of region europe-west1"),
    ],
)
def test_invalid_create_is_bad_request(
    client: redis_v1.CloudRedisClient, emulator: EmulatorHandle, instance_id: str, fields: dict, message: str
) -> None:
    fields = {"tier": "BASIC", "memory_size_gb": 1, **fields}
    with pytest.raises(exceptions.BadRequest) as err:
        client.create_instance(parent=emulator.parent(), instance_id=instance_id, instance=redis_v1.Instance(**fields))
    assert message in err.value.message
    with pytest.raises(exceptions.NotFound):
        client.get_instance(name=emulator.instance_name(instance_id))


def test_conflicts_and_immutable_fields(client: redis_v1.CloudRedisClient, emulator: EmulatorHandle) -> None:
    inst = _create(client, emulator, "immutable", tier="STANDARD_HA")
    assert inst.replica_count == 1 and inst.alternative_location_id
    with pytest.raises(exceptions.Conflict, match="already exists"):
        _create(client, emulator, "immutable")
    for field, value in (
        ("tier", "BASIC"),
        ("connect_mode", "PRIVATE_SERVICE_ACCESS"),
        ("location_id", "europe-west1-d"),
    ):
        with pytest.raises(exceptions.BadRequest, match=f"Field '{field}' cannot be updated"):
            client.update_instance(
                update_mask=field_mask_pb2.FieldMask(paths=[field]),
                instance=redis_v1.Instance(name=inst.name, **{field: value}),
            )
    with pytest.raises(exceptions.BadRequest, match="update_mask"):
        client.update_instance(
            update_mask=field_mask_pb2.FieldMask(paths=[]), instance=redis_v1.Instance(name=inst.name)
        )
    assert client.get_instance(name=inst.name).tier == redis_v1.Instance.Tier.STANDARD_HA
    with pytest.raises(exceptions.NotFound):
        client.delete_instance(name=emulator.instance_name("never-created"))


def test_killed_instance_is_repairing_and_refuses_updates(
    client: redis_v1.CloudRedisClient, emulator: EmulatorHandle
) -> None:
    inst = _create(client, emulator, "to-kill")
    result = emulator.kill_instance(emulator.region, "to-kill")
    assert result["killed"] is True
    assert not _pid_alive(inst.port)
    assert client.get_instance(name=inst.name).state == redis_v1.Instance.State.REPAIRING
    with pytest.raises(exceptions.BadRequest, match="while it is REPAIRING") as err:
        client.update_instance(
            update_mask=field_mask_pb2.FieldMask(paths=["memory_size_gb"]),
            instance=redis_v1.Instance(name=inst.name, memory_size_gb=2),
        )
    assert err.value.code == 400
    emulator.start_instance(emulator.region, "to-kill")
    back = client.get_instance(name=inst.name)
    assert back.state == redis_v1.Instance.State.READY
    assert _pid_alive(back.port)
    # Deleting works in either state.
    client.delete_instance(name=inst.name).result(timeout=30)


def test_repair_keeps_only_what_persistence_keeps(client: redis_v1.CloudRedisClient, emulator: EmulatorHandle) -> None:
    """A crashed node comes back from its last RDB snapshot with RDB persistence, empty without."""
    rdb = _create(client, emulator, "crash-rdb", persistence_config=redis_v1.PersistenceConfig(persistence_mode="RDB"))
    plain = _create(client, emulator, "crash-plain")
    for inst in (rdb, plain):
        data = connect_redis(inst.host, inst.port)
        data.set("snapshotted", "yes")
        data.save()  # what the snapshot schedule would do
        data.set("after-snapshot", "lost")
        data.close()
        emulator.kill_instance(emulator.region, inst.name.rsplit("/", 1)[1])
        emulator.start_instance(emulator.region, inst.name.rsplit("/", 1)[1])
    data = connect_redis(rdb.host, rdb.port)
    assert (data.get("snapshotted"), data.get("after-snapshot")) == (b"yes", None)
    data.close()
    data = connect_redis(plain.host, plain.port)
    assert data.dbsize() == 0, "without persistence a repaired instance starts empty"
    data.close()


def test_activedefrag_is_recorded_where_the_build_refuses_it(
    client: redis_v1.CloudRedisClient, emulator: EmulatorHandle
) -> None:
    """Debian's redis-server refuses `activedefrag yes` (no Redis jemalloc): the instance still works."""
    inst = _create(client, emulator, "defrag", redis_configs={"activedefrag": "yes"})
    assert inst.state == redis_v1.Instance.State.READY
    assert client.get_instance(name=inst.name).redis_configs == {"activedefrag": "yes"}
    data = connect_redis(inst.host, inst.port)
    if data.config_get("activedefrag") == {"activedefrag": "no"}:
        assert "cannot apply setting=activedefrag value=yes" in emulator.log()
    patched = client.update_instance(
        update_mask=field_mask_pb2.FieldMask(paths=["redis_configs"]),
        instance=redis_v1.Instance(
            name=inst.name, redis_configs={"activedefrag": "no", "maxmemory-policy": "allkeys-lfu"}
        ),
    ).result(timeout=30)
    assert patched.redis_configs == {"activedefrag": "no", "maxmemory-policy": "allkeys-lfu"}
    assert data.config_get("activedefrag") == {"activedefrag": "no"}
    assert data.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lfu"}
    data.close()


def test_auth_toggle_and_persistence_patch(client: redis_v1.CloudRedisClient, emulator: EmulatorHandle) -> None:
    inst = _create(client, emulator, "auth-toggle")
    assert client.get_instance_auth_string(name=inst.name).auth_string == ""
    connect_redis(inst.host, inst.port).set("k", "v")
    patched = client.update_instance(
        update_mask=field_mask_pb2.FieldMask(paths=["auth_enabled", "persistence_config"]),
        instance=redis_v1.Instance(
            name=inst.name,
            auth_enabled=True,
            persistence_config=redis_v1.PersistenceConfig(persistence_mode="RDB", rdb_snapshot_period="ONE_HOUR"),
        ),
    ).result(timeout=30)
    assert patched.auth_enabled
    assert patched.persistence_config.persistence_mode == redis_v1.PersistenceConfig.PersistenceMode.RDB
    assert patched.persistence_config.rdb_next_snapshot_time
    auth = client.get_instance_auth_string(name=inst.name).auth_string
    with pytest.raises(redis.AuthenticationError):
        connect_redis(inst.host, inst.port).get("k")
    data = connect_redis(inst.host, inst.port, auth)
    assert data.get("k") == b"v"
    assert data.config_get("save") == {"save": "3600 1"}
    data.close()


def _http(emulator: EmulatorHandle, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        emulator.redis_endpoint + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def test_terraform_style_requests_get_string_enums(emulator: EmulatorHandle) -> None:
    """The Pulumi gcp provider (Terraform's google provider) sends plain JSON: enums as names, camelCase masks."""
    base = f"/v1/{emulator.parent()}/instances"
    status, op = _http(
        emulator,
        "POST",
        f"{base}?instanceId=tf-style",
        {"tier": "STANDARD_HA", "memorySizeGb": 1, "authEnabled": True, "redisVersion": "REDIS_7_0",
         "persistenceConfig": {"persistenceMode": "RDB", "rdbSnapshotPeriod": "TWELVE_HOURS"}},
    )  # fmt: skip
    assert status == 200 and op["done"] is False
    assert op["metadata"]["@type"] == "type.googleapis.com/google.cloud.redis.v1.OperationMetadata"
    status, done = _http(emulator, "GET", f"/v1/{op['name']}")
    assert done["done"] is True
    assert done["response"]["@type"] == "type.googleapis.com/google.cloud.redis.v1.Instance"
    assert (done["response"]["tier"], done["response"]["state"]) == ("STANDARD_HA", "READY")

    status, op = _http(
        emulator,
        "PATCH",
        f"{base}/tf-style?updateMask=memorySizeGb,labels",
        {"memorySizeGb": 2, "labels": {"env": "dev"}},
    )
    assert status == 200
    status, inst = _http(emulator, "GET", f"{base}/tf-style")
    assert (inst["memorySizeGb"], inst["labels"], inst["persistenceConfig"]["rdbSnapshotPeriod"]) == (
        2,
        {"env": "dev"},
        "TWELVE_HOURS",
    )
    status, inst_ints = _http(emulator, "GET", f"{base}/tf-style?%24alt=json%3Benum-encoding%3Dint")
    assert (inst_ints["tier"], inst_ints["state"]) == (3, 2)  # STANDARD_HA = 3, READY = 2 in the proto

    # A redisVersion change: the provider POSTs `:upgrade` and polls the operation.
    status, op = _http(emulator, "POST", f"{base}/tf-style:upgrade", {"redisVersion": "REDIS_7_2"})
    assert (status, op["done"], op["metadata"]["verb"]) == (200, False, "upgrade")
    status, done = _http(emulator, "GET", f"/v1/{op['name']}")
    assert done["done"] is True and done["response"]["redisVersion"] == "REDIS_7_2"
    status, error = _http(emulator, "POST", f"{base}/tf-style:upgrade", {"redisVersion": "REDIS_7_0"})
    assert (status, error["error"]["status"]) == (400, "INVALID_ARGUMENT")
    assert "not a newer version" in error["error"]["message"]

    status, error = _http(emulator, "POST", f"{base}?instanceId=tf-bad", {"tier": "HUGE", "memorySizeGb": 1})
    assert status == 400
    assert error["error"]["status"] == "INVALID_ARGUMENT" and error["error"]["code"] == 400
    status, error = _http(
        emulator, "POST", f"{base}?instanceId=tf-bad", {"tier": "BASIC", "memorySizeGb": 1, "sizeGb": 1}
    )
    assert (status, error["error"]["status"]) == (400, "INVALID_ARGUMENT")
    assert "sizeGb" in error["error"]["message"]
    status, error = _http(emulator, "GET", f"{base}/nope")
    assert (status, error["error"]["status"]) == (404, "NOT_FOUND")


def test_calls_nobody_makes_are_not_served_and_get_googles_errors(
    client: redis_v1.CloudRedisClient, emulator: EmulatorHandle
) -> None:
    """Only what redisguard and the gcp provider call is emulated; anything else is a clean error, not a hang or a crash."""
    name = _create(client, emulator, "unserved").name
    calls = [
        lambda: client.list_operations({"name": emulator.parent()}),
        lambda: client.cancel_operation({"name": f"{emulator.parent()}/operations/operation-1"}),
        lambda: client.list_locations({"name": f"projects/{emulator.project}"}),
        lambda: client.export_instance(
            name=name, output_config=redis_v1.OutputConfig(gcs_destination=redis_v1.GcsDestination(uri="gs://b/o"))
        ),
    ]
    for call in calls:
        with pytest.raises(exceptions.NotFound, match="not part of the emulated Memorystore v1 API"):
            call()
    status, error = _http(emulator, "PUT", f"/v1/{name}", {})
    assert (status, error["error"]["status"], error["error"]["code"]) == (404, "NOT_FOUND", 404)
    # The gRPC Monitoring server answers an RPC it does not serve as every gRPC server does.
    with pytest.raises(exceptions.MethodNotImplemented):
        emulator.monitoring_client().list_metric_descriptors(name=f"projects/{emulator.project}")
    client.delete_instance(name=name).result(timeout=30)
