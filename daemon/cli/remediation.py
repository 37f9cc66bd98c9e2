"""`redisguard codify` and `adopt`: their options and handlers; the plans come from daemon/remediation/.

The Google clients that read the live instances are imported when a handler runs, not with this
module: the parser imports it for every command, `--help` included.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from redisguard.daemon.cli.options import PROPOSAL_EXIT_CODES_HELP, Subcommands, add_config, add_stacks
from redisguard.daemon.config import default_stack_names, load_config


def register(sub: Subcommands) -> None:
    _add_codify(sub)
    _add_adopt(sub)


def _add_write(parser: argparse.ArgumentParser) -> None:
    """`--write`: apply a proposed stack-file change (remediation.plan.emit) instead of printing its diff."""
    parser.add_argument("--write", action="store_true", help="write the change into the stack file instead of printing it")


def _add_codify(sub: Subcommands) -> None:
    codify = sub.add_parser(
        "codify",
        help="propose stack-file entries that bring hand-made (unmanaged) instances under Pulumi",
        description="For each instance of the watched projects that no stack declares (or the ones --instance "
        "names), propose a cluster entry in the original flat format that declares exactly what runs, with "
        "`import_existing: true` so the next `pulumi up` adopts the instance instead of creating one. Prints a "
        "unified diff of Pulumi.<stack>.yaml; --write applies it (comments and order kept). With --import-file, "
        "writes the file `pulumi import --file` reads instead, for a Pulumi program in any language. Nothing changes "
        "in the cloud. " + PROPOSAL_EXIT_CODES_HELP + ".",
    )
    add_config(codify)
    codify.add_argument(
        "--stack",
        metavar="NAME",
        help="the stack whose file gets the entries, or the --import-file's stack (required when several stacks watch "
        "the project, or with --import-file when several are configured)",
    )
    codify.add_argument("--instance", metavar="NAME", action="append", help="only this instance id (repeatable)")
    codify.add_argument(
        "--import-file",
        metavar="PATH",
        type=Path,
        help="instead of stack-file entries, write the file `pulumi import --file PATH --stack S` reads: the engine "
        "adopts the instances into the stack's state and prints the code to add, in the program's own language (any "
        "Pulumi program). Writes a new file; an existing different one is shown as a diff and replaced with --write. "
        "Exit 2 while there are instances to import (`pulumi import` is still to run), 0 when none is unmanaged",
    )
    _add_write(codify)
    codify.set_defaults(func=run_codify)


def run_codify(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.import_file is not None:
        from redisguard.daemon.remediation.codify import plan_import
        from redisguard.daemon.remediation.import_file import emit_import_file

        import_file, notes = plan_import(config, args.stack, args.instance or ())
        return emit_import_file("codify", notes, import_file, args.import_file, args.write, config.pulumi.work_dir)
    from redisguard.daemon.remediation.codify import plan_codify
    from redisguard.daemon.remediation.plan import emit

    return emit("codify", plan_codify(config, args.stack, args.instance or ()), args.write)


def _add_adopt(sub: Subcommands) -> None:
    adopt = sub.add_parser(
        "adopt",
        help="propose stack-file changes that accept live drift (the live value becomes the declared one)",
        description="For each `changed` property the live drift engine finds (or the one --resource/--path "
        "names), rewrite the declared value to the live one. Properties the flat config cannot express, or "
        "whose live value breaks a secure default or a mandatory policy, are listed with the reason and left "
        "alone (revert those with `pulumi up`). Prints a unified diff; --write applies it. Nothing changes in "
        "the cloud. " + PROPOSAL_EXIT_CODES_HELP + ".",
    )
    add_config(adopt)
    add_stacks(adopt, "only this stack")
    adopt.add_argument(
        "--resource", metavar="NAME", help="only this cluster (one the selected stacks declare; an unknown name is an error)"
    )
    adopt.add_argument(
        "--path", metavar="PATH",
        help="only this property path, as the drift report names it (e.g. memorySizeGb; an unknown path is an error, "
        "one that has not drifted an `in sync` note)",
    )  # fmt: skip
    _add_write(adopt)
    adopt.set_defaults(func=run_adopt)


def run_adopt(args: argparse.Namespace) -> int:
    from redisguard.daemon.remediation.adopt import plan_adopt
    from redisguard.daemon.remediation.plan import emit

    config = load_config(args.config)
    stacks = default_stack_names(config, args.stack)
    return emit("adopt", plan_adopt(config, stacks, args.resource, args.path), args.write)
