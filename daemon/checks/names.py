"""The names of the daemon's checks: each is its schedule key, the `check` label of its metrics, and its name in /healthz, logs and `--once`.

Bare names, importable without loading any check; what each check is (its kind, drift engine,
factory, run budget) is daemon/checks/registry.py.
"""

from __future__ import annotations

from typing import Final

DRIFT_PULUMI: Final = "drift_pulumi"
"""`pulumi refresh --preview-only` per stack."""
DRIFT_LIVE: Final = "drift_live"
"""The declared clusters against the live instances, per stack."""
MEMORY: Final = "memory"
"""Cloud Monitoring's memory metrics, per project."""
COMPLIANCE: Final = "compliance"
"""The policy pack's verdict on the live instances, per project."""

CHECK_NAMES: Final[tuple[str, ...]] = (DRIFT_PULUMI, DRIFT_LIVE, MEMORY, COMPLIANCE)
"""Every check, in the order the config, the status page and `daemon --help` list them."""
