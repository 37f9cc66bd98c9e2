"""TLS, basic auth, response headers and the rate limit of the daemon's HTTP server, read from a Prometheus exporter-toolkit web config file."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import ipaddress
import os
import re
import ssl
import tempfile
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import bcrypt
import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictBool, StrictInt, ValidationError, field_validator

from redisguard.core.errors import ConfigError
from redisguard.core.validation import (
    YamlSyntaxError,
    describe,
    format_loc,
    load_yaml,
    model_at,
    problem_list,
    unknown_key,
)

# The response headers exporter-toolkit lets a web config set (names exactly so; it refuses any
# other), with the values it allows where the header is an enumeration (any value otherwise).
HEADER_VALUES: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}
ALLOWED_HEADERS = tuple(HEADER_VALUES)

ClientAuthType = Literal[
    "NoClientCert", "RequestClientCert", "RequireAnyClientCert", "RequireClientCert",
    "VerifyClientCertIfGiven", "RequireAndVerifyClientCert",
]  # fmt: skip
# Go's crypto/tls accepts a client certificate without verifying it in these modes; Python's ssl
# module verifies every certificate it asks for (OpenSSL without a verify callback, which the
# module does not expose), so it cannot express them. RequireClientCert is the toolkit's old name
# of RequireAnyClientCert.
_UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
_VERIFY_MODES = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}

TlsVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

# Go's crypto/tls.CipherSuites() (the names the toolkit accepts), by IANA number, the TLS 1.0-1.2
# ones in Go's own preference order, which is also Go's default set (used when cipher_suites is
# empty). The OpenSSL name of each is looked up by that number in what the ssl module offers.
TLS13_CIPHER_SUITES = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
}
TLS12_CIPHER_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": 0xC02B,
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": 0xC02F,
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": 0xC02C,
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": 0xC030,
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": 0xCCA9,
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": 0xCCA8,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": 0xC009,
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": 0xC013,
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": 0xC00A,
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": 0xC014,
}
CipherSuite = Literal[
    "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
]  # fmt: skip
# What Go's HTTP/2 server needs among the TLS 1.0-1.2 suites (net/http refuses to start without one).
_HTTP2_REQUIRED = ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")

Curve = Literal["CurveP256", "CurveP384", "CurveP521", "X25519"]
_OPENSSL_CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1", "X25519": "X25519"}

# Go's time.ParseDuration: one or more <decimal><unit>, optionally signed; "0" alone needs no unit.
_GO_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
GO_DURATION_HELP = "a Go duration such as 1s, 500ms or 1m30s (units h, m, s, ms, us, ns), or 0 for no limit"

_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
# Checked against when the user name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = bcrypt.hashpw(b"redisguard-no-such-user", bcrypt.gensalt(rounds=10))
# Keys whose value is a secret: an error names the key, never the value.
_SECRET_KEYS = frozenset({"key", "basic_auth_users"})


def parse_go_duration(value: Any) -> float:
    """Seconds from what Go's YAML reads into a time.Duration: a duration string, or a number of nanoseconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not {GO_DURATION_HELP}")
    if isinstance(value, int | float):
        return int(value) * 1e-9  # yaml.v2 takes a bare number as nanoseconds (truncated)
    if not isinstance(value, str):
        raise ValueError(f"not {GO_DURATION_HELP}")
    text = value.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-") if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    parts = list(_GO_DURATION_PART.finditer(body))
    if not body or "".join(p.group(0) for p in parts) != body:
        raise ValueError(f"'{value}' is not {GO_DURATION_HELP}")
    return sign * sum(float(p.group(1)) * _GO_UNIT_SECONDS[p.group(2)] for p in parts)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TlsServerConfig(_Section):
    """`tls_server_config`: the server certificate, client certificate checks and the TLS parameters."""

    cert: str | None = Field(default=None, description="PEM certificate (chain), inline; cert_file wins when both are set.")
    key: SecretStr | None = Field(default=None, description="PEM private key, inline; key_file wins when both are set.")
    client_ca: str | None = Field(default=None, description="PEM CA bundle for client certificates, inline; client_ca_file wins.")
    cert_file: Path | None = Field(default=None, description="PEM certificate (chain) the daemon presents.")
    key_file: Path | None = Field(default=None, description="PEM private key of the certificate, not encrypted.")
    client_ca_file: Path | None = Field(
        default=None, description="CA bundle client certificates must chain to; without it, the system's CA store."
    )
    client_auth_type: ClientAuthType | None = Field(
        default=None,
        description="NoClientCert (the default), VerifyClientCertIfGiven or RequireAndVerifyClientCert. "
        "RequestClientCert and RequireAnyClientCert are refused: Python's ssl module cannot accept a certificate unverified.",
    )
    client_allowed_sans: list[str] | None = Field(
        default=None, description="A client certificate must carry one of these DNS, IP, e-mail or URI SANs exactly."
    )
    min_version: TlsVersion = Field(default="TLS12", description="Oldest TLS version accepted (TLS10 to TLS13).")
    max_version: TlsVersion = Field(default="TLS13", description="Newest TLS version accepted.")
    cipher_suites: list[CipherSuite] = Field(
        default_factory=list, description="TLS 1.0-1.2 cipher suites by Go name, in the server's order; empty: Go's defaults."
    )
    prefer_server_cipher_suites: StrictBool = Field(
        default=True, description="The server's order of cipher_suites decides (true) or the client's (false)."
    )
    curve_preferences: list[Curve] = Field(default_factory=list, description="The ECDHE curve (one: see the docs); empty: the defaults.")

    @field_validator("cert", "key", "client_ca", "cert_file", "key_file", "client_ca_file", "client_auth_type", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # Go's YAML leaves an empty string in a string field, and the toolkit treats it as not set.
        return None if value == "" else value

    @property
    def enabled(self) -> bool:
        """Whether TLS is on: as the toolkit, any certificate, key, client CA or client auth type set."""
        return any(
            v is not None
            for v in (self.cert, self.key, self.client_ca, self.cert_file, self.key_file, self.client_ca_file, self.client_auth_type)
        )

    @property
    def effective_client_auth(self) -> ClientAuthType:
        return self.client_auth_type or "NoClientCert"


class HttpServerConfig(_Section):
    """`http_server_config`: extra response headers and HTTP/2."""

    http2: StrictBool = Field(
        default=True, description="Allow HTTP/2. The daemon speaks HTTP/1.1 only, which every client falls back to (ALPN)."
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description=f"Response headers; allowed: {', '.join(ALLOWED_HEADERS)}. A blank value sends none."
    )

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        problems = []
        for name, text in value.items():
            if name not in HEADER_VALUES:
                problems.append(f"{name}: {unknown_key(name, ALLOWED_HEADERS, noun='header')}")
            elif HEADER_VALUES[name] and text not in HEADER_VALUES[name]:
                allowed = ", ".join(HEADER_VALUES[name])
                problems.append(f"{name}: '{text}' is not allowed; allowed values: {allowed}")
        if problems:
            raise ValueError("; ".join(problems))
        return value


class RateLimitConfig(_Section):
    """`rate_limit`: a token bucket over every request, as golang.org/x/time/rate."""

    interval: float = Field(default=0.0, description="Seconds per new request token; 0 (the default) turns the limit off.")
    burst: StrictInt = Field(default=0, description="Requests the bucket holds; 0 with an interval refuses every request.")

    @field_validator("interval", mode="before")
    @classmethod
    def _go_duration(cls, value: Any) -> float:
        return parse_go_duration(value)


class WebConfigModel(_Section):
    tls_server_config: TlsServerConfig = Field(default_factory=TlsServerConfig)
    http_server_config: HttpServerConfig = Field(default_factory=HttpServerConfig)
    basic_auth_users: dict[str, SecretStr] = Field(
        default_factory=dict, description="User name -> bcrypt hash of the password (htpasswd -nBC 10 USER)."
    )
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)

    @field_validator("tls_server_config", "http_server_config", "rate_limit", "basic_auth_users", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("basic_auth_users")
    @classmethod
    def _check_hashes(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        bad = []
        for user, secret in value.items():
            text = secret.get_secret_value()
            if not (text.startswith(_BCRYPT_PREFIXES) and len(text) == 60):
                bad.append(user)
            elif ":" in user:
                raise ValueError(f"user name {user!r} may not contain ':' (basic auth splits on it)")
        if bad:
            raise ValueError(
                f"the password of {', '.join(bad)} is not a bcrypt hash ($2a$/$2b$/$2y$, 60 characters; "
                "make one with `htpasswd -nBC 10 USER`)"
            )
        return value


class RateLimiter:
    """golang.org/x/time/rate's Limiter.Allow: a bucket of `burst` tokens, full at start, one more every `interval` seconds."""

    def __init__(self, interval: float, burst: int, clock: Any = time.monotonic) -> None:
        self.interval = interval
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        if self.interval < 0:
            return True  # rate.Every of a negative interval is an infinite rate
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) / self.interval)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


class WebConfig:
    """A loaded web config: the TLS context to wrap connections with, the basic auth check, the headers and the rate limit."""

    def __init__(self, model: WebConfigModel, source: Path | None, ssl_context: ssl.SSLContext | None) -> None:
        self.model = model
        self.source = source
        self.ssl_context = ssl_context
        self._users = {user: secret.get_secret_value().encode() for user, secret in model.basic_auth_users.items()}
        # bcrypt costs ~50-100 ms per check by design; Prometheus scrapes every 15 s with the same
        # credentials, so a verified pair is remembered (as exporter-toolkit does), keyed by a
        # digest, never by the password itself.
        self._verified: OrderedDict[bytes, bool] = OrderedDict()
        self._lock = threading.Lock()
        limit = model.rate_limit
        # One bucket per loaded config (a SIGHUP starts a full one, as an exporter's restart does).
        self.limiter = RateLimiter(limit.interval, limit.burst) if limit.interval != 0 else None
        sans = model.tls_server_config.client_allowed_sans if ssl_context is not None else None
        # Go checks the SANs of any client certificate the handshake asked for; without one asked for, never.
        self.allowed_sans = None if sans is None or ssl_context is None or ssl_context.verify_mode == ssl.CERT_NONE else frozenset(sans)

    @classmethod
    def none(cls) -> WebConfig:
        """No web config file: plain HTTP, no authentication."""
        return cls(WebConfigModel(), None, None)

    @property
    def tls(self) -> bool:
        return self.ssl_context is not None

    @property
    def headers(self) -> dict[str, str]:
        return {name: value for name, value in self.model.http_server_config.headers.items() if value}

    def summary(self) -> dict[str, Any]:
        """For the effective-config log line: what is on, never a hash or a key."""
        tls = self.model.tls_server_config
        limit = self.model.rate_limit
        return {
            "file": str(self.source) if self.source else None,
            "tls": self.tls,
            "client_auth": tls.effective_client_auth if self.tls else None,
            "basic_auth_users": sorted(self._users),
            "rate_limit": f"{limit.burst} per {limit.interval:g}s" if self.limiter else None,
        }

    def allowed(self, peer_cert: dict[str, Any] | None) -> bool:
        """Whether a connection's (verified) client certificate passes client_allowed_sans, as the toolkit
        checks it: one SAN (DNS, IP, e-mail or URI) equal to an allowed entry; no certificate fails."""
        if self.allowed_sans is None:
            return True
        return any(value in self.allowed_sans for value in _san_values(peer_cert or {}))

    def authorized(self, header: str | None) -> bool:
        """Whether an Authorization header carries the credentials of a configured user."""
        if not self._users:
            return True
        if not header or not header[:6].lower() == "basic ":
            return False
        try:
            user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        with self._lock:
            if key in self._verified:
                self._verified.move_to_end(key)
                return self._verified[key]
        expected = self._users.get(user)
        ok = bcrypt.checkpw(password.encode(), expected or _DUMMY_HASH) and expected is not None
        with self._lock:
            self._verified[key] = ok
            while len(self._verified) > 256:
                self._verified.popitem(last=False)
        return ok


def _san_values(cert: dict[str, Any]) -> Iterator[str]:
    """A certificate's SANs as Go prints them (an IP address in its short form)."""
    for kind, value in cert.get("subjectAltName", ()):
        if kind == "IP Address":
            with contextlib.suppress(ValueError):
                value = str(ipaddress.ip_address(value.strip()))
        if kind in ("DNS", "IP Address", "email", "URI"):
            yield value


def _resolve(model: WebConfigModel, base: Path) -> WebConfigModel:
    tls = model.tls_server_config

    def absolute(path: Path | None) -> Path | None:
        return None if path is None else path if path.is_absolute() else (base / path).resolve()

    resolved = tls.model_copy(
        update={
            "cert_file": absolute(tls.cert_file),
            "key_file": absolute(tls.key_file),
            "client_ca_file": absolute(tls.client_ca_file),
        }
    )
    return model.model_copy(update={"tls_server_config": resolved})


@contextlib.contextmanager
def _pem_path(text: str) -> Iterator[str]:
    """A path the ssl module can read an inline PEM from (it loads certificates and keys from files only):
    an anonymous memory file where Linux has them, else a private temporary file, gone afterwards."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("redisguard-web-config", os.MFD_CLOEXEC)
        try:
            os.write(fd, text.encode())
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="redisguard-") as folder:  # 0700
        path = Path(folder) / "inline.pem"
        path.write_text(text, encoding="utf-8")
        yield str(path)


def _openssl_ciphers() -> dict[int, str]:
    """IANA number -> OpenSSL name of every cipher suite the ssl module offers here."""
    scratch = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    scratch.set_ciphers("ALL:@SECLEVEL=0")
    return {c["id"] & 0xFFFF: c["name"] for c in scratch.get_ciphers()}


def _cipher_problems(tls: TlsServerConfig, http: HttpServerConfig) -> tuple[list[str], list[str]]:
    """The OpenSSL names for cipher_suites (TLS 1.0-1.2; Go's defaults when empty), and the problems."""
    problems: list[str] = []
    listed = list(dict.fromkeys(tls.cipher_suites))
    if listed and http.http2 and _TLS_VERSIONS[tls.min_version] < ssl.TLSVersion.TLSv1_3 and not set(listed) & set(_HTTP2_REQUIRED):
        problems.append(
            "tls_server_config.cipher_suites: with http_server_config.http2 on (the default) and TLS 1.2 or older "
            f"allowed, HTTP/2 needs {' or '.join(_HTTP2_REQUIRED)} (the exporter toolkit refuses this too); "
            "add one, set http_server_config.http2: false, or min_version: TLS13"
        )
    # TLS 1.3's suites are not configurable in Go either: listed ones are accepted and change nothing.
    wanted = [name for name in listed if name in TLS12_CIPHER_SUITES] if listed else list(TLS12_CIPHER_SUITES)
    offered = _openssl_ciphers()
    missing = [name for name in wanted if TLS12_CIPHER_SUITES[name] not in offered]
    if missing:
        problems.append(
            f"tls_server_config.cipher_suites: {', '.join(missing)}: not offered by the ssl module here "
            f"({ssl.OPENSSL_VERSION}); allowed values: {', '.join(n for n, i in TLS12_CIPHER_SUITES.items() if i in offered)}"
        )
    return [offered[TLS12_CIPHER_SUITES[name]] for name in wanted if name not in missing], problems


def build_ssl_context(tls: TlsServerConfig, http: HttpServerConfig) -> tuple[ssl.SSLContext | None, list[str]]:
    """The server-side TLS context with the toolkit's semantics, or the problems that stop it."""
    problems: list[str] = []
    if tls.cert is None and tls.cert_file is None:
        problems.append("tls_server_config: missing one of cert or cert_file")
    if tls.key is None and tls.key_file is None:
        problems.append("tls_server_config: missing one of key or key_file")
    for key in ("cert_file", "key_file", "client_ca_file"):
        path = getattr(tls, key)
        if path is not None and not path.is_file():
            problems.append(f"tls_server_config.{key}: {path}: file not found")
    auth = tls.effective_client_auth
    if auth in _UNVERIFIED_CLIENT_AUTH:
        problems.append(
            f"tls_server_config.client_auth_type: {auth} cannot be expressed with Python's ssl module: it verifies "
            "every client certificate it asks for (OpenSSL without a verify callback), so it cannot accept one "
            "unverified; allowed values: NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
        )
    has_ca = tls.client_ca_file is not None or tls.client_ca is not None
    if has_ca and auth == "NoClientCert":
        problems.append(
            f"tls_server_config.{'client_ca_file' if tls.client_ca_file else 'client_ca'}: a client CA without a "
            "client_auth_type (the exporter toolkit refuses it too); allowed values of client_auth_type: "
            "VerifyClientCertIfGiven, RequireAndVerifyClientCert"
        )
    if _TLS_VERSIONS[tls.min_version] > _TLS_VERSIONS[tls.max_version]:
        problems.append(f"tls_server_config.min_version: {tls.min_version} is newer than max_version {tls.max_version}")
    curves = list(dict.fromkeys(tls.curve_preferences))
    if len(curves) > 1:
        problems.append(
            f"tls_server_config.curve_preferences: {', '.join(curves)}: Python's ssl module can limit the handshake "
            "to one curve (SSLContext.set_ecdh_curve), not to a list in preference order; list one of them"
        )
    ciphers, cipher_problems = _cipher_problems(tls, http)
    problems += cipher_problems
    if problems:
        return None, problems

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    legacy = _TLS_VERSIONS[tls.min_version] < ssl.TLSVersion.TLSv1_2
    with warnings.catch_warnings():
        # The ssl module deprecates TLS 1.0/1.1; a web config that asks for them gets them, as in Go.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = _TLS_VERSIONS[tls.min_version]
        context.maximum_version = _TLS_VERSIONS[tls.max_version]
    listed = bool(tls.cipher_suites)
    if ciphers:
        # OpenSSL 3 signs TLS 1.0/1.1 handshakes (SHA-1, MD5-SHA1) only at security level 0.
        context.set_ciphers(":".join(ciphers) + (":@SECLEVEL=0" if legacy else ""))
    elif listed and tls.max_version == "TLS13":
        context.minimum_version = ssl.TLSVersion.TLSv1_3  # only TLS 1.3 suites listed: as in Go, no older handshake succeeds
    elif listed:
        return None, [f"tls_server_config.cipher_suites: only TLS 1.3 suites listed, but max_version is {tls.max_version}: no handshake could succeed"]
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if curves:
        context.set_ecdh_curve(_OPENSSL_CURVES[curves[0]])
    context.set_alpn_protocols(["http/1.1"])  # http2 or not: this server speaks HTTP/1.1
    problems += _load_pair(context, tls)
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(tls.client_ca_file))
        except (ssl.SSLError, OSError) as exc:
            problems.append(f"tls_server_config.client_ca_file: {tls.client_ca_file}: not a PEM CA bundle ({exc})")
    elif tls.client_ca is not None:
        try:
            context.load_verify_locations(cadata=tls.client_ca)
        except (ssl.SSLError, ValueError) as exc:
            problems.append(f"tls_server_config.client_ca: not a PEM CA bundle ({exc})")
    elif auth != "NoClientCert":
        context.load_default_certs(ssl.Purpose.CLIENT_AUTH)  # as Go: the system's CA store
    context.verify_mode = _VERIFY_MODES[auth]
    return (None if problems else context), problems


def _load_pair(context: ssl.SSLContext, tls: TlsServerConfig) -> list[str]:
    cert_what = f"cert_file {tls.cert_file}" if tls.cert_file else "the inline cert"
    key_what = f"key_file {tls.key_file}" if tls.key_file else "the inline key"
    try:
        with contextlib.ExitStack() as stack:
            cert = str(tls.cert_file) if tls.cert_file else stack.enter_context(_pem_path(tls.cert or ""))
            key = str(tls.key_file) if tls.key_file else stack.enter_context(_pem_path(tls.key.get_secret_value() if tls.key else ""))
            # A password callback that gives nothing: an encrypted key is an error, never a prompt on the terminal.
            context.load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as exc:
        return [
            f"tls_server_config: cannot use {cert_what} with {key_what} "
            f"(not PEM, an encrypted key, or a key that does not match the certificate): {exc.reason or exc}"
        ]
    except OSError as exc:
        return [f"tls_server_config: cannot read {cert_what} or {key_what}: {exc.strerror or exc}"]
    return []


# --- reading the file ------------------------------------------------------------------------------


def _raw_header_values(text: str) -> dict[str, Any]:
    """http_server_config.headers as Go's YAML reads them into strings: a scalar's text as written
    (`X-XSS-Protection: 0` is "0", `1.10` stays "1.10"), a null as ""; anything else as parsed."""
    try:
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return {}
    headers = _child(_child(root, "http_server_config"), "headers")
    if not isinstance(headers, yaml.MappingNode):
        return {}
    out: dict[str, Any] = {}
    for key, value in headers.value:
        if isinstance(key, yaml.ScalarNode) and isinstance(value, yaml.ScalarNode):
            out[key.value] = "" if value.tag == "tag:yaml.org,2002:null" else value.value
    return out


def _child(node: Any, name: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == name:
                return value
    return None


def _duplicate_keys(text: str) -> list[str]:
    """Keys given twice in one mapping (Go's strict YAML refuses them; PyYAML would keep the last)."""
    try:
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return []
    problems: list[str] = []

    def walk(node: Any, path: tuple[str | int, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else str(key)
                if name in seen:
                    problems.append(f"{format_loc((*path, name))}: given twice (line {key.start_mark.line + 1}); keep one")
                seen.add(name)
                walk(value, (*path, name))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index))

    walk(root, ())
    return problems


def _validation_problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        where = format_loc(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            parent = model_at(WebConfigModel, loc[:-1])
            problems.append(f"{where}: {unknown_key(str(loc[-1]), list(parent.model_fields) if parent else [])}")
            continue
        if err["type"] == "value_error" or _SECRET_KEYS & {str(part) for part in loc}:
            # Our own rules word their message; a secret's value is never shown.
            problems.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
            continue
        problems.append(f"{where}: {describe(err)}")
    return problems


def load_web_config(path: Path | None) -> WebConfig:
    """Read and check a web config file (None: plain HTTP, no auth); ConfigError listing every problem."""
    if path is None:
        return WebConfig.none()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"server.web_config_file: {path}: file not found") from exc
    except OSError as exc:
        raise ConfigError(f"server.web_config_file: {path}: cannot read: {exc.strerror}") from exc
    try:
        data = load_yaml(text)
    except YamlSyntaxError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping; allowed keys: {', '.join(WebConfigModel.model_fields)}"
        )
    http = data.get("http_server_config")
    if isinstance(http, dict) and isinstance(http.get("headers"), dict):
        raw = _raw_header_values(text)
        data = {**data, "http_server_config": {**http, "headers": {k: raw.get(str(k), v) for k, v in http["headers"].items()}}}
    problems = _duplicate_keys(text)
    model: WebConfigModel | None = None
    tls_part: WebConfigModel | None = None
    try:
        model = tls_part = _resolve(WebConfigModel.model_validate(data), path.resolve().parent)
    except ValidationError as exc:
        problems += _validation_problems(exc)
        # Every problem at once: the TLS ones too when only another section is wrong.
        for sections in (("tls_server_config", "http_server_config"), ("tls_server_config",)):
            with contextlib.suppress(ValidationError):
                part = WebConfigModel.model_validate({k: data[k] for k in sections if k in data})
                tls_part = _resolve(part, path.resolve().parent)
                break
    context = None
    if tls_part is not None and tls_part.tls_server_config.enabled:
        context, tls_problems = build_ssl_context(tls_part.tls_server_config, tls_part.http_server_config)
        problems += tls_problems
    if problems or model is None:
        raise ConfigError(problem_list(str(path), "the web config", problems))
    return WebConfig(model, path, context)
