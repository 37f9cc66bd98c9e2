"""Reviewed changes to a `Pulumi.<stack>.yaml`: round-trip load, edit cluster entries, unified diff, atomic write.

Comments, key order, quoting and flow mappings survive (ruamel.yaml's round-trip mode); only the
keys a command sets change. A write refuses a file that changed since it was read.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from redisguard.core.errors import ConfigError
from redisguard.core.files import write_atomically
from redisguard.program.config import CONFIG_KEY, StackConfig, StackConfigError, load_stack_file

# Keys whose values are written as one-line flow mappings, as the shipped stack files write them.
_FLOW_KEYS = frozenset({"labels"})


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class StackFile:
    """One stack file held in round-trip form: edit its clusters, then `diff()` or `write()`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"{self.path}: stack file not found") from None
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read the stack file: {exc.strerror}") from None
        self._digest = _digest(raw)
        self.original = raw.decode("utf-8")
        try:
            document, self._yaml = _round_trip(self.original)
        except YAMLError as exc:
            raise ConfigError(f"{self.path}: not valid YAML: {exc}") from None
        if not isinstance(document, CommentedMap):
            raise ConfigError(f"{self.path}: expected a mapping with a `config:` key")
        self.document = document
        config = document.get("config", document)
        if not isinstance(config, CommentedMap):
            raise ConfigError(f"{self.path}: config: expected a mapping of settings")
        clusters = config.get(CONFIG_KEY)
        if clusters is None:
            clusters = config[CONFIG_KEY] = CommentedSeq()
        if not isinstance(clusters, CommentedSeq):
            raise ConfigError(f"{self.path}: config.{CONFIG_KEY}: expected a list of clusters")
        self.clusters: CommentedSeq = clusters

    # --- reading ------------------------------------------------------------------------------

    def entry(self, name: str) -> CommentedMap:
        """The cluster entry named `name` (KeyError when there is none)."""
        for item in self.clusters:
            # The round-trip loader gives every mapping, and add() every new entry, as a CommentedMap.
            if isinstance(item, CommentedMap) and item.get("name") == name:
                return item
        raise KeyError(name)

    # --- editing ------------------------------------------------------------------------------

    def append_entry(self, entry: Mapping[str, Any], comment: str | None = None) -> None:
        """Add a cluster entry at the end of the list (key order as given)."""
        node = CommentedMap()
        for key, value in entry.items():
            node[key] = _node(key, value)
        self.clusters.append(node)
        if comment:
            self.clusters.yaml_set_comment_before_after_key(len(self.clusters) - 1, before=comment, indent=self._item_indent())

    def set_key(self, name: str, key: str, value: Any) -> None:
        """Set one key of a cluster entry; None removes it. An existing key keeps its place."""
        entry = self.entry(name)
        if value is None:
            entry.pop(key, None)
        elif key in entry and isinstance(entry[key], CommentedMap) and isinstance(value, Mapping):
            target = entry[key]
            for k in [k for k in target if k not in value]:
                del target[k]
            for k, v in value.items():
                target[k] = v
        else:
            entry[key] = _node(key, value)

    def _item_indent(self) -> int:
        # The column of the list's dashes, for a comment line above a new entry.
        lines = [line for line in self.original.splitlines() if line.lstrip().startswith("- name:")]
        return len(lines[0]) - len(lines[0].lstrip()) if lines else 4

    # --- output -------------------------------------------------------------------------------

    def render(self) -> str:
        out = io.StringIO()
        self._yaml.dump(self.document, out)
        return out.getvalue()

    def validate(self) -> StackConfig:
        """The edited file parsed as the program parses it (StackConfigError with every problem)."""
        rendered = self.render()
        with tempfile.TemporaryDirectory() as folder:
            probe = Path(folder) / self.path.name
            probe.write_text(rendered, encoding="utf-8")
            try:
                stack = load_stack_file(probe)
            except StackConfigError as exc:
                raise StackConfigError(str(self.path), exc.problems, project=exc.project) from None
        return StackConfig(stack.stack, str(self.path), stack.project, stack.region, stack.clusters)

    def diff(self) -> str:
        """A unified diff of the edits (empty when nothing changed)."""
        new = self.render()
        if new == self.original:
            return ""
        # git's a/ b/ names for a path under the working directory (`git apply`, a PR comment);
        # an absolute path as it is (`patch -p0`).
        try:
            name = self.path.resolve().relative_to(Path.cwd().resolve()).as_posix()
            old, new_name = f"a/{name}", f"b/{name}"
        except ValueError:
            old = new_name = str(self.path)
        return "".join(
            difflib.unified_diff(self.original.splitlines(keepends=True), new.splitlines(keepends=True), old, new_name)
        )

    def write(self) -> bool:
        """Replace the file atomically with the edits; False when there was nothing to write.

        Refuses (ConfigError) when the file changed since it was read: someone else's edit is
        never overwritten with a change reviewed against the old text.
        """
        new = self.render()
        if new == self.original:
            return False
        try:
            current = self.path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read the stack file again before writing: {exc.strerror}") from None
        if _digest(current) != self._digest:
            raise ConfigError(f"{self.path}: the file changed since it was read; nothing written, run the command again")
        write_atomically(self.path, new)
        self.original, self._digest = new, _digest(new.encode("utf-8"))
        return True


def _yaml_with(mapping: int, offset: int) -> YAML:
    yaml = YAML()  # round-trip
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line (a Cloud KMS key name)
    yaml.indent(mapping=mapping, sequence=mapping + offset, offset=offset)
    return yaml


def _round_trip(text: str) -> tuple[Any, YAML]:
    """The document and the emitter settings that write it back unchanged.

    ruamel.yaml keeps comments and order but not the indentation, which is one setting per
    document: the first common layout that reproduces the file is the file's own. A file none
    reproduces (mixed indentation) gets the layout the shipped stack files use.
    """
    document = YAML().load(text)
    for mapping, offset in ((2, 2), (2, 0), (4, 2), (4, 0), (4, 4), (3, 1)):
        yaml = _yaml_with(mapping, offset)
        out = io.StringIO()
        yaml.dump(document, out)
        if out.getvalue() == text:
            return yaml.load(text), yaml
    return document, _yaml_with(2, 2)


def _node(key: str, value: Any) -> Any:
    if isinstance(value, Mapping):
        node = CommentedMap(value)
        if key in _FLOW_KEYS:
            node.fa.set_flow_style()
        return node
    return value
