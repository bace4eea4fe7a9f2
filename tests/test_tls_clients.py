"""Client certificates over TLS: --cert-reqs 0/1/2 with --ca-certs against a good, a missing,
an expired and a foreign-CA client certificate on every worker; the log line a failed
handshake leaves; what a WSGI app learns from ``environ['gunicorn.socket']`` (peer
certificate, cipher, version); and the ASGI ``tls`` extension (ferrocorn only).

Helpers, fixtures and the apps are shared with tests/test_tls_serving.py.
"""

from __future__ import annotations

import json
import ssl

import pytest

from conftest import RawResponse, is_gunicorn, wait_until
from test_tls_serving import APPS, WORKERS, get, pki, start_tls, warnings_matching  # noqa: F401
from tls_support import tls_connect

pytestmark = pytest.mark.timeout(90)

INVALID_REQUEST = r"^Invalid request from ip=127\.0\.0\.1: "
CLIENTS = (None, "good", "expired", "foreign")
# Which client certificates get a response, per --cert-reqs.
ACCEPTED = {
    0: {None, "good", "expired", "foreign"},
    1: {None, "good"},
    2: {"good"},
}
REQUEST = b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def read_all(sock) -> bytes:
    """Everything the server sends until it closes."""
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def attempt(address, ctx, path="/", timeout=10.0):
    """One GET over a new TLS connection: ("ok", response bytes) or ("rejected", why).

    With TLS 1.3 the client's handshake completes before the server has checked the
    client certificate, so a rejection may only show at the first read. A rejection is
    an SSLError (the server's alert, or an EOF in violation of the protocol), a reset, or
    a connection closed with nothing sent back."""
    try:
        with tls_connect(address, ctx, timeout) as sock:
            sock.sendall(REQUEST % path.encode())
            raw = read_all(sock)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as exc:
        return "rejected", exc
    if not raw:
        return "rejected", "connection closed without a response"
    return "ok", raw


def silent_asgi_rejection(worker) -> bool:
    """Gunicorn's asgi worker (asyncio/uvloop TLS) closes a rejected connection without
    an alert (TLS 1.3: a clean EOF after the client's handshake; TLS 1.2: an EOF during
    it) and logs nothing at any level; sync and gthread send the alert and log a WARNING."""
    return is_gunicorn() and worker == "asgi"


# ---------------------------------------------------------------------------
# 3. --cert-reqs × client certificates


@pytest.mark.parametrize("cert_reqs", [0, 1, 2])
@pytest.mark.parametrize("worker", WORKERS)
def test_cert_reqs_against_client_certificates(serve, pki, worker, cert_reqs):
    server = start_tls(serve, worker, "--cert-reqs", str(cert_reqs), "--ca-certs",
                       pki.ca_file, pki=pki, ctx=pki.client_context("good"))
    baseline = len(warnings_matching(server, INVALID_REQUEST))
    rejected = 0
    for client in CLIENTS:
        outcome, detail = attempt(server.address, pki.client_context(client))
        if client in ACCEPTED[cert_reqs]:
            assert outcome == "ok", "client cert %s: %r" % (client, detail)
            resp = RawResponse(detail)
            assert resp.status == 200 and resp.body == b"scheme=https"
        else:
            assert outcome == "rejected", "client cert %s was served: %r" % (client, detail)
            if not silent_asgi_rejection(worker):
                assert isinstance(detail, ssl.SSLError), \
                    "client cert %s: not a TLS error: %r" % (client, detail)
            rejected += 1
    # The worker keeps serving.
    assert get(server, pki.client_context("good")).body == b"scheme=https"
    assert server.alive()

    expected = 0 if silent_asgi_rejection(worker) else rejected
    if expected:
        wait_until(lambda: len(warnings_matching(server, INVALID_REQUEST)) >= baseline + expected,
                   timeout=10, what="%d handshake-failure warnings" % expected)
    assert len(warnings_matching(server, INVALID_REQUEST)) == baseline + expected, \
        server.stderr_text()[-4000:]
    assert not [m for _p, level, m in server.log_lines() if level in ("ERROR", "CRITICAL")]


@pytest.mark.ferrocorn_only
@pytest.mark.parametrize("worker", WORKERS)
def test_handshake_failure_warning_names_the_reason(serve, pki, worker):
    # Gunicorn: sync and gthread log `Invalid request from ip=127.0.0.1: [SSL:
    # CERTIFICATE_VERIFY_FAILED] certificate verify failed: ... (_ssl.c:NNNN)`; asgi logs
    # nothing.
    server = start_tls(serve, worker, "--cert-reqs", "2", "--ca-certs", pki.ca_file,
                       pki=pki, ctx=pki.client_context("good"))
    outcome, detail = attempt(server.address, pki.client_context("expired"))
    assert outcome == "rejected" and isinstance(detail, ssl.SSLError), detail
    pattern = INVALID_REQUEST + r"TLS handshake failed: \S"
    wait_until(lambda: warnings_matching(server, pattern), timeout=10,
               what="the handshake-failure warning")
    assert get(server, pki.client_context("good")).body == b"scheme=https"
    assert len(warnings_matching(server, pattern)) == 1


# ---------------------------------------------------------------------------
# 4. The peer certificate, cipher and version through environ['gunicorn.socket']


def app_view(server, ctx, path: bytes):
    """(the JSON the app answered on `path`, the client's own view of the connection)."""
    with tls_connect(server.address, ctx) as sock:
        client_view = {"cipher": sock.cipher(), "version": sock.version()}
        sock.sendall(REQUEST % path)
        raw = read_all(sock)
    resp = RawResponse(raw)
    assert resp.status == 200, resp.raw[:500]
    return json.loads(resp.body), client_view


def peer(server, ctx):
    """(what the app's /peer saw, the client's own view of the connection)."""
    return app_view(server, ctx, b"/peer")


def client_der(pki) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pki.client_cert.read_text())


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_app_sees_the_client_certificate(serve, pki, worker):
    server = start_tls(serve, worker, "--cert-reqs", "2", "--ca-certs", pki.ca_file,
                       pki=pki, ctx=pki.client_context("good"))
    for maximum, version in [(None, "TLSv1.3"), (ssl.TLSVersion.TLSv1_2, "TLSv1.2")]:
        ctx = pki.client_context("good")
        if maximum is not None:
            ctx.maximum_version = maximum
        info, client_view = peer(server, ctx)
        assert client_view["version"] == version
        assert info["version"] == version

        cert = info["peercert"]
        assert isinstance(cert, dict), info
        assert ["commonName", "alice"] in [attr for rdn in cert["subject"] for attr in rdn]
        assert ["email", "alice@example.com"] in cert["subjectAltName"]
        assert cert["notAfter"] and cert["serialNumber"]
        assert bytes.fromhex(info["peercert_der"]) == client_der(pki)

        name, protocol, bits = info["cipher"]
        # The OpenSSL name the client also sees (TLS_AES_256_GCM_SHA384,
        # ECDHE-ECDSA-AES256-GCM-SHA384, ...), not an IANA one.
        assert name == client_view["cipher"][0]
        assert not name.startswith("TLS_ECDHE_"), name
        assert isinstance(protocol, str) and isinstance(bits, int) and bits >= 128


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_app_sees_no_client_certificate_unless_requested(serve, pki, worker):
    server = start_tls(serve, worker, "--cert-reqs", "0", "--ca-certs", pki.ca_file, pki=pki)
    for client in (None, "good"):
        info, client_view = peer(server, pki.client_context(client))
        assert info["peercert"] is None, info
        assert info["peercert_der"] is None, info
        assert info["version"] == client_view["version"] == "TLSv1.3"
        assert info["cipher"][0] == client_view["cipher"][0]


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_optional_client_certificate_is_seen_when_sent(serve, pki, worker):
    server = start_tls(serve, worker, "--cert-reqs", "1", "--ca-certs", pki.ca_file, pki=pki)
    info, _ = peer(server, pki.client_context("good"))
    assert bytes.fromhex(info["peercert_der"]) == client_der(pki)
    info, _ = peer(server, pki.client_context())
    assert info["peercert"] is None and info["peercert_der"] is None


# ---------------------------------------------------------------------------
# 10. The ASGI TLS extension (Gunicorn's asgi worker has none)


TLS13_SUITES = {"TLS_AES_128_GCM_SHA256": 0x1301, "TLS_AES_256_GCM_SHA384": 0x1302,
                "TLS_CHACHA20_POLY1305_SHA256": 0x1303}


def asgi_tls(server, ctx):
    return app_view(server, ctx, b"/tls")


def test_asgi_scope_scheme_is_https(serve, pki):
    server = start_tls(serve, "asgi", pki=pki)
    body, _ = asgi_tls(server, pki.client_context())
    assert body["scheme"] == "https"


@pytest.mark.ferrocorn_only
def test_asgi_tls_extension_under_mutual_tls(serve, pki):
    server = start_tls(serve, "asgi", "--cert-reqs", "2", "--ca-certs", pki.ca_file,
                       pki=pki, ctx=pki.client_context("good"))
    body, client_view = asgi_tls(server, pki.client_context("good"))
    assert body["scheme"] == "https"
    assert body["has_tls"], body
    tls = body["tls"]
    assert tls["tls_version"] == 0x0304
    assert client_view["version"] == "TLSv1.3"
    assert isinstance(tls["cipher_suite"], int)
    assert tls["cipher_suite"] == TLS13_SUITES[client_view["cipher"][0]]

    chain = tls["client_cert_chain"]
    assert isinstance(chain, list) and chain, tls
    assert all(isinstance(pem, str) and pem.startswith("-----BEGIN CERTIFICATE-----")
               for pem in chain)
    assert ssl.PEM_cert_to_DER_cert(chain[0]) == client_der(pki)
    assert "CN=alice" in tls["client_cert_name"]
    assert tls["client_cert_error"] is None
    server_cert = tls.get("server_cert")
    if server_cert is not None:
        assert ssl.PEM_cert_to_DER_cert(server_cert) == \
            ssl.PEM_cert_to_DER_cert(pki.cert_file.read_text())

    tls12 = pki.client_context("good", maximum_version=ssl.TLSVersion.TLSv1_2)
    body, client_view = asgi_tls(server, tls12)
    assert client_view["version"] == "TLSv1.2"
    assert body["tls"]["tls_version"] == 0x0303
    assert isinstance(body["tls"]["cipher_suite"], int)


@pytest.mark.ferrocorn_only
def test_asgi_tls_extension_without_a_client_certificate(serve, pki):
    server = start_tls(serve, "asgi", pki=pki)
    body, _ = asgi_tls(server, pki.client_context())
    tls = body["tls"]
    assert tls["tls_version"] == 0x0304
    assert list(tls["client_cert_chain"]) == []
    assert tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None
