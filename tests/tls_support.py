"""Certificates and TLS clients for the TLS tests: a CA, server certificates for loopback,
client certificates (good, expired, from a foreign CA), keys in every PEM form, and a
`wait_tls_ready` for servers whose port answers only TLS.

Owns: making test certificates in a test's temporary directory and talking TLS to a
server. Must not: start servers (conftest's `serve` does) or assert on server behaviour.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass
class Pki:
    """Files of one test's certificates, all under `dir`."""

    dir: Path
    ca: trustme.CA
    ca_file: Path
    cert_file: Path
    key_file: Path
    # A file holding the server's key and chain together (certfile only, no keyfile).
    combined_file: Path
    client_cert: Path
    client_key: Path
    expired_client_cert: Path
    expired_client_key: Path
    foreign_client_cert: Path
    foreign_client_key: Path
    foreign_ca_file: Path

    def client_context(self, cert: str | None = None, **kw) -> ssl.SSLContext:
        """A client context trusting our CA; `cert` is "good", "expired" or "foreign"."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if cert:
            pair = {
                "good": (self.client_cert, self.client_key),
                "expired": (self.expired_client_cert, self.expired_client_key),
                "foreign": (self.foreign_client_cert, self.foreign_client_key),
            }[cert]
            ctx.load_cert_chain(str(pair[0]), str(pair[1]))
        for k, v in kw.items():
            setattr(ctx, k, v)
        return ctx

    def server_args(self) -> list[str]:
        return ["--certfile", str(self.cert_file), "--keyfile", str(self.key_file)]


def _write_pair(cert: trustme.LeafCert, cert_path: Path, key_path: Path) -> None:
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_path), append=True)
    cert.private_key_pem.write_to_path(str(key_path))


def make_pki(dir: Path, key_type: trustme.KeyType = trustme.KeyType.ECDSA) -> Pki:
    """A CA with an intermediate, a server chain for loopback, and client certificates."""
    dir.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(key_type=key_type)
    ca.cert_pem.write_to_path(str(dir / "ca.pem"))
    server = ca.issue_cert(*LOOPBACK_NAMES, key_type=key_type)
    _write_pair(server, dir / "cert.pem", dir / "key.pem")
    combined = dir / "combined.pem"
    server.private_key_and_cert_chain_pem.write_to_path(str(combined))
    client = ca.issue_cert("alice@example.com", common_name="alice", key_type=key_type)
    _write_pair(client, dir / "client.pem", dir / "client.key")
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
    expired = ca.issue_cert(
        "bob@example.com", common_name="bob", key_type=key_type,
        not_before=past - datetime.timedelta(days=30), not_after=past,
    )
    _write_pair(expired, dir / "expired.pem", dir / "expired.key")
    foreign_ca = trustme.CA(key_type=key_type)
    foreign_ca.cert_pem.write_to_path(str(dir / "foreign-ca.pem"))
    foreign = foreign_ca.issue_cert("mallory@example.com", common_name="mallory", key_type=key_type)
    _write_pair(foreign, dir / "foreign.pem", dir / "foreign.key")
    return Pki(
        dir=dir, ca=ca, ca_file=dir / "ca.pem", cert_file=dir / "cert.pem",
        key_file=dir / "key.pem", combined_file=combined,
        client_cert=dir / "client.pem", client_key=dir / "client.key",
        expired_client_cert=dir / "expired.pem", expired_client_key=dir / "expired.key",
        foreign_client_cert=dir / "foreign.pem", foreign_client_key=dir / "foreign.key",
        foreign_ca_file=dir / "foreign-ca.pem",
    )


def reissue(pki: Pki, cert_path: Path, key_path: Path,
            key_type: trustme.KeyType = trustme.KeyType.ECDSA) -> bytes:
    """Write a new server certificate and key for loopback (same CA) to the given paths;
    returns the new leaf in DER, to compare with what a client is shown."""
    leaf = pki.ca.issue_cert(*LOOPBACK_NAMES, key_type=key_type)
    _write_pair(leaf, cert_path, key_path)
    return ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())


def write_key_forms(dir: Path) -> dict[str, tuple[Path, Path]]:
    """A self-signed loopback certificate with its key in each PEM form, keyed by form:
    "pkcs1" (RSA PRIVATE KEY), "pkcs8-rsa" and "pkcs8-ec" (PRIVATE KEY), "sec1"
    (EC PRIVATE KEY). Values are (certfile, keyfile); the CA is `dir/forms-ca.pem`."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(dir / "forms-ca.pem"))
    forms = {
        "pkcs1": (trustme.KeyType.RSA, serialization.PrivateFormat.TraditionalOpenSSL),
        "pkcs8-rsa": (trustme.KeyType.RSA, serialization.PrivateFormat.PKCS8),
        "pkcs8-ec": (trustme.KeyType.ECDSA, serialization.PrivateFormat.PKCS8),
        "sec1": (trustme.KeyType.ECDSA, serialization.PrivateFormat.TraditionalOpenSSL),
    }
    for name, (key_type, fmt) in forms.items():
        leaf = ca.issue_cert(*LOOPBACK_NAMES, key_type=key_type)
        cert_path, key_path = dir / f"{name}.pem", dir / f"{name}.key"
        _write_pair(leaf, cert_path, key_path)
        key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
        assert isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey))
        key_path.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, fmt, serialization.NoEncryption()))
    return {name: (dir / f"{name}.pem", dir / f"{name}.key") for name in forms}


def tls_connect(address, ctx: ssl.SSLContext, timeout: float = 10.0) -> ssl.SSLSocket:
    raw = socket.create_connection(address, timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    except BaseException:
        raw.close()
        raise


def tls_request(address, ctx: ssl.SSLContext, path: str = "/", timeout: float = 10.0,
                extra: bytes = b"") -> bytes:
    """One GET over a new TLS connection with `Connection: close`; the raw response."""
    with tls_connect(address, ctx, timeout) as s:
        s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Connection: close\r\n" + extra + b"\r\n")
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except ssl.SSLEOFError:
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)


def wait_tls_ready(server, ctx: ssl.SSLContext, timeout: float = 20.0, path: str = "/") -> None:
    """Wait until `server` (started with ready="port" or None) answers over TLS."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not server.alive():
            raise AssertionError("server exited; stderr:\n" + server.stderr_text()[-6000:])
        try:
            if tls_request(server.address, ctx, path, timeout=2.0).startswith(b"HTTP/1."):
                return
        except (OSError, ssl.SSLError) as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"no TLS answer within {timeout}s ({last}); stderr:\n"
                         + server.stderr_text()[-6000:])
