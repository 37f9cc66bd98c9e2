"""A stack's policy-pack config: its file (policies/config/<stack>.json) and the `--policy-pack-config`
format as the Pulumi engine reads it.

The one reader the engine side (analyzer.py), `policy-check` and the remediation commands
(which judge an entry by the pack's mandatory rules in process) share, so a level or an option
means the same to each of them. Light to import: no Pulumi, no gRPC.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from redisguard.core.errors import ConfigError

if TYPE_CHECKING:
    from redisguard.policies.config import PolicyConfig

# The pack this package is: PulumiPolicy.yaml, __main__.py and config/ live beside this module.
PACK_DIR = Path(__file__).resolve().parent
# The engine's enforcement levels, in its spelling.
LEVEL_NAMES = ("advisory", "mandatory", "remediate", "disabled")
# The entry that sets every policy's level (the engine's applyConfig).
ALL = "all"

C = TypeVar("C", bound="PolicyConfig")


class PolicyConfigInvalid(Exception):
    """The engine refuses the policy-pack config before starting the deployment."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("invalid policy pack config:\n" + "\n".join(errors))
        self.errors = list(errors)


def default_config_file(stack: str, pack_dir: Path = PACK_DIR) -> Path | None:
    """policies/config/<stack>.json where it exists (the file the team's preview passes)."""
    path = pack_dir / "config" / f"{stack}.json"
    return path if path.is_file() else None


@dataclass(frozen=True)
class PackChoice:
    """The pack a check runs and the folder its stacks' config files come from."""

    pack_dir: Path
    """The pack's folder (PulumiPolicy.yaml, __main__.py)."""
    policies_dir: Path
    """The folder whose config/<stack>.json are the stacks' default policy configs."""
    from_checkout: bool
    """True: both come from the user's checkout; False: the installed redisguard's pack."""

    def config_file(self, stack: str) -> Path | None:
        return default_config_file(stack, self.policies_dir)

    def describe(self) -> str:
        """One line on what is used, for stderr."""
        if not self.from_checkout:
            return f"policy pack {self.pack_dir} (the installed redisguard's: no policies/ beside the program or the redisguard.yaml)"
        if self.pack_dir == self.policies_dir:
            return f"policy pack and configs from {self.pack_dir} (the checkout's)"
        return (
            f"policy configs from {self.policies_dir / 'config'} (the checkout's), "
            f"policy pack {self.pack_dir} (the installed redisguard's: no PulumiPolicy.yaml in the checkout)"
        )


# The installed redisguard's pack and configs: what a check uses with no checkout's policies/.
INSTALLED_PACK = PackChoice(PACK_DIR, PACK_DIR, from_checkout=False)


def choose_pack(work_dir: Path, config_dir: Path) -> PackChoice:
    """The user's `policies/` where their checkout has one, else the installed pack: the folder beside
    the program (`<pulumi.work_dir>/../policies`, as `pulumi preview --policy-pack ../policies` in
    program/ finds it), else `policies/` beside the redisguard.yaml. It is the checkout's pack when it
    holds PulumiPolicy.yaml; with only a config/ folder the configs are the checkout's, the pack the
    installed one."""
    for candidate in dict.fromkeys((work_dir.parent / "policies", config_dir / "policies")):
        has_pack = (candidate / "PulumiPolicy.yaml").is_file()
        if has_pack or (candidate / "config").is_dir():
            resolved = candidate.resolve()
            return PackChoice(resolved if has_pack else PACK_DIR, resolved, from_checkout=True)
    return INSTALLED_PACK


def read_config_file(path: Path | str) -> Any:
    """A `--policy-pack-config` file's JSON; None for an empty file, which the engine reads as no
    config. OSError or ValueError (JSON) when it cannot be read."""
    text = Path(path).read_text(encoding="utf-8")
    return json.loads(text) if text.strip() else None


def parse_policy_pack_config(raw: Mapping[str, Any]) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """A `--policy-pack-config` document as the engine reads it: name -> (level or None, properties)."""
    result: dict[str, tuple[str | None, dict[str, Any]]] = {}
    for name, value in raw.items():
        if isinstance(value, str):
            level: Any = value
            props: dict[str, Any] = {}
        elif isinstance(value, Mapping):
            props = dict(value)
            level = props.pop("enforcementLevel", None)
            if level is not None and not isinstance(level, str):
                raise PolicyConfigInvalid(
                    [f'parsing enforcement level for "{name}": {level} is not a valid enforcement level; '
                     "must be a string"]
                )
        else:
            raise PolicyConfigInvalid([f'parsing "{name}": {value!r} is not a valid value; must be a string or object'])
        if level is not None and level not in LEVEL_NAMES:
            raise PolicyConfigInvalid(
                [f'parsing enforcement level for "{name}": "{level}" is not a valid enforcement level']
            )
        if level is None and not props:
            continue  # the engine drops empty entries
        result[name] = (level, props)
    return result


@dataclass(frozen=True)
class StackPolicyConfig:
    """One stack's policy-pack config as the engine applies it over each policy's defaults."""

    path: Path | None
    """The file read; None for the pack's defaults (no file)."""
    entries: Mapping[str, tuple[str | None, dict[str, Any]]] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "the pack's defaults"

    def level(self, policy: str, default: str) -> str:
        """The policy's enforcement level: its own entry's, else the `all` entry's, else `default` (the policy's own)."""
        own = self.entries.get(policy, (None, {}))[0]
        every = self.entries.get(ALL, (None, {}))[0]
        return own or every or default

    def options(self, policy: str, model: type[C]) -> C:
        """The policy's options (its schema's defaults filled in); ConfigError naming the file when invalid."""
        from redisguard.policies.config import PolicyConfigError, parse_config

        try:
            return parse_config(policy, model, self.entries.get(policy, (None, {}))[1])
        except PolicyConfigError as exc:
            raise ConfigError(f"{self.source}: {exc}") from None


def stack_policy_config(stack: str, path: Path | None = None) -> StackPolicyConfig:
    """The policy config `policy-check` and `pulumi preview` use for `stack`: `path` (a
    --policy-config option), else policies/config/<stack>.json where it exists, else none;
    ConfigError naming the file when it cannot be read or is not a policy-pack config."""
    path = path or default_config_file(stack)
    if path is None:
        return StackPolicyConfig(None)
    try:
        raw = read_config_file(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the policy config: {exc}") from None
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: a policy config is a JSON object of policy names, not {type(raw).__name__}")
    try:
        return StackPolicyConfig(path, parse_policy_pack_config(raw or {}))
    except PolicyConfigInvalid as exc:
        raise ConfigError(f"{path}: {'; '.join(exc.errors)}") from None
