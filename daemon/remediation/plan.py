"""What a remediation command proposes: the stack-file edits of one run and its notes, shown as a
unified diff (or written with --write); shared by codify, adopt and memory-report --recommend."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from redisguard.core.errors import ConfigError
from redisguard.core.reports import EXIT_FINDINGS, EXIT_OK
from redisguard.daemon.config import RedisguardConfig
from redisguard.daemon.fleet.stack_edit import StackFile
from redisguard.program.config import StackConfigError

# The one rule of every command that proposes stack-file edits (codify, adopt, memory-report
# --recommend), core.reports' convention by what it means here: 0 nothing to propose, 2 a change
# proposed (its diff printed, or written with --write: either way there is a change to review and
# commit), 1 (EXIT_ERROR) an error, which wins. Notes (warnings, refusals) do not change it.
EXIT_NOTHING = EXIT_OK
EXIT_PROPOSED = EXIT_FINDINGS


@dataclass(frozen=True)
class Note:
    """One instance or property the command says something about instead of (or besides) editing."""

    resource: str
    level: Literal["proposed", "warning", "refused", "in sync"]
    message: str


@dataclass
class Plan:
    """The edits of one run, per stack file, and the notes."""

    files: dict[str, StackFile] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)
    manual: list[str] = field(default_factory=list)
    """Changes redisguard proposes but cannot make (a program it cannot edit): printed on stdout."""

    def file(self, config: RedisguardConfig, stack: str) -> StackFile:
        if stack not in self.files:
            self.files[stack] = StackFile(config.pulumi.stack_file(stack))
        return self.files[stack]

    def diff(self) -> str:
        return "".join(f.diff() for f in self.files.values())


def print_notes(command: str, notes: Sequence[Note]) -> None:
    """Each note as one stderr line (stdout holds what is proposed)."""
    for note in notes:
        print(f"redisguard {command}: {note.level}: {note.resource}: {note.message}", file=sys.stderr)


def emit(command: str, plan: Plan, write: bool) -> int:
    """Notes on stderr, the diff on stdout (or the files written); EXIT_PROPOSED when there was a
    change, printed or written, else EXIT_NOTHING."""
    print_notes(command, plan.notes)
    for step in plan.manual:
        print(step)
    diff = plan.diff()
    if not diff:
        if plan.manual:
            return EXIT_PROPOSED  # proposed, for a person to make: a change is due, as with a diff
        print(f"redisguard {command}: nothing to change", file=sys.stderr)
        return EXIT_NOTHING
    if not write:
        sys.stdout.write(diff)
        sys.stdout.flush()
        return EXIT_PROPOSED
    for stack_file in plan.files.values():
        try:
            stack_file.validate()
        except StackConfigError as exc:
            raise ConfigError(f"the change would leave an invalid stack file; nothing written:\n{exc}") from None
    for stack_file in plan.files.values():
        if stack_file.write():
            print(f"redisguard {command}: wrote {stack_file.path}", file=sys.stderr)
    return EXIT_PROPOSED
