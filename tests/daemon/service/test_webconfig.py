"""The daemon's web config (the exporter-toolkit format), key by key, with the toolkit's verdicts: TLS, client
certificates, cipher suites, curves, versions, SANs, headers, HTTP/2 and the rate limit over real sockets, and a
bad file's problems all at once, without showing a password or a key."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import urllib.error
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
import pytest

from redisguard.core.errors import ConfigError
from redisguard.daemon.service.results import Results
from redisguard.daemon.service.webconfig import RateLimiter, WebConfig, load_web_config, parse_go_duration
from tests.fixtures.http_server import Served, serve
from tests.fixtures.processes import wait_for
from tests.fixtures.repo import REPO
from tests.fixtures.tls import CLIENT_SANS, Certificates, make_certificates

PASSWORD = "scrape-me-please"
# Whatever a refused TLS client sees: an alert, a reset, or a closed connection before the answer.
REFUSED = (urllib.error.URLError, ssl.SSLError, ConnectionError, OSError)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def write_web_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


def tls_config(certs: Certificates, extra: str = "") -> str:
    """A tls_server_config with the test server's certificate, and `extra` lines inside it."""
    lines = "".join(f"  {line}\n" for line in extra.strip("\n").splitlines())
    return f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n{lines}"


@pytest.fixture
def served_with(tmp_path: Path) -> Iterator[Callable[[str], Served]]:
    """Serve the daemon's pages with the web config `text` (each call a server of its own)."""
    started: list[Served] = []

    def start(text: str) -> Served:
        served = serve(Results(), load_web_config(write_web_config(tmp_path, text)), [])
        started.append(served)
        return served

    yield start
    for served in started:
        served.server.shutdown()
        served.server.server_close()


def client_context(certs: Certificates, *, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.ca))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    return context


def handshake(served: Served, context: ssl.SSLContext) -> ssl.SSLSocket:
    """A finished TLS handshake with the server, and one request answered on it (a refusal after the
    handshake, as client_allowed_sans', shows there). The caller closes it."""
    port = served.server.server_address[1]
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        tls = context.wrap_socket(raw, server_hostname="localhost")
    except BaseException:
        raw.close()
        raise
    try:
        tls.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = tls.recv(4096)
        if not answer.startswith(b"HTTP/1.1 "):
            raise ConnectionError(f"no HTTP answer after the handshake: {answer!r}")
    except BaseException:
        tls.close()
        raise
    return tls


def refused(served: Served, context: ssl.SSLContext) -> bool:
    try:
        handshake(served, context).close()
    except REFUSED:
        return True
    return False


def problems_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_web_config(write_web_config(tmp_path, text))
    return str(info.value)


# --- cert_file, key_file, basic_auth_users (and the plain-HTTP guard) ------------------------------


@pytest.fixture
def secured(served_with: Callable[[str], Served], certs: Certificates) -> Served:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    return served_with(
        tls_config(certs)
        + f"""
basic_auth_users:
  prometheus: "{hashed}"
http_server_config:
  headers:
    X-Frame-Options: deny
"""
    )


def test_tls_with_basic_auth_serves_the_right_credentials_only(secured: Served, certs: Certificates) -> None:
    context = client_context(certs)
    status, text, headers = secured.get("/metrics", auth=("prometheus", PASSWORD), context=context)
    assert status == 200
    assert "redisguard_build_info" in text
    assert headers["X-Frame-Options"] == "deny"
    for auth in (("prometheus", "wrong"), ("someone", PASSWORD), None):
        status, _, headers = secured.get("/metrics", auth=auth, context=context)
        assert status == 401, auth
        assert headers["WWW-Authenticate"].startswith("Basic realm=")
    # Every path is behind the same credentials.
    assert secured.get("/healthz", context=context)[0] == 401


def test_plain_http_and_silent_clients_on_the_tls_port_do_not_hang_the_server(secured: Served, certs: Certificates) -> None:
    port = secured.server.server_address[1]
    silent = socket.create_connection(("127.0.0.1", port), timeout=10)  # connects, never says anything
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as plain_http:
            plain_http.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = plain_http.recv(4096)
        assert answer.startswith(b"HTTP/1.0 400 Bad Request")
        assert b"Client sent an HTTP request to an HTTPS server." in answer
        # Meanwhile TLS clients are served.
        status, _, _ = secured.get("/metrics", auth=("prometheus", PASSWORD), context=client_context(certs))
        assert status == 200
    finally:
        silent.close()


def test_tls_is_on_only_when_a_certificate_key_client_ca_or_client_auth_type_is_set(tmp_path: Path) -> None:
    # As the toolkit's TLSConfig.IsEnabled: versions, suites or curves alone leave plain HTTP.
    for text in ("", "tls_server_config:\n", "tls_server_config: {min_version: TLS13, cipher_suites: [TLS_AES_128_GCM_SHA256]}\n",
                 "tls_server_config: {cert_file: '', key_file: ''}\n"):  # fmt: skip
        assert not load_web_config(write_web_config(tmp_path, text)).tls, text


def test_a_missing_certificate_or_key_is_named(tmp_path: Path, certs: Certificates) -> None:
    message = problems_of(tmp_path, "tls_server_config: {client_auth_type: NoClientCert, key_file: ''}\n")
    assert "tls_server_config: missing one of cert or cert_file" in message
    assert "tls_server_config: missing one of key or key_file" in message
    message = problems_of(tmp_path, f"tls_server_config: {{cert_file: {certs.server_cert}, key_file: nowhere.key}}\n")
    assert f"tls_server_config.key_file: {tmp_path / 'nowhere.key'}: file not found" in message


def test_a_key_that_does_not_match_the_certificate_is_a_config_error(tmp_path: Path, certs: Certificates) -> None:
    path = write_web_config(tmp_path, f"tls_server_config: {{cert_file: {certs.server_cert}, key_file: {certs.other_key}}}\n")
    with pytest.raises(ConfigError, match="cannot use cert_file .* with key_file .*other.key"):
        load_web_config(path)


def test_relative_paths_in_a_web_config_are_taken_from_its_folder(certs: Certificates) -> None:
    folder = certs.server_cert.parent
    path = folder / "web-relative.yml"
    path.write_text("tls_server_config: {cert_file: server.pem, key_file: server.key}\n")
    assert load_web_config(path).tls


# --- cert, key, client_ca inline --------------------------------------------------------------------


def _indented(path: Path) -> str:
    return "".join(f"    {line}\n" for line in path.read_text().splitlines())


def test_inline_cert_key_and_client_ca_serve_tls_and_check_client_certificates(
    served_with: Callable[[str], Served], certs: Certificates
) -> None:
    served = served_with(
        "tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n"
        f"  cert: |\n{_indented(certs.server_cert)}  key: |\n{_indented(certs.server_key)}  client_ca: |\n{_indented(certs.ca)}"
    )
    assert served.get("/metrics", context=client_context(certs, cert=(certs.client_cert, certs.client_key)))[0] == 200
    assert refused(served, client_context(certs))
    assert refused(served, client_context(certs, cert=(certs.stranger_cert, certs.stranger_key)))


def test_a_file_key_and_an_inline_cert_mix_and_the_file_wins_over_inline(served_with: Callable[[str], Served], certs: Certificates) -> None:
    # As the toolkit: cert_file is read when both are set (here the inline cert is not even PEM).
    served = served_with(
        f"tls_server_config:\n  cert_file: {certs.server_cert}\n  cert: not a certificate\n  key: |\n{_indented(certs.server_key)}"
    )
    assert served.get("/metrics", context=client_context(certs))[0] == 200


def test_a_bad_inline_key_is_named_without_showing_it(tmp_path: Path, certs: Certificates) -> None:
    secret = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC-not-a-real-key"
    message = problems_of(tmp_path, f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key: {secret}\n")
    assert "cannot use cert_file" in message and "with the inline key" in message
    assert secret not in message
    message = problems_of(tmp_path, f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key: [{secret}]\n")
    assert "tls_server_config.key: " in message and secret not in message


# --- client_auth_type, client_ca_file ---------------------------------------------------------------


def test_require_and_verify_client_cert_with_client_ca_file(served_with: Callable[[str], Served], certs: Certificates) -> None:
    served = served_with(tls_config(certs, f"client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: {certs.ca}"))
    assert served.server.web.summary()["client_auth"] == "RequireAndVerifyClientCert"
    assert refused(served, client_context(certs))
    assert refused(served, client_context(certs, cert=(certs.stranger_cert, certs.stranger_key)))
    assert served.get("/metrics", context=client_context(certs, cert=(certs.client_cert, certs.client_key)))[0] == 200


def test_verify_client_cert_if_given_serves_without_one_and_refuses_an_untrusted_one(
    served_with: Callable[[str], Served], certs: Certificates
) -> None:
    served = served_with(tls_config(certs, f"client_auth_type: VerifyClientCertIfGiven\nclient_ca_file: {certs.ca}"))
    assert served.get("/metrics", context=client_context(certs))[0] == 200
    assert served.get("/metrics", context=client_context(certs, cert=(certs.client_cert, certs.client_key)))[0] == 200
    assert refused(served, client_context(certs, cert=(certs.stranger_cert, certs.stranger_key)))


@pytest.mark.parametrize("auth", ["VerifyClientCertIfGiven", "RequireAndVerifyClientCert"])
def test_without_client_ca_file_client_certificates_are_verified_against_the_system_roots(
    auth: str, served_with: Callable[[str], Served], certs: Certificates, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The system's CA store, as OpenSSL finds it: here made of the test CA alone.
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    served = served_with(tls_config(certs, f"client_auth_type: {auth}"))
    assert served.get("/metrics", context=client_context(certs, cert=(certs.client_cert, certs.client_key)))[0] == 200
    assert refused(served, client_context(certs, cert=(certs.stranger_cert, certs.stranger_key)))
    assert refused(served, client_context(certs)) == (auth == "RequireAndVerifyClientCert")


def test_a_client_ca_without_client_auth_type_is_refused_as_the_toolkit_does(tmp_path: Path, certs: Certificates) -> None:
    message = problems_of(tmp_path, tls_config(certs, f"client_ca_file: {certs.ca}"))
    assert "tls_server_config.client_ca_file: a client CA without a client_auth_type" in message
    assert "allowed values of client_auth_type: VerifyClientCertIfGiven, RequireAndVerifyClientCert" in message
    # A CA bundle with no certificate in it would refuse every client: refused here (the toolkit starts with it).
    empty = tmp_path / "empty-ca.pem"
    empty.write_text("")
    message = problems_of(tmp_path, tls_config(certs, f"client_auth_type: VerifyClientCertIfGiven\nclient_ca_file: {empty}"))
    assert f"tls_server_config.client_ca_file: {empty}: not a PEM CA bundle" in message
    message = problems_of(tmp_path, tls_config(certs, "client_auth_type: VerifyClientCertIfGiven\nclient_ca: garbage"))
    assert "tls_server_config.client_ca: not a PEM CA bundle" in message


@pytest.mark.parametrize("auth", ["RequestClientCert", "RequireAnyClientCert", "RequireClientCert"])
def test_client_auth_types_that_accept_an_unverified_certificate_are_refused_saying_why(
    auth: str, tmp_path: Path, certs: Certificates
) -> None:
    message = problems_of(tmp_path, tls_config(certs, f"client_auth_type: {auth}"))
    assert f"tls_server_config.client_auth_type: {auth} cannot be expressed with Python's ssl module" in message
    assert "allowed values: NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert" in message


def test_an_unknown_client_auth_type_lists_the_allowed_values(tmp_path: Path, certs: Certificates) -> None:
    message = problems_of(tmp_path, tls_config(certs, "client_auth_type: RequireSomething"))
    assert "tls_server_config.client_auth_type: 'RequireSomething' is not allowed; allowed values: NoClientCert," in message


# --- client_allowed_sans -----------------------------------------------------------------------------


@pytest.mark.parametrize("san", CLIENT_SANS)
def test_client_allowed_sans_serves_a_certificate_with_an_allowed_san(
    san: str, served_with: Callable[[str], Served], certs: Certificates
) -> None:
    served = served_with(
        tls_config(certs, f"client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: {certs.ca}\nclient_allowed_sans: [other, '{san}']")
    )
    assert served.get("/metrics", context=client_context(certs, cert=(certs.client_cert, certs.client_key)))[0] == 200


def test_client_allowed_sans_refuses_other_certificates_and_none(served_with: Callable[[str], Served], certs: Certificates) -> None:
    served = served_with(
        tls_config(certs, f"client_auth_type: VerifyClientCertIfGiven\nclient_ca_file: {certs.ca}\nclient_allowed_sans: [grafana.example]")
    )
    assert refused(served, client_context(certs, cert=(certs.client_cert, certs.client_key)))
    assert refused(served, client_context(certs))  # no certificate has no allowed SAN (the toolkit drops it too)
    # Without a client certificate asked for, the list has nothing to check (as in Go).
    served = served_with(tls_config(certs, "client_allowed_sans: [grafana.example]"))
    assert served.get("/metrics", context=client_context(certs))[0] == 200


# --- min_version, max_version ---------------------------------------------------------------------


def _versions(context: ssl.SSLContext, low: ssl.TLSVersion, high: ssl.TLSVersion) -> ssl.SSLContext:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 on purpose
        context.minimum_version, context.maximum_version = low, high
    return context


def test_min_and_max_version_bound_the_handshake(served_with: Callable[[str], Served], certs: Certificates) -> None:
    served = served_with(tls_config(certs, "min_version: TLS13"))
    assert refused(served, _versions(client_context(certs), ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2))
    with handshake(served, client_context(certs)) as tls:
        assert tls.version() == "TLSv1.3"
    served = served_with(tls_config(certs, "max_version: TLS12"))
    with handshake(served, client_context(certs)) as tls:
        assert tls.version() == "TLSv1.2"
    assert refused(served, _versions(client_context(certs), ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3))


def test_min_version_tls10_serves_a_tls10_client(served_with: Callable[[str], Served], certs: Certificates) -> None:
    served = served_with(tls_config(certs, "min_version: TLS10"))
    old = _versions(client_context(certs), ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1)
    old.set_ciphers("ALL:@SECLEVEL=0")
    with handshake(served, old) as tls:
        assert tls.version() == "TLSv1"
    # The default (TLS12) refuses it.
    assert refused(served_with(tls_config(certs)), old)


def test_bad_versions_are_refused_with_the_allowed_values(tmp_path: Path, certs: Certificates) -> None:
    message = problems_of(tmp_path, tls_config(certs, "min_version: TLS111"))
    assert "tls_server_config.min_version: 'TLS111' is not allowed; allowed values: TLS10, TLS11, TLS12, TLS13" in message
    message = problems_of(tmp_path, tls_config(certs, "min_version: TLS13\nmax_version: TLS12"))
    assert "tls_server_config.min_version: TLS13 is newer than max_version TLS12" in message


# --- cipher_suites, prefer_server_cipher_suites ----------------------------------------------------

GCM_128, GCM_256 = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
OPENSSL = {GCM_128: "ECDHE-ECDSA-AES128-GCM-SHA256", GCM_256: "ECDHE-ECDSA-AES256-GCM-SHA384"}


def _tls12_client(certs: Certificates, ciphers: str) -> ssl.SSLContext:
    context = _versions(client_context(certs), ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
    context.set_ciphers(ciphers)
    return context


@pytest.mark.parametrize(("prefer", "chosen"), [("true", GCM_128), ("false", GCM_256)])
def test_cipher_suites_limit_the_tls12_handshake_and_prefer_server_cipher_suites_picks_whose_order_wins(
    prefer: str, chosen: str, served_with: Callable[[str], Served], certs: Certificates
) -> None:
    served = served_with(
        tls_config(certs, f"cipher_suites: [{GCM_128}, {GCM_256}]\nprefer_server_cipher_suites: {prefer}\nmax_version: TLS12")
    )
    # The client lists them the other way round: the server's order wins with true, the client's with false.
    with handshake(served, _tls12_client(certs, f"{OPENSSL[GCM_256]}:{OPENSSL[GCM_128]}")) as tls:
        assert (tls.cipher() or ("",))[0] == OPENSSL[chosen]
    assert refused(served, _tls12_client(certs, "ECDHE-ECDSA-CHACHA20-POLY1305"))


def test_empty_cipher_suites_mean_gos_defaults_including_the_cbc_ones(served_with: Callable[[str], Served], certs: Certificates) -> None:
    served = served_with(tls_config(certs, "max_version: TLS12"))
    with handshake(served, _tls12_client(certs, "ECDHE-ECDSA-AES128-SHA")) as tls:
        assert (tls.cipher() or ("",))[0] == "ECDHE-ECDSA-AES128-SHA"


def test_tls13_suites_are_accepted_and_change_nothing_as_in_go(served_with: Callable[[str], Served], certs: Certificates) -> None:
    served = served_with(tls_config(certs, f"cipher_suites: [TLS_AES_256_GCM_SHA384, {GCM_128}]"))
    with handshake(served, client_context(certs)) as tls:
        assert tls.version() == "TLSv1.3"
    # Only TLS 1.3 suites: as in Go, no TLS 1.2 handshake can succeed.
    served = served_with(tls_config(certs, "cipher_suites: [TLS_AES_128_GCM_SHA256]\nmin_version: TLS13"))
    assert refused(served, _tls12_client(certs, "ALL"))
    with handshake(served, client_context(certs)) as tls:
        assert tls.version() == "TLSv1.3"


def test_cipher_suites_without_an_http2_suite_are_refused_while_http2_is_on(tmp_path: Path, certs: Certificates) -> None:
    # As the toolkit (Go's HTTP/2 server refuses to start): TLS 1.2 allowed, http2 on, no AES-128-GCM ECDHE suite.
    text = tls_config(certs, f"cipher_suites: [{GCM_256}]\nmax_version: TLS12")
    message = problems_of(tmp_path, text)
    assert "tls_server_config.cipher_suites: with http_server_config.http2 on" in message
    assert "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 or TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" in message
    assert load_web_config(write_web_config(tmp_path, text + "http_server_config: {http2: false}\n")).tls


def test_unknown_cipher_suites_are_refused_with_the_allowed_names(tmp_path: Path, certs: Certificates) -> None:
    message = problems_of(tmp_path, tls_config(certs, "cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048, TLS_RSA_WITH_RC4_128_SHA]"))
    assert "tls_server_config.cipher_suites[0]: 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048' is not allowed; allowed values: TLS_AES_128_GCM_SHA256," in message
    assert "tls_server_config.cipher_suites[1]: 'TLS_RSA_WITH_RC4_128_SHA' is not allowed" in message
    assert "prefer_server_cipher_suites: 'yes please' is not a boolean" in problems_of(
        tmp_path, tls_config(certs, "prefer_server_cipher_suites: yes please")
    )


# --- curve_preferences --------------------------------------------------------------------------------


def test_one_curve_in_curve_preferences_limits_the_key_exchange(served_with: Callable[[str], Served], certs: Certificates) -> None:
    served = served_with(tls_config(certs, "curve_preferences: [CurveP384]"))
    on_p256, on_p384 = client_context(certs), client_context(certs)
    on_p256.set_ecdh_curve("prime256v1")
    on_p384.set_ecdh_curve("secp384r1")
    assert refused(served, on_p256)
    handshake(served, on_p384).close()


def test_curve_preferences_of_more_than_one_curve_are_refused_saying_why(tmp_path: Path, certs: Certificates) -> None:
    message = problems_of(tmp_path, tls_config(certs, "curve_preferences: [X25519, CurveP256]"))
    assert "tls_server_config.curve_preferences: X25519, CurveP256: Python's ssl module can limit the handshake to one curve" in message
    message = problems_of(tmp_path, tls_config(certs, "curve_preferences: [CurveP257]"))
    assert "tls_server_config.curve_preferences[0]: 'CurveP257' is not allowed; allowed values: CurveP256, CurveP384, CurveP521, X25519" in message


# --- http_server_config: headers, http2 -----------------------------------------------------------------


def test_header_values_yaml_reads_as_numbers_are_sent_as_written(served_with: Callable[[str], Served]) -> None:
    served = served_with(
        """
http_server_config:
  headers:
    X-XSS-Protection: 0
    Strict-Transport-Security: 1.10
    X-Content-Type-Options: nosniff
    Content-Security-Policy:
"""
    )
    _, _, headers = served.get("/metrics")
    assert headers["X-XSS-Protection"] == "0"
    assert headers["Strict-Transport-Security"] == "1.10"  # as written, not 1.1
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in headers  # blank: not sent


def test_invalid_header_names_and_values_are_refused_as_the_toolkit_does(tmp_path: Path) -> None:
    message = problems_of(
        tmp_path,
        "http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n    X-Frame-Options: DENY\n    x-xss-protection: 1\n    Server: nginx\n",
    )
    assert "X-Content-Type-Options: 'sniff' is not allowed; allowed values: nosniff" in message
    assert "X-Frame-Options: 'DENY' is not allowed; allowed values: deny, sameorigin" in message
    assert "x-xss-protection: unknown header; did you mean 'X-XSS-Protection'?" in message
    assert "Server: unknown header; allowed headers: Strict-Transport-Security, X-Content-Type-Options," in message
    assert "X-Frame-Options: '' is not allowed" in problems_of(tmp_path, "http_server_config: {headers: {X-Frame-Options: ''}}\n")


@pytest.mark.parametrize("http2", ["true", "false"])
def test_http2_either_way_answers_alpn_with_http11(http2: str, served_with: Callable[[str], Served], certs: Certificates) -> None:
    served = served_with(tls_config(certs) + f"http_server_config: {{http2: {http2}}}\n")
    context = client_context(certs)
    context.set_alpn_protocols(["h2", "http/1.1"])
    with handshake(served, context) as tls:
        assert tls.selected_alpn_protocol() == "http/1.1"


def test_http2_must_be_a_boolean(tmp_path: Path) -> None:
    message = problems_of(tmp_path, "http_server_config: {http2: 1}\n")
    assert "http_server_config.http2: 1 is not a boolean; allowed values: true, false" in message


# --- rate_limit --------------------------------------------------------------------------------------


def test_rate_limit_answers_429_past_the_burst_and_refills_at_the_interval(served_with: Callable[[str], Served]) -> None:
    served = served_with("rate_limit: {interval: 200ms, burst: 2}\n")
    statuses = [served.get("/metrics")[0] for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert served.get("/healthz")[0] == 429  # every path counts, as in the toolkit
    wait_for(lambda: served.get("/metrics")[0] == 200, timeout=5, what="a token after the interval")


def test_rate_limit_interval_0_is_off_and_burst_0_refuses_everything(served_with: Callable[[str], Served]) -> None:
    off = served_with("rate_limit: {interval: 0, burst: 0}\n")
    assert {off.get("/metrics")[0] for _ in range(10)} == {200}
    closed = served_with("rate_limit: {interval: 1s}\n")
    assert {closed.get("/metrics")[0] for _ in range(3)} == {429}


def test_the_token_bucket_follows_go_rate_limiter() -> None:
    now = [0.0]
    bucket = RateLimiter(interval=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]
    now[0] = 1.0
    assert not bucket.allow()  # half a token
    now[0] = 2.0
    assert bucket.allow() and not bucket.allow()
    now[0] = 100.0
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]  # never more than burst
    assert all(RateLimiter(interval=-1.0, burst=0).allow() for _ in range(3))  # a negative interval: no limit


def test_rate_limit_interval_is_a_go_duration(tmp_path: Path) -> None:
    assert parse_go_duration("1m30s") == 90
    assert parse_go_duration("1.5h") == 5400
    assert parse_go_duration("250ms") == pytest.approx(0.25)
    assert parse_go_duration(1_000_000_000) == 1  # yaml.v2 reads a bare number as nanoseconds
    assert parse_go_duration("0") == 0
    for bad in ("1", "1d", "", "ms", "1s2"):
        with pytest.raises(ValueError, match="not a Go duration"):
            parse_go_duration(bad)
    message = problems_of(tmp_path, "rate_limit: {interval: 5 minutes, burst: '3'}\n")
    assert "rate_limit.interval: '5 minutes' is not a Go duration such as 1s, 500ms or 1m30s" in message
    assert "rate_limit.burst: '3' is not a whole number" in message


# --- the file as a whole ---------------------------------------------------------------------------------


def test_a_bad_web_config_lists_every_problem(tmp_path: Path, certs: Certificates) -> None:
    path = write_web_config(
        tmp_path,
        f"""
tls_server_config:
  cert_file: {certs.server_cert}
  key_file: {tmp_path / "missing.key"}
  client_auth_type: RequireAnyClientCert
  cipher_suite: [TLS_AES_128_GCM_SHA256]
basic_auth_users:
  prometheus: plain-text-password
http_server_config:
  headers: {{Server: nginx}}
unknown: 1
""",
    )
    with pytest.raises(ConfigError) as info:
        load_web_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: 4 problems in the web config")
    for line in [
        "tls_server_config.cipher_suite: unknown key; did you mean 'cipher_suites'?",
        "basic_auth_users: the password of prometheus is not a bcrypt hash",
        "http_server_config.headers: Server: unknown header",
        "unknown: unknown key; allowed keys: tls_server_config, http_server_config, basic_auth_users, rate_limit",
    ]:
        assert line in message
    assert "plain-text-password" not in message
    # The TLS problems come with the others once tls_server_config's keys are valid.
    message = problems_of(tmp_path, path.read_text().replace("cipher_suite: [TLS_AES_128_GCM_SHA256]", "min_version: TLS12"))
    assert f"tls_server_config.key_file: {tmp_path / 'missing.key'}: file not found" in message
    assert "RequireAnyClientCert cannot be expressed with Python's ssl module" in message
    assert "basic_auth_users: the password of prometheus is not a bcrypt hash" in message


def test_a_key_given_twice_is_refused_as_go_strict_yaml_does(tmp_path: Path) -> None:
    message = problems_of(tmp_path, "rate_limit:\n  burst: 1\n  burst: 2\n")
    assert "rate_limit.burst: given twice (line 3); keep one" in message


def test_check_config_names_web_config_problems_without_showing_a_password(tmp_path: Path) -> None:
    web = write_web_config(tmp_path, "basic_auth_users: {prometheus: hunter2-in-clear}\n")
    config = tmp_path / "redisguard.yaml"
    config.write_text(f"pulumi: {{work_dir: {REPO / 'program'}}}\nserver: {{web_config_file: {web.name}}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "redisguard.daemon.cli", "check-config", "--config", str(config)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"{web}: 1 problem in the web config" in result.stderr
    assert "basic_auth_users: the password of prometheus is not a bcrypt hash" in result.stderr
    assert "hunter2-in-clear" not in result.stderr + result.stdout


def test_no_web_config_is_plain_http_without_limits() -> None:
    web = WebConfig.none()
    assert not web.tls and web.limiter is None and web.authorized(None) and web.headers == {}
