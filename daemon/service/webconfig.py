"""TLS and basic auth for the daemon's HTTP server, read from a Prometheus exporter-toolkit web config file."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ssl
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

import bcrypt
import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from redisguard.core.errors import ConfigError
from redisguard.core.validation import problem_list

# The exporter-toolkit keys redisguard does not implement: refused by name rather than ignored,
# so a file that relies on one (a cipher list, pinned client SANs) never silently means less.
_UNSUPPORTED = {
    "tls_server_config": ("cert", "key", "client_ca", "client_allowed_sans", "cipher_suites", "curve_preferences", "prefer_server_cipher_suites"),
    "http_server_config": ("http2",),
}
# The response headers exporter-toolkit lets a web config set (it refuses any other).
ALLOWED_HEADERS = (
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
)
ClientAuthType = Literal["NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"]
# Python's TLS verifies every client certificate it asks for, so the two toolkit modes that
# accept an unverified certificate cannot be offered; they are named in the error.
_UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
TlsVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
# Checked against when the user name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = bcrypt.hashpw(b"redisguard-no-such-user", bcrypt.gensalt(rounds=10))


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TlsServerConfig(_Section):
    """`tls_server_config`: the server certificate and, optionally, client certificate checks."""

    cert_file: Path = Field(description="PEM certificate (chain) the daemon presents.")
    key_file: Path = Field(description="PEM private key of cert_file, not encrypted.")
    client_ca_file: Path | None = Field(default=None, description="CA bundle that client certificates must chain to.")
    client_auth_type: ClientAuthType | None = Field(
        default=None,
        description="NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert. Default: "
        "RequireAndVerifyClientCert when client_ca_file is set, else NoClientCert (as exporter-toolkit).",
    )
    min_version: TlsVersion = Field(default="TLS12", description="Oldest TLS version accepted (TLS10 to TLS13).")
    max_version: TlsVersion = Field(default="TLS13", description="Newest TLS version accepted.")

    @field_validator("client_auth_type", mode="before")
    @classmethod
    def _explain_unverified(cls, value: Any) -> Any:
        if value in _UNVERIFIED_CLIENT_AUTH:
            raise ValueError(
                f"{value} is not supported: redisguard verifies every client certificate it asks for; "
                "use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file"
            )
        return value

    @property
    def effective_client_auth(self) -> ClientAuthType:
        if self.client_auth_type is not None:
            return self.client_auth_type
        return "RequireAndVerifyClientCert" if self.client_ca_file else "NoClientCert"


class HttpServerConfig(_Section):
    """`http_server_config`: extra response headers."""

    headers: dict[str, str] = Field(default_factory=dict, description=f"Response headers; allowed: {', '.join(ALLOWED_HEADERS)}.")

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        allowed = {h.lower(): h for h in ALLOWED_HEADERS}
        bad = [name for name in value if name.lower() not in allowed]
        if bad:
            raise ValueError(f"header {', '.join(bad)} may not be set; allowed: {', '.join(ALLOWED_HEADERS)}")
        return {allowed[name.lower()]: text for name, text in value.items()}


class WebConfigModel(_Section):
    tls_server_config: TlsServerConfig | None = None
    http_server_config: HttpServerConfig = Field(default_factory=HttpServerConfig)
    basic_auth_users: dict[str, SecretStr] = Field(
        default_factory=dict, description="User name -> bcrypt hash of the password (htpasswd -nBC 10 USER)."
    )

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


class WebConfig:
    """A loaded web config: the TLS context to wrap connections with and the basic auth check."""

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

    @classmethod
    def none(cls) -> WebConfig:
        """No web config file: plain HTTP, no authentication."""
        return cls(WebConfigModel(), None, None)

    @property
    def tls(self) -> bool:
        return self.ssl_context is not None

    @property
    def headers(self) -> dict[str, str]:
        return self.model.http_server_config.headers

    def summary(self) -> dict[str, Any]:
        """For the effective-config log line: what is on, never a hash."""
        tls = self.model.tls_server_config
        return {
            "file": str(self.source) if self.source else None,
            "tls": bool(tls),
            "client_auth": tls.effective_client_auth if tls else None,
            "basic_auth_users": sorted(self._users),
        }

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


def _unsupported_problems(data: dict[str, Any]) -> list[str]:
    problems = []
    for section, keys in _UNSUPPORTED.items():
        body = data.get(section)
        if isinstance(body, dict):
            for key in keys:
                if key in body:
                    problems.append(f"{section}.{key}: an exporter-toolkit key redisguard does not support; remove it")
    return problems


def _strip_unsupported(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for section, keys in _UNSUPPORTED.items():
        if isinstance(out.get(section), dict):
            out[section] = {k: v for k, v in out[section].items() if k not in keys}
    return out


def _resolve(model: WebConfigModel, base: Path) -> WebConfigModel:
    tls = model.tls_server_config
    if tls is None:
        return model

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


def build_ssl_context(tls: TlsServerConfig) -> tuple[ssl.SSLContext | None, list[str]]:
    """The server-side TLS context, or the problems that stop it (unreadable files, a key that does not match)."""
    problems: list[str] = []
    for key in ("cert_file", "key_file", "client_ca_file"):
        path = getattr(tls, key)
        if path is not None and not path.is_file():
            problems.append(f"tls_server_config.{key}: {path}: file not found")
    if _TLS_VERSIONS[tls.min_version] > _TLS_VERSIONS[tls.max_version]:
        problems.append(f"tls_server_config.min_version: {tls.min_version} is newer than max_version {tls.max_version}")
    auth = tls.effective_client_auth
    if auth != "NoClientCert" and tls.client_ca_file is None:
        problems.append(f"tls_server_config.client_auth_type: {auth} needs client_ca_file")
    if problems:
        return None, problems
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS[tls.min_version]
    context.maximum_version = _TLS_VERSIONS[tls.max_version]
    try:
        # A password callback that gives nothing: an encrypted key is an error, never a prompt on the terminal.
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file), password=lambda: b"")
    except ssl.SSLError as exc:
        problems.append(
            f"tls_server_config: cannot use cert_file {tls.cert_file} with key_file {tls.key_file} "
            f"(not PEM, an encrypted key, or a key that does not match the certificate): {exc.reason or exc}"
        )
    except OSError as exc:
        problems.append(f"tls_server_config: cannot read cert_file/key_file: {exc.strerror or exc}")
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(tls.client_ca_file))
        except (ssl.SSLError, OSError) as exc:
            problems.append(f"tls_server_config.client_ca_file: {tls.client_ca_file}: not a PEM CA bundle ({exc})")
    context.verify_mode = {
        "NoClientCert": ssl.CERT_NONE,
        "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
        "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    }[auth]
    return (None if problems else context), problems


def load_web_config(path: Path | None) -> WebConfig:
    """Read and check a web config file (None: plain HTTP, no auth); ConfigError listing every problem."""
    if path is None:
        return WebConfig.none()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"server.web_config_file: {path}: file not found") from exc
    except OSError as exc:
        raise ConfigError(f"server.web_config_file: {path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: {getattr(exc, 'problem', None) or 'invalid YAML'}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping (tls_server_config, http_server_config, basic_auth_users)")
    problems = _unsupported_problems(data)
    model: WebConfigModel | None = None
    try:
        model = _resolve(WebConfigModel.model_validate(_strip_unsupported(data)), path.resolve().parent)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key"
            problems.append(f"{where}: {message}")
    context = None
    if model is not None and model.tls_server_config is not None:
        context, tls_problems = build_ssl_context(model.tls_server_config)
        problems += tls_problems
    if problems or model is None:
        raise ConfigError(problem_list(str(path), "the web config", problems))
    return WebConfig(model, path, context)
