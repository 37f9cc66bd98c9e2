"""Stack-file edits as codify and adopt make them, without a cloud: byte-for-byte round trips, atomic writes
that refuse a file changed since read, and `import_existing` reaching the program's import id."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from redisguard.core.errors import ConfigError
from redisguard.daemon.fleet.stack_edit import StackFile
from redisguard.program.mocks import run_stack
from tests.fixtures.repo import PRODUCTION, STAGING
from tests.fixtures.wire import INSTANCE_TYPE


@pytest.mark.parametrize("stack_file", [STAGING, PRODUCTION], ids=["staging", "production"])
def test_an_unedited_stack_file_is_written_back_byte_for_byte(stack_file: Path) -> None:
    edit = StackFile(stack_file)
    assert edit.render() == stack_file.read_text()
    assert edit.diff() == ""


def test_write_is_atomic_and_refuses_a_file_changed_since_read(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.staging.yaml"
    shutil.copy(STAGING, path)
    edit = StackFile(path)
    edit.set_key("redis-sidekiq", "memory_gb", 3)
    assert "-      memory_gb: 2\n+      memory_gb: 3\n" in edit.diff()
    path.write_text(path.read_text() + "# someone else's edit\n")
    with pytest.raises(ConfigError, match="changed since it was read; nothing written"):
        edit.write()
    assert "memory_gb: 3" not in path.read_text()

    edit = StackFile(path)
    edit.set_key("redis-sidekiq", "memory_gb", 3)
    assert edit.write()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Pulumi.staging.yaml"]  # no temp file left
    text = path.read_text()
    assert "# The original team's entry, unchanged." in text and "# someone else's edit" in text
    assert StackFile(path).diff() == ""


def test_import_existing_makes_the_program_pass_the_import_id(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.staging.yaml"
    shutil.copy(STAGING, path)
    edit = StackFile(path)
    edit.set_key("redis-cache", "import_existing", True)
    edit.write()
    imports = {r.name: r.import_id for r in run_stack(path) if r.type == INSTANCE_TYPE}
    assert imports == {
        "redis-sidekiq": "",
        "redis-cache": "projects/redisguard-staging/locations/europe-west1/instances/redis-cache",
        "redis-sessions": "",
    }
