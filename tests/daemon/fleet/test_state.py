"""A stack's deployed state: the export document read without a CLI, and the file:// version probe with a stand-in `pulumi` on PATH."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest

from redisguard.core.errors import ConfigError
from redisguard.core.pulumi import INSTANCE_TYPE, SECRET_SIG, SECRET_SIG_KEY, is_secret
from redisguard.daemon.config import PulumiSettings, config_from_mapping
from redisguard.daemon.fleet import state as fleet_state
from redisguard.daemon.fleet.declared import DeclaredStack, declare_stack, declared_at_hand
from redisguard.daemon.fleet.stacks import read_stack_files
from redisguard.daemon.fleet.state import checkpoint_candidates, parse_export, read_export_file, read_stack_state
from tests.fixtures.processes import command_on_path

URN = "urn:pulumi:staging::ampledash-infra::"
PROVIDER = f"{URN}pulumi:providers:gcp::default_9_37_0"
PLAINTEXT = "not-a-real-auth-string-5b9c"


def _export(resources: list[dict[str, Any]], version: int = 3) -> dict[str, Any]:
    return {"version": version, "deployment": {"manifest": {"version": "v3.274.1"}, "resources": resources}}


def _resources() -> list[dict[str, Any]]:
    return [
        {"urn": f"{URN}pulumi:pulumi:Stack::ampledash-infra-staging", "custom": False, "type": "pulumi:pulumi:Stack"},
        {"urn": PROVIDER, "custom": True, "id": "452ed27e", "type": "pulumi:providers:gcp", "inputs": {"project": "p"}},
        {
            "urn": f"{URN}{INSTANCE_TYPE}::redis-sidekiq",
            "custom": True,
            "id": "projects/p/locations/r/instances/redis-sidekiq",
            "type": INSTANCE_TYPE,
            "inputs": {"memorySizeGb": 2, "redisConfigs": {"activedefrag": "yes"}},
            "outputs": {"memorySizeGb": 2, "authString": {SECRET_SIG_KEY: SECRET_SIG, "ciphertext": "v1:abc"}},
            "parent": f"{URN}pulumi:pulumi:Stack::ampledash-infra-staging",
            "provider": f"{PROVIDER}::452ed27e",
        },
        # The old copy of a replaced instance, waiting for deletion: not deployed.
        {"urn": f"{URN}{INSTANCE_TYPE}::redis-sidekiq", "custom": True, "id": "old", "type": INSTANCE_TYPE, "delete": True},
    ]


def test_an_export_gives_every_deployed_resource_with_its_inputs_outputs_and_references() -> None:
    state = parse_export(json.dumps(_export(_resources())), stack="staging", source="test")

    assert [r.type for r in state.resources] == ["pulumi:pulumi:Stack", "pulumi:providers:gcp", INSTANCE_TYPE]
    (instance,) = state.of_type(INSTANCE_TYPE)
    assert (instance.name, instance.project, instance.id) == ("redis-sidekiq", "ampledash-infra", "projects/p/locations/r/instances/redis-sidekiq")
    assert instance.inputs == {"memorySizeGb": 2, "redisConfigs": {"activedefrag": "yes"}}
    assert is_secret(instance.outputs["authString"])
    assert instance.provider == f"{PROVIDER}::452ed27e" and instance.parent is not None
    assert state.cached is False and state.version.startswith("sha256:")


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("{not json", "not valid JSON (line 1, column 2)"),
        ("[]", "the document is not a JSON object"),
        (json.dumps(_export([], version=1)), "key 'version' is 1; supported deployment versions: 3, 4"),
        (json.dumps({"version": 3}), "key 'deployment' is missing or not an object"),
        (json.dumps({"version": 3, "deployment": {"resources": {}}}), "key 'deployment.resources' is not a list"),
        (
            json.dumps(_export([{"type": INSTANCE_TYPE, "inputs": {"authString": PLAINTEXT}}, {"urn": f"{URN}x::y"}])),
            "deployment.resources[0].urn is missing or not a Pulumi URN; deployment.resources[1].type is missing",
        ),
        (json.dumps(_export([{"urn": f"{URN}x::y", "type": "x", "inputs": [PLAINTEXT]}])), "inputs and outputs must be objects"),
    ],
)
def test_a_document_that_is_not_an_export_is_one_error_naming_its_source_and_no_value(document: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_export(document, stack="staging", source="state.json")

    message = str(caught.value)
    assert message.startswith("state.json: not a Pulumi deployment export: ") and problem in message, message
    assert PLAINTEXT not in message


def test_an_export_file_names_its_stack_by_its_urns(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(_export(_resources())))

    assert read_export_file(path).stack == "staging"
    with pytest.raises(ConfigError, match=r"missing\.json: cannot read the state file: No such file"):
        read_export_file(tmp_path / "missing.json")


def test_the_checkpoint_is_looked_for_where_the_diy_backend_keeps_it(tmp_path: Path) -> None:
    stacks = tmp_path / ".pulumi" / "stacks"

    assert checkpoint_candidates(tmp_path, "staging", "ampledash-infra")[:3] == [
        stacks / "ampledash-infra" / "staging.json",
        stacks / "ampledash-infra" / "staging.json.gz",
        stacks / "ampledash-infra" / "staging.json.zst",
    ]
    assert checkpoint_candidates(tmp_path, "organization/other/prod", "ampledash-infra")[0] == stacks / "other" / "prod.json"
    assert stacks / "staging.json" in checkpoint_candidates(tmp_path, "staging", None)  # the legacy layout


@pytest.fixture
def fake_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[PulumiSettings, Path, Path]:
    """A project folder, a file:// backend holding the stack's checkpoint in the legacy layout, and a
    stand-in `pulumi` that prints that checkpoint as its export and logs each run."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: ampledash-infra\nruntime: nodejs\n")
    checkpoint = tmp_path / "state" / ".pulumi" / "stacks" / "staging.json"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_text(json.dumps(_export(_resources())))
    runs = tmp_path / "runs.log"
    command_on_path(tmp_path, "pulumi", f'#!/bin/sh\necho "$PULUMI_BACKEND_URL $*" >> {runs}\ncat {checkpoint}\n', monkeypatch)
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    fleet_state.clear_cache()
    settings = PulumiSettings(work_dir=project, stacks=("staging",), backend_url=f"file://{tmp_path / 'state'}")
    return settings, checkpoint, runs


def test_a_file_backend_stack_is_exported_again_only_when_its_checkpoint_changed(
    fake_backend: tuple[PulumiSettings, Path, Path],
) -> None:
    settings, checkpoint, runs = fake_backend

    first = read_stack_state(settings, "staging")
    again = read_stack_state(settings, "staging")
    checkpoint.write_text(json.dumps(_export(_resources()[:2])))
    changed = read_stack_state(settings, "staging")

    assert [first.cached, again.cached, changed.cached] == [False, True, False]
    assert str(checkpoint) in first.version and again.version == first.version != changed.version
    assert changed.of_type(INSTANCE_TYPE) == []
    backend = settings.backend_url
    assert runs.read_text().splitlines() == [f"{backend} stack export --stack staging --non-interactive --color never"] * 2


def test_a_backend_without_a_probe_is_exported_on_every_read(fake_backend: tuple[PulumiSettings, Path, Path]) -> None:
    settings, _, runs = fake_backend
    cloud = settings.model_copy(update={"backend_url": "https://api.pulumi.example"})

    reads = [read_stack_state(cloud, "staging") for _ in range(2)]

    assert [r.cached for r in reads] == [False, False] and reads[0].version == reads[1].version
    assert len(runs.read_text().splitlines()) == 2


def test_a_checkpoint_replaced_by_one_with_the_same_mtime_and_size_is_exported_again(
    fake_backend: tuple[PulumiSettings, Path, Path],
) -> None:
    settings, checkpoint, runs = fake_backend
    first = read_stack_state(settings, "staging")
    before = checkpoint.stat()
    # As the CLI writes a checkpoint (a new file renamed over the old), restored to the old mtime
    # and padded to the old size (a restore from a backup that kept both): only the inode says so.
    written = checkpoint.with_name("staging.json.tmp")
    written.write_text(json.dumps(_export(_resources()[:2])).ljust(before.st_size))
    os.utime(written, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(written, checkpoint)
    assert (checkpoint.stat().st_mtime_ns, checkpoint.stat().st_size) == (before.st_mtime_ns, before.st_size)

    changed = read_stack_state(settings, "staging")

    assert (first.cached, changed.cached) == (False, False) and changed.of_type(INSTANCE_TYPE) == []
    assert len(runs.read_text().splitlines()) == 2


def test_a_new_checkpoint_variant_beside_an_unchanged_one_is_exported_again(
    fake_backend: tuple[PulumiSettings, Path, Path],
) -> None:
    settings, checkpoint, runs = fake_backend
    read_stack_state(settings, "staging")
    # The CLI's compression setting changed: it writes staging.json.gz and leaves staging.json as it was.
    checkpoint.with_name("staging.json.gz").write_bytes(gzip.compress(checkpoint.read_bytes()))

    again = read_stack_state(settings, "staging")

    assert again.cached is False and len(runs.read_text().splitlines()) == 2


def _age(folder: Path, seconds: float) -> None:
    """Give `folder` an mtime `seconds` ago: past the racy window, so its listing is trusted."""
    stat = folder.stat()
    os.utime(folder, ns=(stat.st_atime_ns, stat.st_mtime_ns - int(seconds * 1e9)))


def test_a_new_checkpoint_variant_is_seen_when_the_stacks_folder_listing_is_remembered(
    fake_backend: tuple[PulumiSettings, Path, Path],
) -> None:
    """The probe remembers each stack folder's names while the folder's stat is unchanged: a variant
    written beside the checkpoint changes the folder, so it is seen whether the folder changed just
    now (its stat cannot tell yet) or long enough ago for the stat to be trusted."""
    settings, checkpoint, runs = fake_backend
    _age(checkpoint.parent, 60)
    first = read_stack_state(settings, "staging")
    assert read_stack_state(settings, "staging").cached is True  # the listing remembered
    checkpoint.with_name("staging.json.gz").write_bytes(gzip.compress(checkpoint.read_bytes()))
    just_now = read_stack_state(settings, "staging")
    _age(checkpoint.parent, 30)
    later = read_stack_state(settings, "staging")

    assert (first.cached, just_now.cached, later.cached) == (False, False, True)
    assert "staging.json.gz" in just_now.version and later.version == just_now.version
    assert len(runs.read_text().splitlines()) == 2


def test_within_one_look_the_shared_files_are_looked_at_once_and_each_checkpoint_each_time(
    fake_backend: tuple[PulumiSettings, Path, Path],
) -> None:
    """A scan reads its stacks within one_look(): the backend's shared files (meta.yaml, the
    folders, Pulumi.yaml) as they were when it began, each stack's own checkpoint as it is."""
    settings, checkpoint, _ = fake_backend
    meta = checkpoint.parent.parent / "meta.yaml"
    meta.write_text("version: 0\n")
    read_stack_state(settings, "staging")
    with fleet_state.one_look():
        before = fleet_state.cached_stack_state(settings, "staging")
        meta.write_text("version: 1\n# changed by another tool\n")
        during = fleet_state.cached_stack_state(settings, "staging")
        checkpoint.write_text(json.dumps(_export(_resources()[:2])))
        rewritten = fleet_state.cached_stack_state(settings, "staging")
    after = fleet_state.cached_stack_state(settings, "staging")

    assert before is not None and during is before
    assert rewritten is None and after is None  # not cached any more: the CLI reads it again


def test_the_declared_side_of_an_unchanged_stack_is_the_one_read_last_and_read_again_once_it_changed(
    fake_backend: tuple[PulumiSettings, Path, Path],
) -> None:
    settings, checkpoint, _ = fake_backend
    config = config_from_mapping({"pulumi": settings.model_dump(mode="json")})
    (file,) = read_stack_files(config)

    declare_stack(config, file)  # exported (and cached)
    first, again = declare_stack(config, file), declare_stack(config, file)
    checkpoint.write_text(json.dumps(_export(_resources()[:2])))
    changed = declare_stack(config, file)

    assert isinstance(first, DeclaredStack) and isinstance(changed, DeclaredStack)
    assert again is first and [i.resource for i in first.instances] == ["redis-sidekiq"]
    assert changed is not first and changed.instances == ()


def test_a_project_file_that_cannot_be_decoded_leaves_the_declared_side_to_the_check(
    fake_backend: tuple[PulumiSettings, Path, Path],
) -> None:
    settings, _, _ = fake_backend
    config = config_from_mapping({"pulumi": settings.model_dump(mode="json")})
    (file,) = read_stack_files(config)
    (settings.work_dir / "Pulumi.yaml").write_bytes(b"name: \xff\xfe\n")

    # Not at hand (the scan's checks read it, each failure a stack's result), never an exception.
    assert declared_at_hand(config, file) is None
