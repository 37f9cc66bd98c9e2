"""The emulated Cloud Logging API: the Admin Activity audit log of the Memorystore calls, read with google-cloud-logging."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from google.api_core import exceptions
from google.cloud import redis_v1
from google.cloud.audit import audit_log_pb2
from google.cloud.logging_v2.services.logging_service_v2 import LoggingServiceV2Client
from google.cloud.logging_v2.types import LogEntry
from google.protobuf import field_mask_pb2, json_format

from tests.fixtures.emulator import EmulatorHandle, caller, start_emulator

pytestmark = pytest.mark.slow

GCLOUD = "google-cloud-sdk gcloud/470.0.0 command/gcloud.redis.instances.update"
ALICE = "alice@example.com"
ACTIVITY = "cloudaudit.googleapis.com%2Factivity"
UPDATE = "google.cloud.redis.v1.CloudRedis.UpdateInstance"
CI = "ci-deployer@redisguard-test.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    handle = start_emulator(tmp_path_factory.mktemp("emulator-logging"), processes=False, extra_args=["--audit-principal", CI])
    client = handle.redis_client()
    for instance_id, instance in (
        ("audit-a", redis_v1.Instance(tier="BASIC", memory_size_gb=1)),
        # audit-b is upgraded and failed over later.
        ("audit-b", redis_v1.Instance(tier="STANDARD_HA", memory_size_gb=1, redis_version="REDIS_7_0")),
    ):
        client.create_instance(parent=handle.parent(), instance_id=instance_id, instance=instance).result(timeout=30)
    client.update_instance(
        update_mask=field_mask_pb2.FieldMask(paths=["memory_size_gb", "labels"]),
        instance=redis_v1.Instance(name=handle.instance_name("audit-a"), memory_size_gb=3, labels={"team": "x"}),
        metadata=caller(ALICE, GCLOUD),
    ).result(timeout=30)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def logging_client(emulator: EmulatorHandle) -> LoggingServiceV2Client:
    return emulator.logging_client()


def _payload(entry: LogEntry) -> audit_log_pb2.AuditLog:
    payload = audit_log_pb2.AuditLog()
    assert LogEntry.pb(entry).proto_payload.Unpack(payload)
    return payload


def _list(client: LoggingServiceV2Client, emulator: EmulatorHandle, filter_: str, **kwargs: object) -> list[LogEntry]:
    request = {"resource_names": [f"projects/{emulator.project}"], "filter": filter_, **kwargs}
    return list(client.list_log_entries(request=request))


def test_an_update_is_logged_as_google_writes_it(emulator: EmulatorHandle, logging_client: LoggingServiceV2Client) -> None:
    name = emulator.instance_name("audit-a")
    since = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    entries = _list(
        logging_client,
        emulator,
        f'logName="projects/{emulator.project}/logs/{ACTIVITY}" AND protoPayload.serviceName="redis.googleapis.com" '
        f'AND protoPayload.resourceName="{name}" AND protoPayload.methodName="{UPDATE}" AND timestamp>="{since}"',
    )
    # A long-running operation writes two entries, the first with the request and the last.
    first, last = entries
    assert (first.operation.first, last.operation.last, first.operation.id) == (True, True, last.operation.id)
    assert first.operation.producer == "redis.googleapis.com"
    payload = _payload(first)
    assert (payload.service_name, payload.method_name, payload.resource_name) == ("redis.googleapis.com", UPDATE, name)
    assert payload.authentication_info.principal_email == ALICE
    assert payload.request_metadata.caller_supplied_user_agent == GCLOUD
    request = json_format.MessageToDict(payload.request)
    assert request["@type"] == "type.googleapis.com/google.cloud.redis.v1.UpdateInstanceRequest"
    assert request["updateMask"] == "memorySizeGb,labels"  # the REST client sends the JSON form
    assert request["instance"]["memorySizeGb"] == 3
    assert first.log_name == f"projects/{emulator.project}/logs/{ACTIVITY}"
    assert first.resource.type == "redis_instance" and first.resource.labels["instance_id"] == "audit-a"


def test_filters_or_order_and_paging(emulator: EmulatorHandle, logging_client: LoggingServiceV2Client) -> None:
    creates = 'protoPayload.methodName="google.cloud.redis.v1.CloudRedis.CreateInstance"'
    a_creates = _list(logging_client, emulator, f'{creates} AND (resource.labels.instance_id="audit-b" OR protoPayload.resourceName="x")')
    assert [_payload(e).resource_name for e in a_creates] == [emulator.instance_name("audit-b")] * 2
    every = _list(logging_client, emulator, f"{creates} OR protoPayload.methodName=\"{UPDATE}\"", order_by="timestamp desc")
    assert len(every) == 6 and _payload(every[0]).method_name == UPDATE
    stamps = [LogEntry.pb(e).timestamp.ToDatetime() for e in every]
    assert stamps == sorted(stamps, reverse=True)
    pager = logging_client.list_log_entries(
        request={
            "resource_names": [f"projects/{emulator.project}"],
            "filter": f'{creates} OR protoPayload.methodName="{UPDATE}"',
            "page_size": 4,
        }
    )
    pages = list(pager.pages)
    assert [len(p.entries) for p in pages] == [4, 2]
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _list(logging_client, emulator, f'timestamp>="{future}"') == []
    assert _list(logging_client, emulator, 'protoPayload.authenticationInfo.principalEmail="bob@example.com"') == []
    assert _list(logging_client, emulator, "", resource_names=["projects/other-project"]) == []


def test_upgrade_failover_and_delete_are_logged_with_their_request(
    emulator: EmulatorHandle, logging_client: LoggingServiceV2Client
) -> None:
    client = emulator.redis_client()
    name = emulator.instance_name("audit-b")
    client.upgrade_instance(name=name, redis_version="REDIS_7_2").result(timeout=30)
    client.failover_instance(name=name).result(timeout=30)
    client.delete_instance(name=name).result(timeout=30)
    entries = _list(logging_client, emulator, f'protoPayload.resourceName="{name}" AND NOT protoPayload.methodName:"CreateInstance"')
    firsts = [_payload(e) for e in entries if e.operation.first]
    assert [p.method_name.rsplit(".", 1)[1] for p in firsts] == ["UpgradeInstance", "FailoverInstance", "DeleteInstance"]
    assert json_format.MessageToDict(firsts[0].request)["redisVersion"] == "REDIS_7_2"
    assert {p.authentication_info.principal_email for p in firsts} == {CI}  # no header: --audit-principal


def test_a_refused_read_names_the_permission(emulator: EmulatorHandle, logging_client: LoggingServiceV2Client) -> None:
    emulator.inject_fault("logging", "403")
    with pytest.raises(exceptions.PermissionDenied, match="logging.logEntries.list"):
        _list(logging_client, emulator, "")
    with pytest.raises(exceptions.InvalidArgument, match="not a field the emulator supports"):
        _list(logging_client, emulator, 'jsonPayload.x="y"')
