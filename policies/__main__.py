"""Entry point Pulumi runs (`python -m pulumi.policy <engine> .` in this folder): builds and serves the pack."""

from pulumi_policy import EnforcementLevel, PolicyPack

from redisguard.policies.rules import (
    PACK_DESCRIPTION,
    PACK_DISPLAY_NAME,
    PACK_NAME,
    TAGS,
    all_policies,
)

PolicyPack(
    name=PACK_NAME,
    policies=all_policies(),
    enforcement_level=EnforcementLevel.ADVISORY,
    description=PACK_DESCRIPTION,
    display_name=PACK_DISPLAY_NAME,
    provider="gcp",
    tags=TAGS,
)
