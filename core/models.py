"""The frozen pydantic base every boundary model shares: immutable, and an unknown field is an error."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Immutable, and an unknown field is an error (a typo in a key is reported, not ignored)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
