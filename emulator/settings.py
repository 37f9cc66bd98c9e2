"""The emulator's settings: a plain dataclass, importable without the Google client libraries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_REDIS_API_PORT = 8470
DEFAULT_MONITORING_PORT = 8471
DEFAULT_PROJECT = "redisguard-local"
DEFAULT_REGION = "europe-west1"
DEFAULT_STATE_DIR = ".state/emulator"
DEFAULT_MEMORY_SCALE = 16 * 1024 * 1024
DEFAULT_AUDIT_PRINCIPAL = "redisguard-emulator@emulator-project.iam.gserviceaccount.com"


@dataclass(frozen=True)
class EmulatorSettings:
    """The emulator's effective configuration (one parse of the command line)."""

    host: str = "127.0.0.1"
    """Loopback address every server and redis-server binds to."""
    redis_api_port: int = DEFAULT_REDIS_API_PORT
    """REST Memorystore admin API; 0 picks a free port."""
    monitoring_port: int = DEFAULT_MONITORING_PORT
    """gRPC Cloud Monitoring API; 0 picks a free port."""
    project: str = DEFAULT_PROJECT
    """Default project: --fleet clusters without their own, the kill endpoint, the ready line."""
    region: str = DEFAULT_REGION
    """Default region, as for project."""
    state_dir: Path = Path(DEFAULT_STATE_DIR)
    """Instance records (state.json), per-instance redis.conf and RDB files."""
    memory_scale: int = DEFAULT_MEMORY_SCALE
    """Bytes of redis `maxmemory` per GB of memorySizeGb: small so tests fill instances cheaply."""
    processes: bool = True
    """False: instances exist only in the API (no redis-server), for load tests of 1000+ instances."""
    redis_server: str = "redis-server"
    """The redis-server binary."""
    sample_interval: float = 1.0
    """Seconds between two INFO samples of each instance (Google samples every 60 s)."""
    history: int = 3600
    """Samples kept per instance (one hour at the default interval)."""
    audit_principal: str = DEFAULT_AUDIT_PRINCIPAL
    """The audit log's principalEmail of a call without the x-emulator-principal header."""
