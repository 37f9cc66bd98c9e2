"""Entry point Pulumi runs (`python -m pulumi.policy <engine> .` in this folder): builds and serves the pack."""

import gc
import os
import sys

from pulumi_policy import EnforcementLevel, PolicyPack

from redisguard.policies.rules import (
    PACK_DESCRIPTION,
    PACK_DISPLAY_NAME,
    PACK_NAME,
    TAGS,
    all_policies,
)

# Frozen, every object of Pulumi's, gRPC's and protobuf's modules is left alone by the collections
# while the pack serves and by the last ones of a pack that ends on an error (walking them all took
# a quarter of a second on an idle machine); what serving creates is still collected as usual.
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
# PolicyPack serves until the engine interrupts it (SIGINT), then returns here. Nothing is left to
# do: the interpreter's teardown (every module of Pulumi's, gRPC's, protobuf's and pydantic's
# cleared one by one, the server's idle threads joined) would only keep the engine, and
# `policy-check`, waiting about 10 ms for a process whose answers are all given. A serving that
# ends in an error raises above and ends as usual.
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
