"""The Memorystore listing: what a user reads when it fails."""

from __future__ import annotations

import pytest


def test_refused_credentials_are_a_permanent_error_that_says_so() -> None:
    from google.auth import exceptions as auth_exceptions
    from google.auth.credentials import Credentials
    from google.cloud import redis_v1

    from redisguard.core.errors import PermanentError
    from redisguard.daemon.config import GcpSettings
    from redisguard.daemon.fleet.inventory import list_project_instances

    class Expired(Credentials):
        def refresh(self, request: object) -> None:
            raise auth_exceptions.RefreshError("invalid_grant: Token has been expired or revoked.")

    client = redis_v1.CloudRedisClient(
        transport="rest", client_options={"api_endpoint": "http://127.0.0.1:9"}, credentials=Expired()
    )
    with pytest.raises(PermanentError) as info:
        list_project_instances(client, "redisguard-staging", GcpSettings(request_timeout_seconds=2))
    assert str(info.value) == (
        "list_instances projects/redisguard-staging/locations/-: the Google credentials were refused: "
        "invalid_grant: Token has been expired or revoked."
    )
