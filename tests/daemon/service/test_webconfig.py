"""The daemon's web config (the exporter-toolkit format): TLS, client certificates and basic auth on a real
server socket, and a bad file's problems all at once, without showing a password."""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from redisguard.core.errors import ConfigError
from redisguard.daemon.service.results import Results
from redisguard.daemon.service.webconfig import load_web_config
from tests.fixtures.http_server import Served, serve
from tests.fixtures.repo import REPO
from tests.fixtures.tls import Certificates, make_certificates

PASSWORD = "scrape-me-please"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def write_web_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


@pytest.fixture
def secured(tmp_path: Path, certs: Certificates) -> Iterator[Served]:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = load_web_config(
        write_web_config(
            tmp_path,
            f"""
tls_server_config:
  cert_file: {certs.server_cert}
  key_file: {certs.server_key}
basic_auth_users:
  prometheus: "{hashed}"
http_server_config:
  headers:
    X-Frame-Options: deny
""",
        )
    )
    served = serve(Results(), web, [])
    yield served
    served.server.shutdown()
    served.server.server_close()


def client_context(certs: Certificates) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs.ca))


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


def test_a_client_certificate_can_be_required(tmp_path: Path, certs: Certificates) -> None:
    web = load_web_config(
        write_web_config(
            tmp_path,
            f"tls_server_config: {{cert_file: {certs.server_cert}, key_file: {certs.server_key}, client_ca_file: {certs.ca}}}\n",
        )
    )
    assert web.summary()["client_auth"] == "RequireAndVerifyClientCert"
    served = serve(Results(), web, [])
    try:
        without = client_context(certs)
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            served.get("/metrics", context=without)
        with_cert = client_context(certs)
        with_cert.load_cert_chain(str(certs.client_cert), str(certs.client_key))
        assert served.get("/metrics", context=with_cert)[0] == 200
    finally:
        served.server.shutdown()
        served.server.server_close()


def test_a_bad_web_config_lists_every_problem(tmp_path: Path, certs: Certificates) -> None:
    path = write_web_config(
        tmp_path,
        f"""
tls_server_config:
  cert_file: {certs.server_cert}
  key_file: {tmp_path / "missing.key"}
  client_auth_type: RequireAnyClientCert
  cipher_suites: [TLS_AES_128_GCM_SHA256]
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
    assert message.startswith(f"{path}: 5 problems in the web config")
    for line in [
        "tls_server_config.cipher_suites: an exporter-toolkit key redisguard does not support; remove it",
        "tls_server_config.client_auth_type: RequireAnyClientCert is not supported",
        "basic_auth_users: the password of prometheus is not a bcrypt hash",
        "http_server_config.headers: header Server may not be set; allowed: Strict-Transport-Security",
        "unknown: unknown key",
    ]:
        assert line in message
    assert "plain-text-password" not in message


def test_a_key_that_does_not_match_the_certificate_is_a_config_error(tmp_path: Path, certs: Certificates) -> None:
    path = write_web_config(tmp_path, f"tls_server_config: {{cert_file: {certs.server_cert}, key_file: {certs.other_key}}}\n")
    with pytest.raises(ConfigError, match="cannot use cert_file .* with key_file .*other.key"):
        load_web_config(path)


def test_relative_paths_in_a_web_config_are_taken_from_its_folder(tmp_path: Path, certs: Certificates) -> None:
    folder = certs.server_cert.parent
    path = folder / "web-relative.yml"
    path.write_text("tls_server_config: {cert_file: server.pem, key_file: server.key}\n")
    assert load_web_config(path).tls


def test_check_config_names_web_config_problems_without_showing_a_password(tmp_path: Path) -> None:
    import subprocess
    import sys

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
