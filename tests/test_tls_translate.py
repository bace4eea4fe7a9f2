"""Unit tests of ferrocorn._tls: the ssl_context translation, TLSAppSocket and the ASGI TLS
extension, in-process (no server is started).

Owns: checking what `context_spec` returns or refuses for Gunicorn's factory and for hooks,
and that `TLSAppSocket` and `asgi_tls_extension` answer as Python's own `ssl` does for the
same certificates (a real in-process TLS connection gives the reference).
Must not: start ferrocorn, touch files outside the test's temporary directories, or leave
`ssl.SSLContext` replaced.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
import subprocess
import tempfile
import threading
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from ferrocorn import _tls
from ferrocorn._tls import TLSAppSocket, TranslationError, asgi_tls_extension, context_spec

REAL_SSL_CONTEXT = ssl.SSLContext

# A subject that needs RFC 4514 escaping: a leading '#', quotes, angle brackets, ';', a
# backslash, a trailing space, a ',' and a '+' inside values, and a non-ASCII character.
CLIENT_SUBJECT = ("/DC=org/DC=example/C=US/ST=Some State/L=Springfield/O=Example, Inc."
                  "/OU=Dev\\+Ops/CN=#alice \"A\" <x>;y\\\\z /emailAddress=alice@example.com"
                  "/title=Zo\u00eb")
CLIENT_NAME = ("title=Zo\u00eb,emailAddress=alice@example.com,"
               "CN=\\#alice \\\"A\\\" \\<x\\>\\;y\\\\z\\ ,OU=Dev\\+Ops,O=Example\\, Inc.,"
               "L=Springfield,ST=Some State,C=US,DC=example,DC=org")


# --- certificates (openssl CLI: trustme is not installed in this venv) -------------------

@dataclass
class Pki:
    dir: Path
    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> str:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _issue(d: Path, name: str, subject: str, extensions: str) -> None:
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-utf8", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", subject, cwd=d)
    (d / f"{name}.ext").write_text(extensions)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-set_serial", str(abs(hash(name)) % 10**12 + 2), "-days", "30",
             "-out", f"{name}.pem", "-extfile", f"{name}.ext", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
             "-subj", "/O=ferrocorn tests/CN=test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _issue(d, "server", "/CN=localhost",
           "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    # Extensions that make Python's decoded dict carry every optional key it knows.
    _issue(d, "client", CLIENT_SUBJECT,
           "subjectAltName=email:alice@example.com,DNS:alice.example,IP:192.0.2.7\n"
           "extendedKeyUsage=clientAuth\n"
           "authorityInfoAccess=OCSP;URI:http://ocsp.example/,"
           "caIssuers;URI:http://ca.example/ca.pem\n"
           "crlDistributionPoints=URI:http://ca.example/crl.pem\n")
    return Pki(dir=d, ca=d / "ca.pem", ca_key=d / "ca.key",
               server_cert=d / "server.pem", server_key=d / "server.key",
               client_cert=d / "client.pem", client_key=d / "client.key")


def der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def config(pki: Pki, **overrides: Any) -> types.SimpleNamespace:
    values: dict[str, Any] = dict(certfile=str(pki.server_cert), keyfile=str(pki.server_key),
                                  ca_certs=None, cert_reqs=ssl.CERT_NONE, ciphers=None)
    values.update(overrides)
    return types.SimpleNamespace(**values)


@pytest.fixture(autouse=True)
def no_keylog_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # create_default_context sets keylog_filename from SSLKEYLOGFILE, which is refused.
    monkeypatch.delenv("SSLKEYLOGFILE", raising=False)


@pytest.fixture(autouse=True)
def ssl_context_restored() -> Any:
    yield
    assert ssl.SSLContext is REAL_SSL_CONTEXT


# --- the factory -------------------------------------------------------------------------

def test_factory_with_ca_certs(pki: Pki) -> None:
    cfg = config(pki, ca_certs=str(pki.ca), cert_reqs=ssl.CERT_REQUIRED,
                 ciphers="ECDHE+AESGCM")
    assert context_spec(cfg, None) == {
        "certfile": str(pki.server_cert),
        "keyfile": str(pki.server_key),
        "chain_origin": "certfile",
        "ca_files": [str(pki.ca)],
        "ca_dirs": [],
        "ca_pem": [],
        "ca_der": [],
        "ca_origin": "ca_certs",
        "verify_mode": 2,
        "ciphers": "ECDHE+AESGCM",
        "ciphers_origin": "ciphers",
        # Python's server contexts start at TLS 1.2.
        "min_version": int(ssl.TLSVersion.TLSv1_2),
        "max_version": None,
        "alpn": None,
        "no_tls12": False,
        "no_tls13": False,
        "no_ticket": False,
        "watch": sorted([str(pki.ca), str(pki.server_cert), str(pki.server_key)]),
    }


def test_hook_receives_the_factory_and_the_config(pki: Pki) -> None:
    seen: list[Any] = []

    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        seen.append(conf)
        ctx = factory()
        seen.append(ctx)
        return ctx

    cfg = config(pki, ca_certs=str(pki.ca))
    assert context_spec(cfg, hook) == context_spec(cfg, None)
    assert seen[0] is cfg
    # Inside the hook the factory's context is an ssl.SSLContext as far as anyone can tell.
    assert isinstance(seen[1], REAL_SSL_CONTEXT)


def test_factory_without_ca_certs_loads_no_ca_as_python_does(
        pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    # Point the system CA file at our CA so "loaded the defaults" would be visible.
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    monkeypatch.setenv("SSL_CERT_DIR", str(pki.dir / "no-such-dir"))
    reference = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # create_default_context(CLIENT_AUTH) starts with CERT_NONE, so it skips
    # load_default_certs; Gunicorn then sets cert_reqs on a context with no CA.
    assert reference.verify_mode == ssl.CERT_NONE
    assert reference.cert_store_stats()["x509_ca"] == 0
    reference.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    assert reference.cert_store_stats()["x509_ca"] == 1

    spec = context_spec(config(pki, cert_reqs=ssl.CERT_REQUIRED), None)
    assert (spec["ca_files"], spec["ca_dirs"], spec["ca_pem"], spec["ca_der"]) == ([], [], [], [])
    assert spec["ca_origin"] == "ca_certs"
    assert spec["verify_mode"] == 2
    assert spec["watch"] == sorted([str(pki.server_cert), str(pki.server_key)])


def test_load_default_certs_resolves_the_default_verify_paths(
        pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    ca_dir = pki.dir / "system-certs"
    ca_dir.mkdir(exist_ok=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    monkeypatch.setenv("SSL_CERT_DIR", str(ca_dir))

    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = factory()
        ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        return ctx

    spec = context_spec(config(pki, cert_reqs=ssl.CERT_OPTIONAL), hook)
    assert spec["ca_files"] == [str(pki.ca)]
    assert spec["ca_dirs"] == [str(ca_dir)]
    assert spec["ca_origin"] == "system CA certificates"
    assert str(pki.ca) in spec["watch"] and str(ca_dir) not in spec["watch"]
    assert spec["verify_mode"] == 1


def test_default_verify_paths_that_do_not_exist_are_left_out(
        pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.dir / "missing.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(pki.dir / "missing-dir"))

    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = factory()
        ctx.set_default_verify_paths()
        return ctx

    spec = context_spec(config(pki), hook)
    assert (spec["ca_files"], spec["ca_dirs"]) == ([], [])
    assert spec["ca_origin"] == "system CA certificates"


def test_load_default_certs_checks_its_purpose_like_python(pki: Pki) -> None:
    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = factory()
        ctx.load_default_certs("CLIENT_AUTH")  # type: ignore[arg-type]
        return ctx

    with pytest.raises(TypeError):
        context_spec(config(pki), hook)


@pytest.mark.parametrize("cert_reqs", [ssl.CERT_NONE, ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED])
def test_factory_cert_reqs(pki: Pki, cert_reqs: ssl.VerifyMode) -> None:
    spec = context_spec(config(pki, ca_certs=str(pki.ca), cert_reqs=cert_reqs), None)
    assert spec["verify_mode"] == int(cert_reqs)
    assert type(spec["verify_mode"]) is int


@pytest.mark.parametrize("ciphers, expected", [(None, None), ("", None),
                                               ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256")])
def test_factory_ciphers(pki: Pki, ciphers: Optional[str], expected: Optional[str]) -> None:
    # Gunicorn calls set_ciphers only for a non-empty setting.
    spec = context_spec(config(pki, ciphers=ciphers), None)
    assert (spec["ciphers"], spec["ciphers_origin"]) == (expected, "ciphers")


def test_factory_keyfile_none_means_key_in_certfile(pki: Pki) -> None:
    spec = context_spec(config(pki, keyfile=None), None)
    assert spec["keyfile"] is None
    assert spec["watch"] == [str(pki.server_cert)]


def test_factory_without_certfile_fails_as_python_does(pki: Pki) -> None:
    with pytest.raises(TypeError, match="certfile should be a valid filesystem path"):
        context_spec(config(pki, certfile=None), None)


def test_paths_are_recorded_as_given_and_not_read(pki: Pki) -> None:
    # Relative and missing: the Rust side reads (and reports) them, not the translation.
    cfg = config(pki, certfile="certs/missing.pem", keyfile=Path("keys/missing.key"),
                 ca_certs="ca/missing.pem")
    spec = context_spec(cfg, None)
    assert (spec["certfile"], spec["keyfile"]) == ("certs/missing.pem", "keys/missing.key")
    assert spec["ca_files"] == ["ca/missing.pem"]
    assert spec["watch"] == ["ca/missing.pem", "certs/missing.pem", "keys/missing.key"]


# --- hooks ------------------------------------------------------------------------------

def test_hook_adjusts_the_factory_context(pki: Pki) -> None:
    pem = pki.ca.read_text()

    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = factory()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.maximum_version = ssl.TLSVersion.TLSv1_3
        ctx.options |= ssl.OP_NO_TICKET
        ctx.set_alpn_protocols(["http/1.1"])
        ctx.load_verify_locations(cafile=str(pki.ca))
        ctx.load_verify_locations(cadata=pem)
        ctx.load_verify_locations(cadata=bytearray(der(pki.ca)))
        ctx.load_verify_locations(capath=str(pki.dir))
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.set_ciphers("ECDHE+CHACHA20")
        return ctx

    spec = context_spec(config(pki), hook)
    assert spec["min_version"] == spec["max_version"] == int(ssl.TLSVersion.TLSv1_3)
    assert spec["no_ticket"] is True
    assert (spec["no_tls12"], spec["no_tls13"]) == (False, False)
    assert spec["alpn"] == ["http/1.1"]
    assert spec["ca_files"] == [str(pki.ca)]
    assert spec["ca_dirs"] == [str(pki.dir)]
    assert spec["ca_pem"] == [pem.encode("ascii")]
    assert spec["ca_der"] == [der(pki.ca)]
    assert all(type(b) is bytes for b in spec["ca_pem"] + spec["ca_der"])
    assert spec["ca_origin"] == "ssl_context hook (load_verify_locations)"
    assert spec["verify_mode"] == 2
    assert (spec["ciphers"], spec["ciphers_origin"]) == (
        "ECDHE+CHACHA20", "ssl_context hook (set_ciphers)")
    # The chain still came from the factory's settings.
    assert spec["chain_origin"] == "certfile"


def test_hook_disables_protocol_versions_through_options(pki: Pki) -> None:
    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = factory()
        with pytest.warns(DeprecationWarning):  # Python's own warning for OP_NO_TLS*
            ctx.options |= ssl.OP_NO_TLSv1 | ssl.OP_NO_TLSv1_1 | ssl.OP_NO_TLSv1_2
        return ctx

    spec = context_spec(config(pki), hook)
    assert (spec["no_tls12"], spec["no_tls13"], spec["no_ticket"]) == (True, False, False)


def test_every_translatable_option_is_accepted(pki: Pki) -> None:
    names = [n for n in _tls._TRANSLATABLE_OPTION_NAMES if hasattr(ssl, n)]

    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = factory()
        with warnings.catch_warnings():
            # Python deprecates the OP_NO_SSL*/OP_NO_TLS* switches; they still work.
            warnings.simplefilter("ignore", DeprecationWarning)
            for name in names:
                ctx.options |= getattr(ssl, name)
        ctx.options &= ~(ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE)
        return ctx

    spec = context_spec(config(pki), hook)
    assert (spec["no_tls12"], spec["no_tls13"], spec["no_ticket"]) == (True, True, True)


def test_unbounded_versions_are_none(pki: Pki) -> None:
    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = factory()
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    spec = context_spec(config(pki), hook)
    assert (spec["min_version"], spec["max_version"]) == (None, int(ssl.TLSVersion.TLSv1_2))


def test_version_setters_validate_like_python(pki: Pki) -> None:
    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = factory()
        ctx.minimum_version = "TLSv1_3"  # type: ignore[assignment]
        return ctx

    with pytest.raises(TypeError):
        context_spec(config(pki), hook)


def test_num_tickets_zero_means_no_tickets(pki: Pki) -> None:
    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = factory()
        ctx.num_tickets = 0
        return ctx

    assert context_spec(config(pki), hook)["no_ticket"] is True


def test_hook_builds_its_own_sslcontext(pki: Pki) -> None:
    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pki.server_cert))
        ctx.load_verify_locations(str(pki.ca))
        ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    spec = context_spec(config(pki, ca_certs="ignored.pem", ciphers="IGNORED"), hook)
    assert spec["certfile"] == str(pki.server_cert)
    assert spec["keyfile"] is None
    assert spec["chain_origin"] == "ssl_context hook (load_cert_chain)"
    assert spec["ca_files"] == [str(pki.ca)]
    assert spec["ca_origin"] == "ssl_context hook (load_verify_locations)"
    assert spec["verify_mode"] == 1
    assert (spec["ciphers"], spec["ciphers_origin"]) == (None, "ciphers")
    assert spec["watch"] == sorted([str(pki.ca), str(pki.server_cert)])


def test_hook_uses_create_default_context(pki: Pki) -> None:
    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
        ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    spec = context_spec(config(pki), hook)
    assert spec["ca_files"] == [str(pki.ca)]
    assert spec["ca_origin"] == "ssl_context hook (load_verify_locations)"
    assert spec["chain_origin"] == "ssl_context hook (load_cert_chain)"
    assert spec["verify_mode"] == 2


def test_the_last_load_cert_chain_wins(pki: Pki) -> None:
    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = factory()
        ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
        return ctx

    spec = context_spec(config(pki), hook)
    assert (spec["certfile"], spec["keyfile"]) == (str(pki.client_cert), str(pki.client_key))
    assert spec["chain_origin"] == "ssl_context hook (load_cert_chain)"
    assert spec["watch"] == sorted([str(pki.client_cert), str(pki.client_key)])


def test_factory_ca_certs_and_hook_cas_are_attributed_to_the_hook(pki: Pki) -> None:
    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = factory()
        ctx.load_verify_locations(cadata=der(pki.ca))
        return ctx

    spec = context_spec(config(pki, ca_certs=str(pki.ca)), hook)
    assert spec["ca_files"] == [str(pki.ca)]
    assert spec["ca_der"] == [der(pki.ca)]
    assert spec["ca_origin"] == "ssl_context hook (load_verify_locations)"


def test_deprecated_tls12_only_protocol_pins_both_bounds(pki: Pki) -> None:
    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        with pytest.warns(DeprecationWarning):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLSv1_2)
        ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
        return ctx

    spec = context_spec(config(pki), hook)
    assert spec["min_version"] == spec["max_version"] == int(ssl.TLSVersion.TLSv1_2)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "cafile, capath and cadata cannot be all omitted"),
    ({"cafile": 3}, "cafile should be a valid filesystem path"),
    ({"capath": 3}, "capath should be a valid filesystem path"),
    ({"cadata": 3}, "cadata should be an ASCII string or a bytes-like object"),
])
def test_load_verify_locations_type_errors_match_python(
        pki: Pki, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError) as real:
        REAL_SSL_CONTEXT(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(**kwargs)
    assert str(real.value) == message

    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = factory()
        ctx.load_verify_locations(**kwargs)
        return ctx

    with pytest.raises(TypeError) as ours:
        context_spec(config(pki), hook)
    assert str(ours.value) == message


def test_alpn_is_checked_like_python(pki: Pki) -> None:
    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = factory()
        ctx.set_alpn_protocols([""])
        return ctx

    with pytest.raises(ssl.SSLError, match="ALPN protocols must be 1 to 255 in length"):
        context_spec(config(pki), hook)


# --- what cannot be translated -----------------------------------------------------------

def _sni(ctx: ssl.SSLContext) -> None:
    ctx.sni_callback = lambda sock, name, context: None


def _msg(ctx: ssl.SSLContext) -> None:
    ctx._msg_callback = lambda *args: None  # type: ignore[attr-defined]


def _options(ctx: ssl.SSLContext) -> None:
    ctx.options &= ~ssl.OP_ALL


UNTRANSLATABLE: list[tuple[str, Callable[[ssl.SSLContext], Any], str]] = [
    ("set_ecdh_curve", lambda c: c.set_ecdh_curve("secp384r1"),
     "ssl_context: set_ecdh_curve('secp384r1') cannot be translated to rustls (its key "
     "exchange groups are X25519, secp256r1 and secp384r1, always on)"),
    ("load_dh_params", lambda c: c.load_dh_params("dh.pem"),
     "ssl_context: load_dh_params('dh.pem') cannot be translated to rustls"),
    ("set_npn_protocols", lambda c: c.set_npn_protocols(["http/1.1"]),
     "ssl_context: set_npn_protocols(['http/1.1']) cannot be translated to rustls"),
    ("set_servername_callback", lambda c: c.set_servername_callback(print),
     "ssl_context: set_servername_callback(<built-in function print>) cannot be translated"),
    ("sni_callback", _sni, "ssl_context: sni_callback = <function"),
    ("_msg_callback", _msg, "ssl_context: _msg_callback = <function"),
    ("keylog_filename", lambda c: setattr(c, "keylog_filename", "keys.log"),
     "ssl_context: keylog_filename = 'keys.log' cannot be translated to rustls (ferrocorn "
     "does not write TLS key logs)"),
    ("post_handshake_auth", lambda c: setattr(c, "post_handshake_auth", True),
     "ssl_context: post_handshake_auth = True cannot be translated to rustls"),
    ("crl_leaf", lambda c: setattr(c, "verify_flags", c.verify_flags | ssl.VERIFY_CRL_CHECK_LEAF),
     "ssl_context: verify_flags with VERIFY_CRL_CHECK_LEAF cannot be translated to rustls "
     "(ferrocorn does not check certificate revocation lists)"),
    ("crl_chain", lambda c: setattr(c, "verify_flags", c.verify_flags | ssl.VERIFY_CRL_CHECK_CHAIN),
     "ssl_context: verify_flags with VERIFY_CRL_CHECK_CHAIN cannot be translated"),
    ("options", _options, "ssl_context: options clears 0x"),
    ("password", lambda c: c.load_cert_chain("cert.pem", "key.pem", password="secret"),
     "ssl_context: load_cert_chain('cert.pem', 'key.pem', password=...) cannot be translated "
     "to rustls"),
]


@pytest.mark.parametrize("name, change, message", UNTRANSLATABLE,
                         ids=[u[0] for u in UNTRANSLATABLE])
def test_untranslatable(pki: Pki, name: str, change: Callable[[ssl.SSLContext], Any],
                        message: str) -> None:
    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = factory()
        change(ctx)
        return ctx

    with pytest.raises(TranslationError) as err:
        context_spec(config(pki), hook)
    assert str(err.value).startswith(message)
    assert "secret" not in str(err.value)


@pytest.mark.parametrize("name, change, message", UNTRANSLATABLE,
                         ids=[u[0] for u in UNTRANSLATABLE])
def test_untranslatable_even_when_the_hook_swallows_the_error(
        pki: Pki, name: str, change: Callable[[ssl.SSLContext], Any], message: str) -> None:
    # Under Gunicorn the call would have taken effect; carrying on without it is not an
    # option even if the hook catches our exception.
    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = factory()
        try:
            change(ctx)
        except Exception:
            pass
        return ctx

    with pytest.raises(TranslationError) as err:
        context_spec(config(pki), hook)
    assert str(err.value).startswith(message)


def test_method_calls_raise_at_the_call(pki: Pki) -> None:
    reached: list[bool] = []

    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = factory()
        ctx.set_ecdh_curve("prime256v1")
        reached.append(True)
        return ctx

    with pytest.raises(TranslationError):
        context_spec(config(pki), hook)
    assert reached == []


def test_attributes_are_judged_by_their_final_value(pki: Pki) -> None:
    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = factory()
        ctx.keylog_filename = "keys.log"
        ctx.keylog_filename = None
        ctx.post_handshake_auth = True
        ctx.post_handshake_auth = False
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
        ctx.verify_flags &= ~ssl.VERIFY_CRL_CHECK_CHAIN
        ctx.options &= ~ssl.OP_ALL
        ctx.options |= ssl.OP_ALL
        ctx.sni_callback = print
        ctx.set_servername_callback(None)
        return ctx

    context_spec(config(pki), hook)


def test_untranslatable_options_are_named(pki: Pki) -> None:
    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = factory()
        ctx.options |= 0x4
        ctx.options &= ~0x10
        return ctx

    with pytest.raises(TranslationError) as err:
        context_spec(config(pki), hook)
    text = str(err.value)
    assert text.startswith("ssl_context: options ")
    assert "sets 0x4" in text and "clears 0x10 (part of OP_ALL)" in text
    assert "OP_NO_TICKET" in text  # the list of what may differ


def test_keylog_from_sslkeylogfile_says_so_and_opens_nothing(
        pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    keylog = pki.dir / "keylog.txt"
    monkeypatch.setenv("SSLKEYLOGFILE", str(keylog))
    with pytest.raises(TranslationError) as err:
        context_spec(config(pki), None)
    assert str(err.value).startswith("ssl_context: keylog_filename = %r" % str(keylog))
    assert "SSLKEYLOGFILE" in str(err.value)
    assert not keylog.exists()


def test_client_side_protocol(pki: Pki) -> None:
    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = ssl.create_default_context()  # Purpose.SERVER_AUTH: a client context
        ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
        return ctx

    with pytest.raises(TranslationError,
                       match=r"^ssl_context: the context was made with PROTOCOL_TLS_CLIENT"):
        context_spec(config(pki), hook)


def test_no_certificate_chain(pki: Pki) -> None:
    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)

    with pytest.raises(TranslationError) as err:
        context_spec(config(pki), hook)
    assert str(err.value) == ("ssl_context: the context has no certificate chain "
                              "(load_cert_chain was never called)")


@pytest.mark.parametrize("returned, shown", [
    (None, "the hook returned None;"),
    ("context", "the hook returned 'context' (a str);"),
    (REAL_SSL_CONTEXT(ssl.PROTOCOL_TLS_SERVER), "made outside the hook"),
])
def test_hook_returning_something_else(pki: Pki, returned: Any, shown: str) -> None:
    with pytest.raises(TranslationError) as err:
        context_spec(config(pki), lambda conf, factory: returned)
    text = str(err.value)
    assert text.startswith("ssl_context: ")
    assert shown in text
    assert ("it must return the context from default_ssl_context_factory() or an "
            "ssl.SSLContext it made itself") in text


def test_a_context_made_before_the_hook_fails_cleanly(pki: Pki) -> None:
    # ssl.py's setters name the patched `SSLContext` global; touching a real context while
    # the hook runs must behave as usual, and only the result is refused.
    real = REAL_SSL_CONTEXT(ssl.PROTOCOL_TLS_SERVER)

    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        real.minimum_version = ssl.TLSVersion.TLSv1_3
        real.verify_mode = ssl.CERT_OPTIONAL
        real.verify_flags |= ssl.VERIFY_X509_STRICT
        real.options |= ssl.OP_NO_TICKET
        real._msg_callback = None  # type: ignore[attr-defined]
        real.load_cert_chain(str(pki.server_cert), str(pki.server_key))
        return real

    with pytest.raises(TranslationError, match="made outside the hook"):
        context_spec(config(pki), hook)
    assert real.minimum_version == ssl.TLSVersion.TLSv1_3
    assert real.verify_mode == ssl.CERT_OPTIONAL
    assert real.options & ssl.OP_NO_TICKET


def test_hook_exceptions_propagate_unchanged(pki: Pki) -> None:
    boom = KeyError("boom")

    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        assert ssl.SSLContext is _tls.RecordingContext
        raise boom

    with pytest.raises(KeyError) as err:
        context_spec(config(pki), hook)
    assert err.value is boom
    assert ssl.SSLContext is REAL_SSL_CONTEXT


def test_factory_outside_the_hook_still_records(pki: Pki) -> None:
    kept: list[Callable[[], ssl.SSLContext]] = []

    def hook(conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        kept.append(factory)
        return factory()

    context_spec(config(pki), hook)
    ctx = kept[0]()
    assert isinstance(ctx, _tls.RecordingContext)
    assert ssl.SSLContext is REAL_SSL_CONTEXT


# --- the reference: a real TLS connection with Python's ssl -------------------------------

@dataclass
class Handshake:
    peercert: Any
    peercert_der: Optional[bytes]
    cipher: Any
    version: Optional[str]
    alpn: Optional[str]


def handshake(pki: Pki, verify_mode: ssl.VerifyMode, client_cert: bool) -> Handshake:
    """What the server side of a real Python TLS connection reports about its client."""
    server_ctx = REAL_SSL_CONTEXT(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    server_ctx.load_verify_locations(str(pki.ca))
    server_ctx.verify_mode = verify_mode
    server_ctx.set_alpn_protocols(["http/1.1"])
    client_ctx = ssl.create_default_context(cafile=str(pki.ca))
    client_ctx.set_alpn_protocols(["http/1.1"])
    if client_cert:
        client_ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    server = server_ctx.wrap_socket(a, server_side=True, do_handshake_on_connect=False)
    client = client_ctx.wrap_socket(b, server_hostname="localhost",
                                    do_handshake_on_connect=False)
    errors: list[BaseException] = []

    def client_side() -> None:
        try:
            client.do_handshake()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    t = threading.Thread(target=client_side)
    t.start()
    try:
        server.do_handshake()
    finally:
        t.join(10)
    assert not errors, errors
    try:
        return Handshake(server.getpeercert(), server.getpeercert(True), server.cipher(),
                         server.version(), server.selected_alpn_protocol())
    finally:
        server.close()
        client.close()


def app_socket() -> tuple[TLSAppSocket, socket.socket, socket.socket]:
    """A TLSAppSocket over a dup of one end of a socket pair, as ferrocorn makes it."""
    a, b = socket.socketpair()
    sock = TLSAppSocket(family=a.family, type=a.type, proto=0, fileno=os.dup(a.fileno()))
    return sock, a, b


@pytest.fixture
def sock() -> Any:
    s, a, b = app_socket()
    yield s
    for x in (s, a, b):
        x.close()


def test_getpeercert_matches_sslsocket(pki: Pki, sock: TLSAppSocket,
                                       monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path) -> None:
    ref = handshake(pki, ssl.CERT_REQUIRED, client_cert=True)
    assert ref.peercert and "subjectAltName" in ref.peercert and "OCSP" in ref.peercert
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    sock._ferrocorn_set_tls((der(pki.client_cert), der(pki.ca)), ref.cipher, ref.version,
                            ref.alpn, ssl.CERT_REQUIRED)
    assert sock.getpeercert() == ref.peercert
    assert sock.getpeercert(binary_form=True) == ref.peercert_der == der(pki.client_cert)
    assert sock.cipher() == ref.cipher
    assert sock.version() == ref.version == "TLSv1.3"
    assert sock.selected_alpn_protocol() == ref.alpn == "http/1.1"
    # Decoded once, through a temporary file that is gone at once.
    assert sock.getpeercert() is sock.getpeercert()
    assert list(tmp_path.iterdir()) == []


def test_getpeercert_optional_verification_decodes(pki: Pki, sock: TLSAppSocket) -> None:
    ref = handshake(pki, ssl.CERT_OPTIONAL, client_cert=True)
    sock._ferrocorn_set_tls([der(pki.client_cert)], ref.cipher, ref.version, ref.alpn,
                            ssl.CERT_OPTIONAL)
    assert sock.getpeercert() == ref.peercert != {}


def test_getpeercert_without_a_client_certificate(pki: Pki, sock: TLSAppSocket) -> None:
    ref = handshake(pki, ssl.CERT_OPTIONAL, client_cert=False)
    assert ref.peercert is None and ref.peercert_der is None
    sock._ferrocorn_set_tls((), ref.cipher, ref.version, ref.alpn, ssl.CERT_OPTIONAL)
    assert sock.getpeercert() is None
    assert sock.getpeercert(True) is None


def test_getpeercert_unverified_certificate_is_an_empty_dict(pki: Pki,
                                                             sock: TLSAppSocket) -> None:
    # Python's rule (_ssl.c): with CERT_NONE the certificate is not decoded, but its DER
    # is still given.
    sock._ferrocorn_set_tls((der(pki.client_cert),), ("TLS_AES_128_GCM_SHA256", "TLSv1.3", 128),
                            "TLSv1.3", None, ssl.CERT_NONE)
    assert sock.getpeercert() == {}
    assert sock.getpeercert(binary_form=True) == der(pki.client_cert)


def test_before_the_handshake(sock: TLSAppSocket) -> None:
    with pytest.raises(ValueError, match="handshake not done yet"):
        sock.getpeercert()
    assert sock.cipher() is None and sock.version() is None
    assert sock.selected_alpn_protocol() is None


def test_sslsocket_attributes(sock: TLSAppSocket) -> None:
    sock._ferrocorn_set_tls((), ["TLS_AES_256_GCM_SHA384", "TLSv1.3", 256], "TLSv1.3",
                            None, ssl.CERT_NONE)
    assert sock.cipher() == ("TLS_AES_256_GCM_SHA384", "TLSv1.3", 256)
    assert sock.selected_alpn_protocol() is None
    assert sock.compression() is None
    assert sock.shared_ciphers() is None
    assert sock.server_side is True
    assert sock.server_hostname is None


@pytest.mark.parametrize("method, args", [
    ("recv", (1,)), ("recv_into", (bytearray(1),)), ("recvfrom", (1,)),
    ("recvfrom_into", (bytearray(1),)), ("send", (b"x",)), ("sendall", (b"x",)),
    ("sendto", (b"x", ("127.0.0.1", 9))), ("sendfile", (None,)), ("makefile", ("rb",)),
    ("recvmsg", (1,)), ("sendmsg", ([b"x"],)),
])
def test_reads_and_writes_are_refused(sock: TLSAppSocket, method: str, args: tuple) -> None:
    with pytest.raises(OSError) as err:
        getattr(sock, method)(*args)
    assert err.value.errno == errno.EOPNOTSUPP
    assert "TLS is handled by ferrocorn" in str(err.value)
    assert "wsgi.input" in str(err.value)


def test_the_socket_itself_stays_usable() -> None:
    sock, a, b = app_socket()
    try:
        assert sock.fileno() >= 0 and sock.fileno() != a.fileno()
        assert sock.family == a.family and sock.type == a.type
        assert sock.getsockname() == a.getsockname()
        assert sock.getpeername() == a.getpeername()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        assert a.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        sock.close()
        assert sock.fileno() == -1
        # Closing the app's dup leaves the connection itself open.
        a.sendall(b"still open")
        assert b.recv(100) == b"still open"
    finally:
        for x in (sock, a, b):
            x.close()


# --- the ASGI TLS extension ---------------------------------------------------------------

def test_asgi_tls_extension_with_a_client_certificate(pki: Pki) -> None:
    chain = [der(pki.client_cert), der(pki.ca)]
    ext = asgi_tls_extension(der(pki.server_cert), chain, 0x0304, 0x1301)
    assert ext == {
        "server_cert": ssl.DER_cert_to_PEM_cert(der(pki.server_cert)),
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(c) for c in chain],
        "client_cert_name": CLIENT_NAME,
        "client_cert_error": None,
        "tls_version": 0x0304,
        "cipher_suite": 0x1301,
    }
    # The PEM is the certificate's own, and the name agrees with OpenSSL's RFC 2253 form
    # (the same as RFC 4514's for these attributes).
    assert ssl.PEM_cert_to_DER_cert(ext["client_cert_chain"][0]) == chain[0]
    openssl = _openssl("x509", "-in", str(pki.client_cert), "-noout", "-subject",
                       "-nameopt", "RFC2253,-esc_msb", cwd=pki.dir)
    assert openssl.strip() == "subject=" + CLIENT_NAME


def test_asgi_tls_extension_without_a_client_certificate(pki: Pki) -> None:
    ext = asgi_tls_extension(der(pki.server_cert), (), 0x0303, 0xC02B)
    assert ext["client_cert_chain"] == []
    assert ext["client_cert_name"] is None
    assert ext["client_cert_error"] is None
    assert (ext["tls_version"], ext["cipher_suite"]) == (0x0303, 0xC02B)
    assert asgi_tls_extension(None, (), 0x0304, 0x1302)["server_cert"] is None


def test_asgi_server_cert_is_pem_text(pki: Pki) -> None:
    pem = asgi_tls_extension(der(pki.server_cert), (), 0x0304, 0x1301)["server_cert"]
    assert isinstance(pem, str) and pem.startswith("-----BEGIN CERTIFICATE-----")
    assert ssl.PEM_cert_to_DER_cert(pem) == der(pki.server_cert)


@pytest.mark.parametrize("subject, expected", [
    (((("commonName", "alice"),), (("organizationName", "Example"),)), "O=Example,CN=alice"),
    # Certificate order is most general first; RFC 4514 writes the last RDN first.
    (((("countryName", "DE"),), (("organizationName", "Example"),),
      (("commonName", "alice"),)), "CN=alice,O=Example,C=DE"),
    (((("streetAddress", "1 Main St"),), (("domainComponent", "example"),),
      (("userId", "a1"),), (("localityName", "Berlin"),),
      (("stateOrProvinceName", "Berlin"),), (("organizationalUnitName", "R&D"),)),
     "OU=R&D,ST=Berlin,L=Berlin,UID=a1,DC=example,STREET=1 Main St"),
    # A multi-valued RDN joins its attributes with '+'.
    (((("organizationalUnitName", "Ops"), ("userId", "bob")),), "OU=Ops+UID=bob"),
    # Other attributes keep their name, or their OID when there is no name.
    (((("emailAddress", "a@example.com"),), (("1.2.3.4.5", "x"),)),
     "1.2.3.4.5=x,emailAddress=a@example.com"),
    # Escapes: specials anywhere, '#' and ' ' leading, ' ' trailing, NUL as \00.
    (((("commonName", ' #a,b+c"d\\e<f>g;h= '),),),
     r'CN=\ #a\,b\+c\"d\\e\<f\>g\;h=\ '),
    (((("commonName", "#x"),),), "CN=\\#x"),
    (((("commonName", "a\0b"),),), "CN=a\\00b"),
    (((("commonName", " "),),), "CN=\\ "),
])
def test_rfc4514_names(subject: Any, expected: str) -> None:
    assert _tls._rfc4514_name(subject) == expected


def test_other_threads_get_real_contexts_while_a_hook_is_recorded():
    """A worker re-runs the hook for a renewed file while app threads run: a context an app
    thread makes meanwhile must be a real one, not a recording."""
    import threading as _threading

    from ferrocorn import _tls

    made = {}

    def other_thread():
        made["ctx"] = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

    with _tls._ssl_context_replaced():
        assert ssl.SSLContext is _tls.RecordingContext
        t = _threading.Thread(target=other_thread)
        t.start()
        t.join()
        mine = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert type(made["ctx"]) is ssl.SSLContext
    assert isinstance(mine, _tls.RecordingContext)
    assert ssl.SSLContext is not _tls.RecordingContext
