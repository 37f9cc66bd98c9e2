"""A finding's cause: what made a call, told from the user agent Google logs, and the line people read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from redisguard.daemon.reports.cause import Cause, Change, classify_agent

AGENTS = [
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36,gzip(gfe),gzip(gfe)", "console"),
    ("google-cloud-sdk gcloud/470.0.0 command/gcloud.redis.instances.update invocation-id/4f1c environment/None", "gcloud"),
    ("Terraform/1.6.6 (+https://www.terraform.io) Terraform-Plugin-SDK/2.31.0 terraform-provider-google/5.10.0", "terraform"),
    # pulumi-gcp bridges terraform-provider-google: its agent names both, and it is Pulumi's.
    ("Pulumi/3.0 (https://www.pulumi.com) Terraform-Plugin-SDK/2.33.0 terraform-provider-google/6.8.0", "pulumi"),
    ("gl-python/3.11.6 grpc/1.60.0 gax/2.15.0 gapic/2.15.0 gccl/2.15.0", "api"),
    ("python-requests/2.31.0", "api"),
    ("", "api"),
]


@pytest.mark.parametrize(("agent", "via"), AGENTS, ids=[via + str(n) for n, (_, via) in enumerate(AGENTS)])
def test_the_user_agent_tells_what_made_the_call(agent: str, via: str) -> None:
    assert classify_agent(agent) == via


def test_a_cause_reads_as_one_line_per_change_or_says_why_it_is_unknown() -> None:
    change = Change(
        at=datetime(2026, 11, 27, 13, 12, 5, tzinfo=UTC),
        method="google.cloud.redis.v1.CloudRedis.UpdateInstance",
        principal="alice@example.com",
        via="console",
        fields=("memorySizeGb", "labels"),
    )
    assert Cause(changes=(change,)).lines() == [
        "2026-11-27 13:12:05Z UpdateInstance [memorySizeGb, labels] by alice@example.com via console"
    ]
    deploy = change.model_copy(update={"principal": "pulumi@p.iam.gserviceaccount.com", "via": "pulumi", "by_pulumi": True, "fields": ()})
    assert deploy.describe().endswith("by pulumi@p.iam.gserviceaccount.com (the identity that runs pulumi up) via pulumi")
    assert Cause(unknown="PermissionDenied").lines() == ["unknown: PermissionDenied"]
    assert Cause().lines()[0].startswith("no Memorystore change in the audit log")
