"""The import file `codify --import-file` writes: the document `pulumi import --file` reads, its logical names, and how it is written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from redisguard.core.errors import ConfigError, PermanentError
from redisguard.daemon.config import config_from_mapping
from redisguard.daemon.fleet.inventory import LiveKey
from redisguard.daemon.fleet.state import StackState, StateResource
from redisguard.daemon.remediation.codify import plan_import
from redisguard.daemon.remediation.import_file import (
    build_import_file,
    emit_import_file,
    import_file_for_state,
    logical_names,
)
from redisguard.daemon.remediation.plan import EXIT_NOTHING, EXIT_PROPOSED, Note
from tests.fixtures.wire import INSTANCE_TYPE

ORPHAN = "projects/ampledash-staging/locations/europe-west1/instances/redis-orphan"
CACHE = "projects/ampledash-staging/locations/europe-west1/instances/cache"


def _emit(tmp_path: Path, capsys: pytest.CaptureFixture[str], path: Path, *names: str, write: bool = False) -> tuple[int, str, str]:
    code = emit_import_file("codify", [], build_import_file("staging", names), path, write, tmp_path / "infra")
    out, err = capsys.readouterr()
    return code, out, err


def test_the_document_is_what_pulumi_import_reads_with_the_gcp_providers_import_id() -> None:
    document = build_import_file("staging", [ORPHAN, CACHE]).document()

    assert document == {
        "resources": [
            {"type": INSTANCE_TYPE, "name": "cache", "id": CACHE},
            {"type": INSTANCE_TYPE, "name": "redis-orphan", "id": ORPHAN},
        ]
    }


def test_an_explicit_provider_is_named_through_the_name_table() -> None:
    urn = "urn:pulumi:staging::ampledash-infra::pulumi:providers:gcp::europe"

    document = build_import_file("staging", [ORPHAN], provider=urn).document()

    assert document["nameTable"] == {"gcpProvider": urn}
    assert document["resources"][0]["provider"] == "gcpProvider"


def _held(name: str, provider: str | None) -> StateResource:
    urn = f"urn:pulumi:staging::ampledash-infra::{INSTANCE_TYPE}::{name}"
    return StateResource(urn, INSTANCE_TYPE, f"projects/p/locations/r/instances/{name}", {}, {}, None, provider)


def test_a_state_sourced_stack_keeps_its_names_and_passes_on_the_explicit_provider_its_instances_share() -> None:
    explicit = "urn:pulumi:staging::ampledash-infra::pulumi:providers:gcp::europe"
    default = "urn:pulumi:staging::ampledash-infra::pulumi:providers:gcp::default_9_37_0"
    orphan = "projects/ampledash-staging/locations/europe-west1/instances/redis-sidekiq"

    shared = StackState("staging", "v1", (_held("redis-sidekiq", f"{explicit}::0c1d"),), cached=False)
    import_file = import_file_for_state(shared, [orphan])
    assert [(r.name, r.id) for r in import_file.resources] == [("redis-sidekiq-europe-west1", orphan)]  # the held name kept
    assert import_file.provider == explicit

    mixed = StackState("staging", "v1", (_held("a", f"{explicit}::0c1d"), _held("b", f"{default}::9f2e")), cached=False)
    assert import_file_for_state(mixed, [orphan]).provider is None
    by_default = StackState("staging", "v1", (_held("a", f"{default}::9f2e"),), cached=False)
    assert import_file_for_state(by_default, [orphan]).document() == {
        "resources": [{"type": INSTANCE_TYPE, "name": "redis-sidekiq", "id": orphan}]
    }


def test_logical_names_are_the_instance_ids_qualified_only_where_they_would_clash() -> None:
    keys = [
        LiveKey("team-a", "europe-west1", "cache"),
        LiveKey("team-a", "us-central1", "cache"),
        LiveKey("team-b", "us-central1", "cache"),
        LiveKey("team-a", "europe-west1", "sessions"),
        LiveKey("team-a", "europe-west1", "queue"),
    ]

    names = logical_names(keys, taken={"queue"})

    assert names == {
        keys[0]: "cache-europe-west1",
        keys[1]: "cache-team-a-us-central1",
        keys[2]: "cache-team-b-us-central1",
        keys[3]: "sessions",
        keys[4]: "queue-europe-west1",
    }
    assert names == logical_names(list(reversed(keys)), taken={"queue"})  # never the listing order


def test_a_new_file_is_written_with_the_next_step_and_a_second_run_finds_it_up_to_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "import.json"

    code, out, err = _emit(tmp_path, capsys, path, ORPHAN)

    assert (code, out) == (EXIT_PROPOSED, "")  # written, and `pulumi import` still to run
    assert json.loads(path.read_text())["resources"][0]["id"] == ORPHAN
    assert f"next, in {tmp_path / 'infra'}: pulumi import --file {path} --stack staging" in err
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())

    code, out, err = _emit(tmp_path, capsys, path, ORPHAN)

    assert (code, out) == (EXIT_PROPOSED, "")
    assert "is up to date" in err and "next, in" in err


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_a_different_existing_file_is_shown_as_a_diff_and_replaced_only_with_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "import.json"
    path.write_text('{"resources": []}\n')
    path.chmod(0o640)

    code, out, err = _emit(tmp_path, capsys, path, ORPHAN)

    assert code == EXIT_PROPOSED
    assert path.read_text() == '{"resources": []}\n'
    assert '-{"resources": []}\n' in out and f'+            "id": "{ORPHAN}"\n' in out
    assert "exists and differs" in err and "--write replaces it" in err and "next," not in err

    code, out, err = _emit(tmp_path, capsys, path, ORPHAN, write=True)

    assert (code, out) == (EXIT_PROPOSED, "")
    assert json.loads(path.read_text())["resources"][0]["name"] == "redis-orphan"
    assert path.stat().st_mode & 0o777 == 0o640  # the file's own permissions kept
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_nothing_to_import_writes_no_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "import.json"
    notes = [Note("redis-x", "refused", "no instance 'redis-x' in the watched projects (none)")]

    code = emit_import_file("codify", notes, build_import_file("staging", []), path, False, tmp_path)

    assert code == EXIT_NOTHING and not path.exists()
    err = capsys.readouterr().err
    assert "refused: redis-x: no instance" in err and "nothing to import" in err


def test_a_folder_that_does_not_exist_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "missing" / "import.json"

    with pytest.raises(PermanentError, match=f"cannot write the import file {path}: No such file or directory"):
        _emit(tmp_path, capsys, path, ORPHAN)


def test_the_import_file_is_for_one_stack(tmp_path: Path) -> None:
    config = config_from_mapping({"pulumi": {"work_dir": str(tmp_path), "stacks": ["staging", "production"]}})

    with pytest.raises(ConfigError, match="choose it with --stack; allowed: staging, production"):
        plan_import(config, None)
    with pytest.raises(ConfigError, match="--stack prod: not in pulumi.stacks"):
        plan_import(config, "prod")
