"""Serving over TLS on every worker (sync, gthread, asgi): HTTPS answers and the https
scheme, every PEM key form, a combined key-and-chain certfile, the intermediate chain,
--ciphers, the ignored --ssl-version, the other TLS flags, the `ssl_context` hook, start-up
errors, ALPN and real frameworks. Client certificates and what the app learns about the
peer are in tests/test_tls_clients.py, which imports the helpers below.

The apps are tests/apps/tls_app.py (WSGI) and tests/apps/tls_asgi_app.py (ASGI); the
certificates come from tests/tls_support.py, made once per module.
"""

from __future__ import annotations

import re
import ssl
import subprocess
import textwrap

import pytest
import requests
import trustme

from conftest import RawResponse
from tls_support import (
    LOOPBACK_NAMES, make_pki, reissue, tls_connect, tls_request, wait_tls_ready,
    write_key_forms,
)

pytestmark = pytest.mark.timeout(90)

WORKERS = ("sync", "gthread", "asgi")
APPS = {"sync": "tls_app:app", "gthread": "tls_app:app", "asgi": "tls_asgi_app:app"}
SSL_VERSION_WARNING = ("Warning: option `ssl_version` is deprecated and it is ignored. "
                       "Use ssl_context instead.")


# ---------------------------------------------------------------------------
# Helpers (also used by tests/test_tls_clients.py)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """One CA, an ECDSA server chain for loopback and the client certificates."""
    return make_pki(tmp_path_factory.mktemp("pki"))


def start_tls(serve, worker, *args, pki=None, ctx=None, certs=None, app=None, env=None):
    """Start `app` (the worker's echo app by default) with `-k worker` and TLS, and wait
    until it answers over TLS with `ctx` (default: trusting `pki`'s CA, no client cert).
    `certs` replaces `pki.server_args()` (the certfile and keyfile arguments)."""
    certs = pki.server_args() if certs is None else certs
    server = serve("-k", worker, *certs, *args, app or APPS[worker], ready="port", env=env)
    wait_tls_ready(server, ctx if ctx is not None else pki.client_context())
    return server


def get(server, ctx, path="/") -> RawResponse:
    """One GET over a new TLS connection, parsed."""
    raw = tls_request(server.address, ctx, path)
    assert raw.startswith(b"HTTP/1."), "no HTTP response over TLS: %r" % raw[:300]
    return RawResponse(raw)


def s_client(server, *args, ca=None, timeout=20.0):
    """`openssl s_client` against the server with stdin closed: (exit code, output)."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % server.port, *args]
    if ca is not None:
        argv += ["-CAfile", str(ca)]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=timeout)
    return proc.returncode, proc.stdout.decode("utf-8", "replace")


def negotiated(output: str):
    """(protocol, cipher) from s_client's `New, <protocol>, Cipher is <cipher>` line."""
    m = re.search(r"^New, (\S+), Cipher is (\S+)", output, re.M)
    return (m.group(1), m.group(2)) if m else (None, None)


def warnings_matching(server, pattern) -> list:
    return [msg for _pid, level, msg in server.log_lines()
            if level == "WARNING" and re.search(pattern, msg)]


def write_conf(tmp_path, body: str, name="conf.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


# ---------------------------------------------------------------------------
# 1. HTTPS and the scheme


@pytest.mark.parametrize("worker", WORKERS)
def test_https_answers_with_the_https_scheme(serve, pki, worker):
    server = start_tls(serve, worker, pki=pki)
    assert "Listening at: https://127.0.0.1:%d " % server.port in server.stderr_text()

    curl = subprocess.run(
        ["curl", "-sS", "--max-time", "15", "--cacert", str(pki.ca_file),
         "https://127.0.0.1:%d/" % server.port],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert curl.returncode == 0, curl.stderr
    assert curl.stdout == b"scheme=https"

    resp = requests.get("https://127.0.0.1:%d/" % server.port, verify=str(pki.ca_file),
                        timeout=10)
    assert resp.status_code == 200
    assert resp.text == "scheme=https"

    # The same server over a kept-alive requests session: several requests, one scheme.
    with requests.Session() as session:
        for _ in range(3):
            again = session.get("https://127.0.0.1:%d/" % server.port,
                                verify=str(pki.ca_file), timeout=10)
            assert again.text == "scheme=https"


# ---------------------------------------------------------------------------
# 2. Keys, combined files and chains


@pytest.fixture(scope="module")
def key_forms(tmp_path_factory):
    d = tmp_path_factory.mktemp("forms")
    return d, write_key_forms(d)


@pytest.mark.parametrize("form", ["pkcs1", "pkcs8-rsa", "pkcs8-ec", "sec1"])
@pytest.mark.parametrize("worker", WORKERS)
def test_every_pem_key_form_serves(serve, key_forms, worker, form):
    d, forms = key_forms
    cert, key = forms[form]
    header = {"pkcs1": "RSA PRIVATE KEY", "sec1": "EC PRIVATE KEY"}.get(form, "PRIVATE KEY")
    assert key.read_text().startswith("-----BEGIN %s-----" % header)
    ctx = ssl.create_default_context(cafile=str(d / "forms-ca.pem"))
    server = start_tls(serve, worker, certs=["--certfile", cert, "--keyfile", key], ctx=ctx)
    assert get(server, ctx).body == b"scheme=https"


@pytest.mark.parametrize("worker", WORKERS)
def test_certfile_holding_key_and_chain_serves_without_keyfile(serve, pki, worker):
    text = pki.combined_file.read_text()
    assert "PRIVATE KEY-----" in text and "BEGIN CERTIFICATE" in text
    server = start_tls(serve, worker, pki=pki, certs=["--certfile", pki.combined_file])
    assert get(server, pki.client_context()).body == b"scheme=https"


@pytest.fixture(scope="module")
def chain_files(tmp_path_factory):
    """A root, an intermediate, and a loopback leaf the intermediate signed: the certfile
    holds the leaf then the intermediate; the client trusts only the root."""
    d = tmp_path_factory.mktemp("chain")
    root = trustme.CA()
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert(*LOOPBACK_NAMES)
    assert len(leaf.cert_chain_pems) == 2
    root.cert_pem.write_to_path(str(d / "root.pem"))
    for i, pem in enumerate(leaf.cert_chain_pems):
        pem.write_to_path(str(d / "chain.pem"), append=bool(i))
    leaf.private_key_pem.write_to_path(str(d / "leaf.key"))
    return d


@pytest.mark.parametrize("worker", WORKERS)
def test_intermediate_chain_is_presented(serve, chain_files, worker):
    root_only = ssl.create_default_context(cafile=str(chain_files / "root.pem"))
    server = start_tls(serve, worker, ctx=root_only, certs=[
        "--certfile", chain_files / "chain.pem", "--keyfile", chain_files / "leaf.key"])
    assert get(server, root_only).body == b"scheme=https"
    rc, out = s_client(server, "-showcerts", ca=chain_files / "root.pem")
    assert rc == 0, out
    assert out.count("-----BEGIN CERTIFICATE-----") == 2, out
    assert "Verify return code: 0 (ok)" in out


# ---------------------------------------------------------------------------
# 5. --ciphers


@pytest.mark.parametrize("worker", WORKERS)
def test_ciphers_limit_tls12_but_not_tls13(serve, pki, worker):
    # make_pki's server key is ECDSA, so the ECDHE-ECDSA suites are the usable ones.
    server = start_tls(serve, worker, "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256", pki=pki)

    rc, out = s_client(server, "-tls1_2", ca=pki.ca_file)
    assert rc == 0, out
    assert negotiated(out) == ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256"), out

    rc, out = s_client(server, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384",
                       ca=pki.ca_file)
    assert rc != 0, out
    assert negotiated(out)[0] != "TLSv1.2" or negotiated(out)[1] == "(NONE)", out

    # TLS 1.3 suites are not governed by the cipher string.
    rc, out = s_client(server, "-tls1_3", ca=pki.ca_file)
    assert rc == 0, out
    assert negotiated(out)[0] == "TLSv1.3", out
    assert get(server, pki.client_context()).body == b"scheme=https"


@pytest.mark.ferrocorn_only
@pytest.mark.parametrize("ciphers", ["NOTACIPHER", "AES128-SHA"])
def test_cipher_string_selecting_nothing_refuses_to_start(run, pki, ciphers):
    # Gunicorn starts and fails every connection with `No cipher can be selected.`.
    result = run("-b", "127.0.0.1:0", *pki.server_args(), "--ciphers", ciphers,
                 "tls_app:app", timeout=30)
    assert result.returncode == 1, result.stderr
    assert "ciphers" in result.stderr


# ---------------------------------------------------------------------------
# 6, 7. --ssl-version (ignored) and the other flags


@pytest.mark.parametrize("worker,version", [("sync", "TLSv1_2"), ("gthread", "3"),
                                            ("asgi", "TLSv1_2")])
def test_ssl_version_is_ignored_with_a_warning(serve, pki, worker, version):
    server = start_tls(serve, worker, "--ssl-version", version, pki=pki)
    assert SSL_VERSION_WARNING in server.stderr_text()
    rc, out = s_client(server, "-tls1_3", ca=pki.ca_file)
    assert rc == 0, out
    assert negotiated(out)[0] == "TLSv1.3", out
    assert get(server, pki.client_context()).body == b"scheme=https"


@pytest.mark.parametrize("worker", WORKERS)
def test_ragged_eofs_and_handshake_on_connect_flags_are_accepted(serve, pki, worker):
    server = start_tls(serve, worker, "--suppress-ragged-eofs", "--do-handshake-on-connect",
                       pki=pki)
    resp = requests.get("https://127.0.0.1:%d/" % server.port, verify=str(pki.ca_file),
                        timeout=10)
    assert resp.status_code == 200
    assert resp.text == "scheme=https"


# ---------------------------------------------------------------------------
# 8. The ssl_context hook


@pytest.mark.parametrize("worker", WORKERS)
def test_ssl_context_hook_raising_the_minimum_version(serve, pki, tmp_path, worker):
    conf = write_conf(tmp_path, """\
        import ssl

        def ssl_context(config, default_ssl_context_factory):
            ctx = default_ssl_context_factory()
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            return ctx
        """)
    server = start_tls(serve, worker, "-c", conf, pki=pki)
    rc, out = s_client(server, "-tls1_2", ca=pki.ca_file)
    assert rc != 0, out
    assert negotiated(out)[0] != "TLSv1.2" or negotiated(out)[1] == "(NONE)", out
    rc, out = s_client(server, "-tls1_3", ca=pki.ca_file)
    assert rc == 0, out
    assert negotiated(out)[0] == "TLSv1.3", out
    tls12 = pki.client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ssl.SSLError):
        tls_request(server.address, tls12)
    assert get(server, pki.client_context()).body == b"scheme=https"


@pytest.mark.parametrize("worker", WORKERS)
def test_ssl_context_hook_building_its_own_context(serve, pki, tmp_path, worker):
    other_cert, other_key = tmp_path / "other.pem", tmp_path / "other.key"
    other_der = reissue(pki, other_cert, other_key)
    conf = write_conf(tmp_path, """\
        import ssl

        def ssl_context(config, default_ssl_context_factory):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(%r, %r)
            return ctx
        """ % (str(other_cert), str(other_key)))
    server = start_tls(serve, worker, "-c", conf, pki=pki)
    with tls_connect(server.address, pki.client_context()) as sock:
        seen = sock.getpeercert(True)
    assert seen == other_der
    assert seen != ssl.PEM_cert_to_DER_cert(pki.cert_file.read_text())
    assert get(server, pki.client_context()).body == b"scheme=https"


@pytest.mark.ferrocorn_only
@pytest.mark.parametrize("statement", [
    'ctx.set_ecdh_curve("secp384r1")',
    "ctx.sni_callback = lambda sock, name, context: None",
], ids=["set_ecdh_curve", "sni_callback"])
def test_ssl_context_hook_ferrocorn_cannot_translate_refuses_to_start(run, pki, tmp_path,
                                                                       statement):
    conf = write_conf(tmp_path, """\
        def ssl_context(config, default_ssl_context_factory):
            ctx = default_ssl_context_factory()
            %s
            return ctx
        """ % statement)
    result = run("-c", conf, "-b", "127.0.0.1:0", *pki.server_args(), "tls_app:app",
                 timeout=30)
    assert result.returncode == 1, result.stderr
    assert "ssl_context:" in result.stderr


@pytest.mark.ferrocorn_only
@pytest.mark.parametrize("worker", WORKERS)
def test_alpn_offers_http11_by_default(serve, pki, worker):
    # Gunicorn sets no ALPN unless h2 is in --http-protocols ("No ALPN negotiated").
    server = start_tls(serve, worker, pki=pki)
    rc, out = s_client(server, "-alpn", "http/1.1", ca=pki.ca_file)
    assert rc == 0, out
    assert "ALPN protocol: http/1.1" in out, out


# ---------------------------------------------------------------------------
# 9. Start-up errors


@pytest.mark.parametrize("setting", ["certfile", "keyfile"])
@pytest.mark.parametrize("worker", WORKERS)
def test_missing_cert_or_key_file_exits_1(run, pki, tmp_path, worker, setting):
    missing = tmp_path / ("missing-%s.pem" % setting)
    files = {"certfile": pki.cert_file, "keyfile": pki.key_file, setting: missing}
    result = run("-k", worker, "-b", "127.0.0.1:0", "--certfile", files["certfile"],
                 "--keyfile", files["keyfile"], APPS[worker], timeout=30)
    assert result.returncode == 1, result.stderr
    # Gunicorn: a traceback ending in `ValueError: certfile "<path>" does not exist`.
    assert setting in result.stderr
    assert "Booting worker" not in result.stderr


@pytest.fixture(scope="module")
def garbage_pem(tmp_path_factory):
    path = tmp_path_factory.mktemp("garbage") / "bad.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n"
                    "-----END CERTIFICATE-----\nnot a certificate either\n")
    return path


@pytest.mark.ferrocorn_only
@pytest.mark.parametrize("case", ["key-mismatch", "garbage-ca"])
@pytest.mark.parametrize("worker", WORKERS)
def test_unusable_tls_files_refuse_to_start(run, pki, garbage_pem, worker, case):
    # Gunicorn starts in both cases: sync and gthread then fail every connection with a
    # WARNING (`[X509: KEY_VALUES_MISMATCH] ...`, `[X509: NO_CERTIFICATE_OR_CRL_FOUND] ...`)
    # and answer a cleartext 403; asgi logs ERROR `Failed to create SSL context: ...` and
    # serves cleartext HTTP.
    if case == "key-mismatch":
        args = ["--certfile", pki.cert_file, "--keyfile", pki.client_key]
        names = ("keyfile", "certfile")
    else:
        args = pki.server_args() + ["--cert-reqs", "2", "--ca-certs", garbage_pem]
        names = ("ca_certs",)
    result = run("-k", worker, "-b", "127.0.0.1:0", *args, APPS[worker], timeout=30)
    assert result.returncode == 1, result.stderr
    assert any(name in result.stderr for name in names), result.stderr
    assert "Booting worker" not in result.stderr


# ---------------------------------------------------------------------------
# 11. Frameworks over TLS


def test_flask_sees_https(serve, pki):
    server = start_tls(serve, "sync", pki=pki, app="tls_app:flask_app()")
    resp = requests.get("https://127.0.0.1:%d/" % server.port, verify=str(pki.ca_file),
                        timeout=10)
    assert resp.status_code == 200
    assert resp.text == "flask scheme=https"


def test_fastapi_sees_https(serve, pki):
    server = start_tls(serve, "asgi", pki=pki, app="tls_asgi_app:fastapi_app()")
    resp = requests.get("https://127.0.0.1:%d/" % server.port, verify=str(pki.ca_file),
                        timeout=10)
    assert resp.status_code == 200
    assert resp.json() == {"framework": "fastapi", "scheme": "https"}
