"""Entry point Pulumi runs (`python -m pulumi.policy <engine> .` in this folder): builds and serves the pack."""

import gc

from pulumi_policy import EnforcementLevel, PolicyPack

from redisguard.policies.rules import (
    PACK_DESCRIPTION,
    PACK_DISPLAY_NAME,
    PACK_NAME,
    TAGS,
    all_policies,
)

# The pack serves until the engine interrupts it, then the interpreter ends: its last garbage
# collections would walk every object of Pulumi's, gRPC's and protobuf's modules (a quarter of a
# second on an idle machine, which the engine and `policy-check` wait for). Frozen, they are left
# alone; what serving creates is still collected as usual.
gc.freeze()
PolicyPack(
    name=PACK_NAME,
    policies=all_policies(),
    enforcement_level=EnforcementLevel.ADVISORY,
    description=PACK_DESCRIPTION,
    display_name=PACK_DISPLAY_NAME,
    provider="gcp",
    tags=TAGS,
)
