"""`codify --import-file`: unmanaged instances as the file `pulumi import --file` reads, for a program in any language.

The engine reads each instance through the stack's gcp provider, adopts it into the stack's state
and prints the code to add to the program in the program's own language (pkg/cmd/pulumi/
operations/import.go: `importFile`, `importSpec`). Nothing else is needed: no stack-file format
of ours, no secret (the file holds names and ids only).
"""

from __future__ import annotations

import difflib
import json
import sys
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redisguard.core.errors import PermanentError
from redisguard.core.files import write_atomically
from redisguard.core.pulumi import INSTANCE_TYPE, resource_name
from redisguard.daemon.fleet.inventory import LiveKey, split_instance_name
from redisguard.daemon.fleet.state import StackState
from redisguard.daemon.remediation.plan import EXIT_NOTHING, EXIT_PROPOSED, Note, print_notes

# The gcp provider's import id for a Memorystore instance: the first of the formats pulumi-gcp
# documents for gcp.redis.Instance (`projects/{project}/locations/{region}/instances/{name}`),
# which is the instance's own name in the Memorystore API.
IMPORT_ID_FORMAT = "projects/{project}/locations/{region}/instances/{instance_id}"


@dataclass(frozen=True)
class ImportResource:
    """One entry of the file: the resource's logical name in the stack and the provider's id."""

    name: str
    id: str


@dataclass(frozen=True)
class ImportFile:
    """What one `pulumi import --file F --stack S` run adopts."""

    stack: str
    resources: tuple[ImportResource, ...]
    provider: str | None = None
    """The URN of the explicit provider the stack's instances use; None: the stack's default gcp provider."""

    def document(self) -> dict[str, Any]:
        """The JSON document `pulumi import --file` reads."""
        resources: list[dict[str, str]] = []
        for resource in self.resources:
            spec = {"type": INSTANCE_TYPE, "name": resource.name, "id": resource.id}
            if self.provider is not None:
                spec["provider"] = _PROVIDER_NAME
            resources.append(spec)
        document: dict[str, Any] = {"resources": resources}
        if self.provider is not None:
            # An explicit provider already in the state is named through the name table.
            document["nameTable"] = {_PROVIDER_NAME: self.provider}
        return document

    def render(self) -> str:
        return json.dumps(self.document(), indent=4) + "\n"


# The name the file gives an explicit provider in its name table (the generated code's variable for it).
_PROVIDER_NAME = "gcpProvider"


def import_id(key: LiveKey) -> str:
    return IMPORT_ID_FORMAT.format(project=key.project, region=key.region, instance_id=key.instance_id)


def logical_names(keys: Sequence[LiveKey], taken: Collection[str] = ()) -> dict[LiveKey, str]:
    """A logical name per instance, unique in the file and apart from `taken` (the stack's names).

    The instance id when that is unique (a Memorystore id is a valid Pulumi name: lower-case
    letters, digits and hyphens); an id two watched locations share gets its region, then its
    project too, for every instance that has it, so a name never depends on listing order.
    """
    by_id = Counter(key.instance_id for key in keys)
    by_region = Counter((key.instance_id, key.region) for key in keys)
    used = set(taken)
    names: dict[LiveKey, str] = {}
    for key in sorted(keys, key=lambda k: (k.instance_id, k.region, k.project)):
        name = key.instance_id
        if by_id[name] > 1 or name in used:
            name = f"{key.instance_id}-{key.region}"
        if by_region[(key.instance_id, key.region)] > 1 or name in used:
            name = f"{key.instance_id}-{key.project}-{key.region}"
        base, counter = name, 2
        while name in used:
            name, counter = f"{base}-{counter}", counter + 1
        used.add(name)
        names[key] = name
    return names


def build_import_file(
    stack: str, instance_names: Sequence[str], taken: Collection[str] = (), provider: str | None = None
) -> ImportFile:
    """The import file adopting these instances (the API's `projects/.../instances/ID` names) into `stack`."""
    keys = [split_instance_name(name) for name in instance_names]
    names = logical_names(keys, taken)
    resources = tuple(ImportResource(names[key], import_id(key)) for key in sorted(keys, key=names.__getitem__))
    return ImportFile(stack, resources, provider)


def import_file_for_state(state: StackState, instance_names: Sequence[str]) -> ImportFile:
    """The import file adopting these instances into a stack read from its Pulumi state: logical
    names apart from the instances it already holds, and the explicit provider they share, if any
    (a default provider, several providers or none: the engine's default gcp provider)."""
    held = state.of_type(INSTANCE_TYPE)
    providers = {r.provider.rsplit("::", 1)[0] for r in held if r.provider}
    # The engine's own test for a default provider: a provider URN whose name starts with "default".
    explicit = {urn for urn in providers if not resource_name(urn).startswith("default")}
    provider = next(iter(explicit)) if len(explicit) == 1 and explicit == providers else None
    return build_import_file(state.stack, instance_names, {r.name for r in held}, provider)


def emit_import_file(command: str, notes: Sequence[Note], import_file: ImportFile, path: Path, write: bool, work_dir: Path) -> int:
    """Notes on stderr; the file written, unless a different one is there (then its diff on stdout,
    and --write replaces it); what to run next. The exit code by the rule of every proposing command
    (plan.py): EXIT_PROPOSED while there are instances to import (the file printed as a diff,
    written, or already there: `pulumi import` is still to run), EXIT_NOTHING when there are none."""
    print_notes(command, notes)
    if not import_file.resources:
        print(f"redisguard {command}: nothing to import; {path} not written", file=sys.stderr)
        return EXIT_NOTHING
    text = import_file.render()
    try:
        current = path.read_text(encoding="utf-8") if path.exists() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise PermanentError(f"cannot read the existing import file {path}: {getattr(exc, 'strerror', exc)}") from None
    if current is not None and current != text and not write:
        sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True), str(path), str(path)))
        sys.stdout.flush()
        print(f"redisguard {command}: {path} exists and differs (the diff on stdout); --write replaces it", file=sys.stderr)
        return EXIT_PROPOSED
    if current != text:
        try:
            write_atomically(path, text)
        except OSError as exc:
            raise PermanentError(f"cannot write the import file {path}: {exc.strerror}") from None
        print(f"redisguard {command}: wrote {path} ({len(import_file.resources)} to import)", file=sys.stderr)
    else:
        print(f"redisguard {command}: {path} is up to date", file=sys.stderr)
    print(
        f"redisguard {command}: next, in {work_dir}: pulumi import --file {path.resolve()} --stack {import_file.stack}\n"
        "  it adopts the instances into the stack's state (protected) and prints the code to add to the program; "
        "with that code in the program, `pulumi preview` shows no change for them",
        file=sys.stderr,
    )
    return EXIT_PROPOSED
