"""Google Cloud API clients, built once per process, and the one mapping of their errors to TransientError/PermanentError.

The admin API (google-cloud-redis over REST), Cloud Monitoring (google-cloud-monitoring over gRPC)
and Cloud Logging (google-cloud-logging over gRPC, the audit log) all go through `api_errors`: transient (503, 429, 504, 500, a timeout, a refused connection
to an endpoint that answered before) or permanent (anything else, and an endpoint that has refused
every connection since the process started: a configuration problem), bounded retries of what
Google documents as retryable (never of a refused connection: nobody is there to answer), and
one line a user can act on, never a response body.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import requests
import urllib3
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import redis_v1
from google.protobuf import json_format

from redisguard.core.errors import PermanentError, RedisguardError, TransientError

if TYPE_CHECKING:
    from google.cloud import monitoring_v3
    from google.cloud.logging_v2.services.logging_service_v2 import LoggingServiceV2Client

# Over REST the client raises the HTTP-status classes (BadRequest, Forbidden, GatewayTimeout),
# the parents of the gRPC-status ones (InvalidArgument, PermissionDenied, DeadlineExceeded), so
# these cover both transports.
TRANSIENT_API_ERRORS = (gexc.ServiceUnavailable, gexc.TooManyRequests, gexc.GatewayTimeout, gexc.InternalServerError)
# Retried within one call's budget: what Google documents as "retry with backoff". A 500 is
# transient for the next scheduled run but not retried at once (it is usually a bug, not load).
RETRIED_API_ERRORS = (gexc.ServiceUnavailable, gexc.TooManyRequests, gexc.GatewayTimeout)
_REST_PREFIX = re.compile(r"^(?:GET|POST|PATCH|PUT|DELETE) \S+: ")
# An API message is a sentence or two; anything longer is not the API talking.
_MAX_DETAIL = 200
_NO_CREDENTIALS_HINT = (
    "set GOOGLE_APPLICATION_CREDENTIALS or run `gcloud auth application-default login` "
    "(or set gcp.redis_endpoint and gcp.monitoring_endpoint for the emulator)"
)

T = TypeVar("T")


def one_line(text: str, limit: int = _MAX_DETAIL) -> str:
    """`text` on one line, cut at `limit` characters (a report cell, a CI log line)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def retry_policy(timeout: float) -> Retry:
    """Bounded retries of 503/429/504 with backoff, all within `timeout` seconds.

    One blip must not turn a whole scan into an error; the deadline keeps a real outage visible.
    """
    return Retry(predicate=_retried, initial=0.2, maximum=2.0, multiplier=2.0, timeout=timeout)


def _retried(exc: Exception) -> bool:
    # A 504 from the server (GatewayTimeout over REST) is retried; gRPC's DeadlineExceeded, its
    # subclass, is the client's own deadline: the attempt used the whole budget, a retry would
    # only race the deadline (and pass or fail with the machine's load). gRPC reports a refused
    # connection as UNAVAILABLE too, but no server said "retry": it fails at once.
    return (
        isinstance(exc, RETRIED_API_ERRORS)
        and not isinstance(exc, gexc.DeadlineExceeded)
        and _no_connection(exc) is None
    )


def _no_connection(exc: BaseException) -> str | None:
    """Why no connection was made at all ("connection refused", "host name not resolved"), or None
    when one was (an answer, a timeout, a connection that broke)."""
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0] if exc.args else None, "reason", None)
        if isinstance(reason, urllib3.exceptions.NameResolutionError):
            return "host name not resolved"
        if isinstance(reason, urllib3.exceptions.NewConnectionError):
            return "connection refused" if "refused" in str(reason).lower() else "no connection"
        return None
    if isinstance(exc, gexc.ServiceUnavailable) and not isinstance(getattr(exc, "response", None), requests.Response):
        # gRPC's UNAVAILABLE (REST errors carry the HTTP response); the channel's own words say no server was reached.
        message = exc.message or ""
        if "Connection refused" in message:
            return "connection refused"
        if "errors resolving" in message or "DNS resolution failed" in message:
            return "host name not resolved"
    return None


# Endpoints (`where`) that have answered a call since the process started: a refused connection
# there is a restart or an outage (transient); one that never answered is misconfigured.
_answered: set[str] = set()
_answered_lock = threading.Lock()


def _mark_answered(where: str) -> None:
    with _answered_lock:
        _answered.add(where)


def _has_answered(where: str) -> bool:
    with _answered_lock:
        return where in _answered


# --- clients, once per process -----------------------------------------------------------------

_clients: dict[tuple[str, str | None], Any] = {}
_clients_lock = threading.Lock()


def _cached(kind: str, endpoint: str | None, build: Callable[[], T]) -> T:
    with _clients_lock:
        client = _clients.get((kind, endpoint))
        if client is None:
            client = _clients[(kind, endpoint)] = build()  # a failure is raised and not cached
        return client  # the cache holds what `build` made for this kind


def _credentials_error(exc: auth_exceptions.DefaultCredentialsError) -> PermanentError:
    """google-auth's own reason (file not found, not a key file) in the one line."""
    reason = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if path:
        return PermanentError(f"GOOGLE_APPLICATION_CREDENTIALS={path} gives no usable Google Cloud credentials: {one_line(reason)}")
    return PermanentError(f"no Google Cloud credentials ({one_line(reason)}): {_NO_CREDENTIALS_HINT}")


def redis_client(endpoint: str | None) -> redis_v1.CloudRedisClient:
    """The Memorystore admin API client over REST: anonymous at `endpoint` (the emulator), or the
    real API with Application Default Credentials. One per endpoint per process."""

    def build() -> redis_v1.CloudRedisClient:
        if endpoint:
            return redis_v1.CloudRedisClient(
                transport="rest", client_options={"api_endpoint": endpoint}, credentials=AnonymousCredentials()
            )
        try:
            return redis_v1.CloudRedisClient(transport="rest")
        except auth_exceptions.DefaultCredentialsError as exc:
            raise _credentials_error(exc) from exc

    return _cached("redis", endpoint, build)


def monitoring_client(endpoint: str | None) -> monitoring_v3.MetricServiceClient:
    """The Cloud Monitoring client over gRPC: an insecure channel to `endpoint` (HOST:PORT, the
    emulator), or the real API with Application Default Credentials. One per endpoint per process."""
    from google.cloud import monitoring_v3
    from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport

    def build() -> monitoring_v3.MetricServiceClient:
        if endpoint:
            import grpc

            return monitoring_v3.MetricServiceClient(
                transport=MetricServiceGrpcTransport(channel=grpc.insecure_channel(endpoint))
            )
        try:
            return monitoring_v3.MetricServiceClient()
        except auth_exceptions.DefaultCredentialsError as exc:
            raise _credentials_error(exc) from exc

    return _cached("monitoring", endpoint, build)


def logging_client(endpoint: str | None) -> LoggingServiceV2Client:
    """The Cloud Logging client (google-cloud-logging's generated LoggingServiceV2) over gRPC: an
    insecure channel to `endpoint` (HOST:PORT, the emulator), or the real API with Application
    Default Credentials. One per endpoint per process."""
    from google.cloud.logging_v2.services.logging_service_v2 import LoggingServiceV2Client
    from google.cloud.logging_v2.services.logging_service_v2.transports import LoggingServiceV2GrpcTransport

    def build() -> LoggingServiceV2Client:
        if endpoint:
            import grpc

            return LoggingServiceV2Client(transport=LoggingServiceV2GrpcTransport(channel=grpc.insecure_channel(endpoint)))
        try:
            return LoggingServiceV2Client()
        except auth_exceptions.DefaultCredentialsError as exc:
            raise _credentials_error(exc) from exc

    return _cached("logging", endpoint, build)


# --- errors --------------------------------------------------------------------------------------


def _api_message(exc: gexc.GoogleAPICallError) -> str:
    """The API's own message, without the request URL the REST transport puts in front of it."""
    return f"{type(exc).__name__}: {one_line(_REST_PREFIX.sub('', exc.message or ''))}"


def _answered_as_the_api(exc: gexc.GoogleAPICallError) -> bool:
    """Whether an HTTP error came from something speaking the API's JSON (not some web server's HTML page)."""
    response = getattr(exc, "response", None)
    if response is None or not hasattr(response, "headers"):
        return True  # raised by the client itself or over gRPC, not read off an HTTP response
    return "json" in response.headers.get("Content-Type", "").lower()


@contextlib.contextmanager
def api_errors(what: str, *, where: str, api: str, timeout: float, setting: str | None = None) -> Iterator[None]:
    """Turn what a Google API call raises inside the block into TransientError/PermanentError.

    `what` names the call (`list_instances projects/p/locations/-`), `where` the endpoint or
    "the Memorystore API", `api` the API's name for "did not answer as the ... API does",
    `timeout` the call's budget in seconds, `setting` the config key that chose the endpoint
    (None: Google's own). RedisguardErrors raised in the block pass unchanged.
    """

    def not_the_api(detail: str) -> PermanentError:
        # Something listens at the endpoint but it is not the API (a wrong port: a web server,
        # the emulator's other port, a redis-server).
        return PermanentError(f"{what}: {where} did not answer as the {api} does ({detail})")

    def unreached(reason: str) -> RedisguardError:
        if _has_answered(where):
            return TransientError(f"{what}: cannot connect to {where} ({reason}); it answered earlier, so it may be restarting")
        check = (
            f"check {setting} in the config and that the API runs there"
            if setting
            else "check the network path to Google (proxy, firewall, DNS)"
        )
        return PermanentError(
            f"{what}: cannot connect to {where} ({reason}), which has not answered since redisguard started: "
            f"a configuration problem, not a passing one; {check}"
        )

    try:
        yield
    except RedisguardError:
        raise
    except gexc.DeadlineExceeded as exc:
        # Over gRPC the client's own deadline (a hung call) is DeadlineExceeded; over REST it is requests.Timeout.
        raise TransientError(f"{what}: no answer from {where} within {timeout:g}s") from exc
    except gexc.GoogleAPICallError as exc:
        reason = _no_connection(exc)
        if reason is not None:
            raise unreached(reason) from exc
        _mark_answered(where)  # the API itself answered, if with an error
        if not _answered_as_the_api(exc):
            response = exc.response  # REST errors carry the requests.Response
            kind = response.headers.get("Content-Type", "no content type").split(";")[0]
            raise not_the_api(f"HTTP {response.status_code}, {kind}") from exc
        if isinstance(exc, TRANSIENT_API_ERRORS):
            raise TransientError(f"{what}: {_api_message(exc)}") from exc
        raise PermanentError(f"{what}: {_api_message(exc)}") from exc
    except gexc.RetryError as exc:
        cause = exc.cause
        if isinstance(cause, gexc.DeadlineExceeded):  # gRPC: every attempt ran into the deadline
            raise TransientError(f"{what}: no answer from {where} within {timeout:g}s") from exc
        detail = _api_message(cause) if isinstance(cause, gexc.GoogleAPICallError) else one_line(str(cause))
        raise TransientError(f"{what}: still failing after retries ({detail})") from exc
    except requests.Timeout as exc:
        raise TransientError(f"{what}: no answer from {where} within {timeout:g}s") from exc
    except requests.exceptions.SSLError as exc:
        # https:// to a port that speaks plain HTTP (the emulator), or a TLS setup the client refuses.
        raise PermanentError(
            f"{what}: the TLS handshake with {where} failed; the endpoint may not speak TLS "
            f"(use http:// for a plain-HTTP endpoint such as the emulator) ({one_line(_ssl_reason(exc), 120)})"
        ) from exc
    except requests.ConnectionError as exc:
        reason = _no_connection(exc)
        if reason is None:
            raise not_the_api("the connection closed without an HTTP answer") from exc
        raise unreached(reason) from exc
    except auth_exceptions.DefaultCredentialsError as exc:
        raise _credentials_error(exc) from exc
    except auth_exceptions.GoogleAuthError as exc:
        raise PermanentError(f"{what}: the Google credentials were refused: {one_line(str(exc))}") from exc
    except json_format.ParseError as exc:
        raise not_the_api(one_line(str(exc))) from exc
    else:
        _mark_answered(where)


def _ssl_reason(exc: requests.exceptions.SSLError) -> str:
    # requests wraps urllib3's MaxRetryError around the ssl.SSLError: the innermost reason is the one to show.
    reason: Any = exc.args[0] if exc.args else exc
    reason = getattr(reason, "reason", reason)
    inner = reason.args[0] if isinstance(reason, Exception) and reason.args else reason
    return str(inner)
