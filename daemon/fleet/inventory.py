"""What runs: the Memorystore instances of each watched project, listed once per scan, and the parts of their names."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, NamedTuple

from redisguard.core.errors import PermanentError, TransientError
from redisguard.core.gcp import api_errors, redis_client, retry_policy
from redisguard.core.threads import ComputedOnce, start_daemon_thread
from redisguard.daemon.config import GcpSettings

if TYPE_CHECKING:
    # Types only: the client comes from core/gcp.py, the one place besides checks/ that imports google.cloud.
    from google.cloud import redis_v1

# The Memorystore API's own maximum page size: a project of up to 1000 instances is one call.
PAGE_SIZE = 1000
API_NAME = "Memorystore API"

# An instance's resource name, as the client's `CloudRedisClient.parse_instance_path` reads it.
_INSTANCE_NAME = re.compile(r"^projects/(?P<project>.+?)/locations/(?P<location>.+?)/instances/(?P<instance>.+?)$")


class LiveKey(NamedTuple):
    """Where an instance runs and its id: the parts of its resource name (a tuple: one is made for
    every listed instance of every scan, three times faster than a frozen dataclass)."""

    project: str
    region: str
    instance_id: str


def split_instance_name(name: str) -> LiveKey:
    """`projects/P/locations/R/instances/ID` -> its parts."""
    parts = name.split("/")
    if len(parts) == 6 and parts[0] == "projects" and parts[2] == "locations" and parts[4] == "instances" and all(parts):
        # What the pattern reads from a name whose parts hold no slash (every name the API gives), faster.
        return LiveKey(project=parts[1], region=parts[3], instance_id=parts[5])
    match = _INSTANCE_NAME.match(name)
    if match is None:
        raise PermanentError(f"the API returned an instance name of an unknown form: {name!r}")
    return LiveKey(project=match["project"], region=match["location"], instance_id=match["instance"])


def make_client(gcp: GcpSettings) -> redis_v1.CloudRedisClient:
    """The process's admin API client for the configured endpoint (anonymous, for the emulator) or the real API."""
    return redis_client(gcp.redis_endpoint)


def list_project_instances(
    client: redis_v1.CloudRedisClient, project: str, gcp: GcpSettings
) -> list[redis_v1.Instance]:
    """Every instance of a project in every region: one paged `list_instances(locations/-)`."""
    parent = client.common_location_path(project, "-")
    where = gcp.redis_endpoint or f"the {API_NAME}"
    timeout = gcp.request_timeout_seconds
    setting = "gcp.redis_endpoint" if gcp.redis_endpoint else None
    with api_errors(f"list_instances {parent}", where=where, api=API_NAME, timeout=timeout, setting=setting):
        pager = client.list_instances(
            request={"parent": parent, "page_size": PAGE_SIZE},
            retry=retry_policy(timeout),
            timeout=timeout,
        )
        instances: list[redis_v1.Instance] = []
        for page in pager.pages:
            if page.unreachable:
                # A partial listing would report the unreachable regions' instances as missing.
                raise TransientError(f"{parent}: regions unreachable: {', '.join(page.unreachable)}")
            instances.extend(page.instances)
        return instances


class Inventory:
    """The live instances of each watched project, listed at most once per scan (shared by stacks running in parallel)."""

    def __init__(self, gcp: GcpSettings) -> None:
        self._gcp = gcp
        self._listings: ComputedOnce[str, list[redis_v1.Instance]] = ComputedOnce()
        self._keyed: ComputedOnce[str, list[tuple[LiveKey, redis_v1.Instance]]] = ComputedOnce()
        self._indexes: ComputedOnce[str, dict[str, list[tuple[LiveKey, redis_v1.Instance]]]] = ComputedOnce()

    def by_id(self, project: str) -> Mapping[str, list[tuple[LiveKey, redis_v1.Instance]]]:
        """The project's listed instances by instance id, with the parts of their names (one per
        region holding that id): built once per scan, so a thousand stacks do not each read every name."""

        def index() -> dict[str, list[tuple[LiveKey, redis_v1.Instance]]]:
            by_id: dict[str, list[tuple[LiveKey, redis_v1.Instance]]] = {}
            for key, instance in self.keyed(project):
                by_id.setdefault(key.instance_id, []).append((key, instance))
            return by_id

        return self._indexes.get(project, index)

    def keyed(self, project: str) -> list[tuple[LiveKey, redis_v1.Instance]]:
        """The project's listed instances in listing order, each with the parts of its name (read once per scan)."""

        def split() -> list[tuple[LiveKey, redis_v1.Instance]]:
            # The name from the protobuf message under the proto-plus wrapper: the same string, read faster.
            return [(split_instance_name(type(i).pb(i).name), i) for i in self.instances(project)]

        return self._keyed.get(project, split)

    def prefetch(self, projects: Iterable[str]) -> None:
        """Start listing each of `projects` on its own thread, unless its listing has started: for a
        caller that will need it, so the API's answer is awaited while the caller reads its own side
        (a failure is kept for whoever asks, as from `instances`)."""
        for project in projects:
            if self._listings.started(project):
                continue
            start_daemon_thread(functools.partial(self._prefetch, project), f"list-{project}")

    def list_now(self, projects: Iterable[str]) -> None:
        """List each of `projects` on this thread now, unless its listing has started (a failure is
        kept for whoever asks, as from `instances`)."""
        for project in projects:
            self._prefetch(project)

    def _prefetch(self, project: str) -> None:
        try:
            self.instances(project)
        except Exception:  # noqa: BLE001, S110 - kept in the listing for whoever asks, raised there
            pass

    def instances(self, project: str) -> list[redis_v1.Instance]:
        # The client is built once per process (core/gcp.py); a failure to build it is this listing's.
        return self._listings.get(project, lambda: list_project_instances(make_client(self._gcp), project, self._gcp))
