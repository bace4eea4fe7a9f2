"""TLS in Gunicorn's terms, for a server whose TLS is rustls.

Owns three translations between Python's ``ssl`` vocabulary and ferrocorn's Rust side:

* ``context_spec(config, hook)``: runs Gunicorn's ``ssl_context(config,
  default_ssl_context_factory)`` hook (or the factory alone) against ``RecordingContext``,
  an ``ssl.SSLContext`` that records what it is told instead of loading it, and returns a
  plain dict the Rust side builds its rustls ``ServerConfig`` from. Whatever rustls cannot
  do raises ``TranslationError``, whose message starts with ``ssl_context: `` and names the
  call or attribute, so start-up stops with a clear reason instead of serving something
  other than what was configured.
* ``TLSAppSocket``: what ``environ['gunicorn.socket']`` is under TLS. Gunicorn hands the
  app its ``ssl.SSLSocket``; this answers the same questions (``getpeercert``, ``cipher``,
  ``version``, ...) from what rustls negotiated, and refuses reads and writes, which would
  hand the app raw TLS records.
* ``asgi_tls_extension(...)``: the ASGI TLS extension's ``scope['extensions']['tls']``.

Must not: read the configured certificate, key or CA files (the Rust side reads them, so
its errors can name the setting that gave the path), touch sockets other than the
descriptor it is given, or leave ``ssl.SSLContext`` replaced after ``context_spec``
returns. The replacement is process-wide while the hook runs, so ``context_spec`` belongs
where no other thread makes SSL contexts (start-up and certificate renewal).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import functools
import os
import re
import reprlib
import socket
import ssl
import tempfile
import threading
from typing import Any, Callable, Iterable, Iterator, NoReturn, Optional, Sequence

import _ssl

__all__ = [
    "TranslationError",
    "RecordingContext",
    "context_spec",
    "TLSAppSocket",
    "asgi_tls_extension",
]

# The C base class: its descriptors are the ones that really store options, versions and
# the verify mode; RecordingContext reads and sets them directly.
_C = _ssl._SSLContext


# The real class, and the thread whose hook call is being recorded: while ssl.SSLContext
# names RecordingContext (during a translation), any other thread (an app thread, when a
# worker re-runs the hook for a renewed file) still gets real contexts from it.
_REAL_CONTEXT = ssl.SSLContext
_recording_thread: Optional[int] = None
# One translation at a time: two threads swapping and restoring ssl.SSLContext in an
# interleaved order could leave the recording class installed.
_swap_lock = threading.RLock()


def _c_get(context: ssl.SSLContext, name: str) -> Any:
    return _C.__dict__[name].__get__(context, _C)


def _c_set(context: ssl.SSLContext, name: str, value: Any) -> None:
    _C.__dict__[name].__set__(context, value)


# Python's certificate decoder (what getpeercert uses); it reads only from a file.
_test_decode_cert: Callable[[str], dict[str, Any]] = getattr(_ssl, "_test_decode_cert")

HOOK = "ssl_context hook"


class TranslationError(Exception):
    """What the ssl_context hook configured cannot be served by rustls. The message is
    complete (it starts with ``ssl_context: ``); the caller prints it without a traceback."""


# --- what Python's options mean to rustls ---------------------------------------------

def _opt(name: str) -> int:
    # Some OP_* constants are absent or 0 depending on the OpenSSL build.
    return int(getattr(ssl, name, 0))


# Options whose effect rustls either has anyway (no SSLv2/SSLv3/TLS 1.0/1.1, no
# compression, no renegotiation, fresh ephemeral keys, server cipher order, the TLS 1.3
# middlebox-compatible handshake, tolerance of a missing close_notify) or that become
# fields of the spec (no TLS 1.2, no TLS 1.3, no tickets).
_TRANSLATABLE_OPTION_NAMES = (
    "OP_NO_SSLv2", "OP_NO_SSLv3", "OP_NO_TLSv1", "OP_NO_TLSv1_1", "OP_NO_TLSv1_2",
    "OP_NO_TLSv1_3", "OP_NO_TICKET", "OP_NO_COMPRESSION", "OP_CIPHER_SERVER_PREFERENCE",
    "OP_SINGLE_DH_USE", "OP_SINGLE_ECDH_USE", "OP_NO_RENEGOTIATION",
    "OP_ENABLE_MIDDLEBOX_COMPAT", "OP_IGNORE_UNEXPECTED_EOF",
)
_TRANSLATABLE_OPTIONS = 0
for _name in _TRANSLATABLE_OPTION_NAMES:
    _TRANSLATABLE_OPTIONS |= _opt(_name)
del _name

_CRL_FLAGS = (
    ("VERIFY_CRL_CHECK_CHAIN", int(getattr(ssl, "VERIFY_CRL_CHECK_CHAIN", 0))),
    ("VERIFY_CRL_CHECK_LEAF", int(getattr(ssl, "VERIFY_CRL_CHECK_LEAF", 0))),
)

# ssl.TLSVersion's "no bound" values.
_NO_BOUND = (int(ssl.TLSVersion.MINIMUM_SUPPORTED), int(ssl.TLSVersion.MAXIMUM_SUPPORTED))
_TLS1_2 = int(ssl.TLSVersion.TLSv1_2)


@functools.lru_cache(maxsize=None)
def _default_options() -> int:
    """The options of a fresh ``ssl.create_default_context(Purpose.CLIENT_AUTH)``.

    That function makes ``SSLContext(PROTOCOL_TLS_SERVER)`` and only loads CAs (and a key
    log) into it, so the C context's constructor alone sets these; building it directly
    needs no patched name and opens no SSLKEYLOGFILE.
    """
    return int(_C(ssl.PROTOCOL_TLS_SERVER).options)


def _option_name(bit: int) -> str:
    for name in dir(ssl):
        if name.startswith("OP_") and name != "OP_ALL" and _opt(name) == bit:
            return name
    if bit & _opt("OP_ALL"):
        return "0x%x (part of OP_ALL)" % bit
    return "0x%x" % bit


def _bits(value: int) -> Iterator[int]:
    while value:
        low = value & -value
        yield low
        value ^= low


# --- recording -------------------------------------------------------------------------

# True while default_ssl_context_factory runs: what it loads is attributed to Gunicorn's
# settings (certfile, ca_certs, ciphers), everything else to the hook.
_IN_FACTORY: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "ferrocorn_tls_in_factory", default=False)


def _path(value: Any, what: str) -> str:
    """A path as given (not resolved), with Python's TypeError for a non-path."""
    try:
        return os.fsdecode(os.fspath(value))
    except TypeError:
        raise TypeError("%s should be a valid filesystem path" % what) from None


def _show(value: Any) -> str:
    return reprlib.repr(value)


class _DirectSetters(ssl.SSLContext):
    """Makes ssl.py's own setters work while ``ssl.SSLContext`` names RecordingContext.

    ssl.SSLContext's property setters store through ``super(SSLContext, SSLContext).X``,
    with ``SSLContext`` looked up as a module global. While a hook runs that name is
    RecordingContext, so the lookup starts after RecordingContext in its MRO -- here,
    where X is the C descriptor itself (as it would be after ssl.SSLContext). Without
    this class it would find ssl.SSLContext's property again and recurse forever, for
    any SSLContext a hook touched, including one made before it ran.
    """

    minimum_version = _C.__dict__["minimum_version"]
    maximum_version = _C.__dict__["maximum_version"]
    options = _C.__dict__["options"]
    verify_flags = _C.__dict__["verify_flags"]
    verify_mode = _C.__dict__["verify_mode"]
    _msg_callback = _C.__dict__["_msg_callback"]


class RecordingContext(_DirectSetters):
    """An ``ssl.SSLContext`` that records certificate, CA, cipher and ALPN settings instead
    of loading them, and refuses what rustls cannot do.

    Options, versions and the verify mode stay in the real OpenSSL context (its setters
    validate them as Python would) and are read back when the spec is made.
    """

    def __new__(cls, protocol: Any = None, *args: Any, **kwargs: Any) -> Any:
        if (cls is RecordingContext and _recording_thread is not None
                and threading.get_ident() != _recording_thread):
            return _REAL_CONTEXT(protocol, *args, **kwargs)
        return super().__new__(cls, protocol, *args, **kwargs)

    def __init__(self, protocol: Any = None, *args: Any, **kwargs: Any) -> None:
        # ssl.SSLContext.__new__ consumed the protocol; there is no base __init__ to call.
        # (certfile, keyfile, origin) of the last load_cert_chain: OpenSSL keeps one chain
        # per key type, ferrocorn serves one chain, and the last call wins.
        self._fc_chain: Optional[tuple[str, Optional[str], str]] = None
        # (origin, kind, value): origin "ca_certs", "system" or "hook"; kind "file",
        # "dir", "pem", "der" or "none" (load_default_certs that found nothing).
        self._fc_cas: list[tuple[str, str, Any]] = []
        self._fc_ciphers: Optional[tuple[str, str]] = None
        self._fc_alpn: Optional[list[str]] = None
        self._fc_keylog: Optional[str] = None
        self._fc_post_handshake_auth = False
        self._fc_sni_callback: Optional[Callable[..., Any]] = None
        self._fc_msg_callback: Optional[Callable[..., Any]] = None
        # Untranslatable calls, kept as well as raised: a hook that catches the error and
        # carries on still fails at the end, since Gunicorn would have applied the call.
        self._fc_problems: list[str] = []

    def _fc_refuse(self, message: str) -> NoReturn:
        self._fc_problems.append(message)
        raise TranslationError(message)

    # -- certificates and keys --

    def load_cert_chain(self, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        cert = _path(certfile, "certfile")
        key = None if keyfile is None else _path(keyfile, "keyfile")
        if password is not None:
            self._fc_refuse(
                "ssl_context: load_cert_chain(%r, %r, password=...) cannot be translated to "
                "rustls (ferrocorn reads the key file itself and does not decrypt private "
                "keys); store the key unencrypted, readable only by the server's user"
                % (cert, key))
        origin = "certfile" if _IN_FACTORY.get() else HOOK + " (load_cert_chain)"
        self._fc_chain = (cert, key, origin)

    def load_verify_locations(self, cafile: Any = None, capath: Any = None,
                              cadata: Any = None) -> None:
        if cafile is None and capath is None and cadata is None:
            raise TypeError("cafile, capath and cadata cannot be all omitted")
        origin = "ca_certs" if _IN_FACTORY.get() else "hook"
        found: list[tuple[str, str, Any]] = []
        if cafile is not None:
            found.append((origin, "file", _path(cafile, "cafile")))
        if capath is not None:
            found.append((origin, "dir", _path(capath, "capath")))
        if cadata is not None:
            if isinstance(cadata, str):
                try:
                    pem = cadata.encode("ascii")
                except UnicodeEncodeError:
                    raise TypeError(
                        "cadata should be an ASCII string or a bytes-like object") from None
                kind, data = "pem", pem
            else:
                try:
                    data = bytes(memoryview(cadata))
                except TypeError:
                    raise TypeError(
                        "cadata should be an ASCII string or a bytes-like object") from None
                kind = "der"
            if not data:
                raise ValueError("Empty certificate data")
            found.append((origin, kind, data))
        self._fc_cas.extend(found)

    def load_default_certs(self, purpose: Any = ssl.Purpose.SERVER_AUTH) -> None:
        if not isinstance(purpose, ssl._ASN1Object):
            raise TypeError(purpose)
        self.set_default_verify_paths()

    def set_default_verify_paths(self) -> None:
        # What OpenSSL would load: its default CA file and directory (or $SSL_CERT_FILE /
        # $SSL_CERT_DIR), each only if it exists -- get_default_verify_paths checks that.
        paths = ssl.get_default_verify_paths()
        found = 0
        if paths.cafile:
            self._fc_cas.append(("system", "file", paths.cafile))
            found += 1
        if paths.capath:
            self._fc_cas.append(("system", "dir", paths.capath))
            found += 1
        if not found:
            self._fc_cas.append(("system", "none", None))

    # -- ciphers and ALPN --

    def set_ciphers(self, cipherlist: str) -> None:
        if not isinstance(cipherlist, str):
            raise TypeError("set_ciphers() argument must be str, not %s"
                            % type(cipherlist).__name__)
        # Recorded as given: the Rust side maps OpenSSL cipher strings onto rustls suites
        # and names `ciphers` or this call when one cannot be served.
        origin = "ciphers" if _IN_FACTORY.get() else HOOK + " (set_ciphers)"
        self._fc_ciphers = (cipherlist, origin)

    def set_alpn_protocols(self, alpn_protocols: Iterable[str]) -> None:
        protocols = list(alpn_protocols)
        # Python's own checks (ASCII str, 1 to 255 bytes each); harmless on this context.
        super().set_alpn_protocols(protocols)
        self._fc_alpn = protocols

    # -- calls rustls has no counterpart for --

    def set_ecdh_curve(self, name: Any) -> NoReturn:
        self._fc_refuse(
            "ssl_context: set_ecdh_curve(%s) cannot be translated to rustls (its key "
            "exchange groups are X25519, secp256r1 and secp384r1, always on)" % _show(name))

    def load_dh_params(self, path: Any) -> NoReturn:
        self._fc_refuse(
            "ssl_context: load_dh_params(%s) cannot be translated to rustls (it has no "
            "finite-field Diffie-Hellman cipher suites; key exchange is ECDHE over X25519, "
            "secp256r1 and secp384r1)" % _show(path))

    def set_npn_protocols(self, npn_protocols: Any) -> NoReturn:
        self._fc_refuse(
            "ssl_context: set_npn_protocols(%s) cannot be translated to rustls (it has no "
            "NPN, which ALPN replaced; use set_alpn_protocols)" % _show(npn_protocols))

    def set_servername_callback(self, server_name_callback: Any) -> None:
        if server_name_callback is None:
            self._fc_sni_callback = None
            return
        self._fc_refuse(
            "ssl_context: set_servername_callback(%s) cannot be translated to rustls "
            "(ferrocorn serves the one certificate chain the context loads and cannot call "
            "back into Python during a handshake)" % _show(server_name_callback))

    # -- attributes: recorded or left to OpenSSL, judged when the spec is made --

    @property
    def sni_callback(self) -> Optional[Callable[..., Any]]:
        return self._fc_sni_callback

    @sni_callback.setter
    def sni_callback(self, value: Optional[Callable[..., Any]]) -> None:
        if value is not None and not callable(value):
            raise TypeError("not a callable object")
        self._fc_sni_callback = value

    @property  # type: ignore[override]
    def keylog_filename(self) -> Optional[str]:
        return self._fc_keylog

    @keylog_filename.setter
    def keylog_filename(self, value: Any) -> None:
        # Recorded, not set: setting it would open (and create) the file.
        self._fc_keylog = None if value is None else _path(value, "keylog_filename")

    @property
    def post_handshake_auth(self) -> bool:
        return self._fc_post_handshake_auth

    @post_handshake_auth.setter
    def post_handshake_auth(self, value: Any) -> None:
        self._fc_post_handshake_auth = bool(value)

    @property
    def _msg_callback(self) -> Optional[Callable[..., Any]]:
        return self._fc_msg_callback

    @_msg_callback.setter
    def _msg_callback(self, callback: Optional[Callable[..., Any]]) -> None:
        if callback is not None and not callable(callback):
            raise TypeError(f"{callback} is not callable.")
        self._fc_msg_callback = callback

    @property  # type: ignore[override]
    def minimum_version(self) -> ssl.TLSVersion:
        return ssl.TLSVersion(_c_get(self, "minimum_version"))

    @minimum_version.setter
    def minimum_version(self, value: ssl.TLSVersion) -> None:
        # As ssl.SSLContext does: asking for SSLv3 also lifts OP_NO_SSLv3.
        if value == ssl.TLSVersion.SSLv3:
            self.options &= ~ssl.Options.OP_NO_SSLv3
        _c_set(self, "minimum_version", value)

    @property  # type: ignore[override]
    def maximum_version(self) -> ssl.TLSVersion:
        return ssl.TLSVersion(_c_get(self, "maximum_version"))

    @maximum_version.setter
    def maximum_version(self, value: ssl.TLSVersion) -> None:
        _c_set(self, "maximum_version", value)

    @property
    def options(self) -> ssl.Options:
        return ssl.Options(_c_get(self, "options"))

    @options.setter
    def options(self, value: int) -> None:
        _c_set(self, "options", value)

    @property
    def verify_flags(self) -> ssl.VerifyFlags:
        return ssl.VerifyFlags(_c_get(self, "verify_flags"))

    @verify_flags.setter
    def verify_flags(self, value: int) -> None:
        _c_set(self, "verify_flags", value)

    @property
    def verify_mode(self) -> ssl.VerifyMode:
        return ssl.VerifyMode(_c_get(self, "verify_mode"))

    @verify_mode.setter
    def verify_mode(self, value: int) -> None:
        _c_set(self, "verify_mode", value)

    # -- the result --

    def _fc_check(self) -> None:
        """Raise for what was configured and cannot be served, first problem first."""
        if self._fc_problems:
            raise TranslationError(self._fc_problems[0])
        protocol = _c_get(self, "protocol")
        if protocol == ssl.PROTOCOL_TLS_CLIENT:
            raise TranslationError(
                "ssl_context: the context was made with PROTOCOL_TLS_CLIENT, a client-side "
                "protocol (ssl.create_default_context() makes one unless given "
                "ssl.Purpose.CLIENT_AUTH); a server needs ssl.PROTOCOL_TLS_SERVER or "
                "ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)")
        for old in ("PROTOCOL_TLSv1", "PROTOCOL_TLSv1_1", "PROTOCOL_SSLv3"):
            if hasattr(ssl, old) and protocol == getattr(ssl, old):
                raise TranslationError(
                    "ssl_context: the context was made with %s, which cannot be translated "
                    "to rustls (it speaks TLS 1.2 and 1.3 only)" % old)
        if self._fc_sni_callback is not None:
            raise TranslationError(
                "ssl_context: sni_callback = %s cannot be translated to rustls (ferrocorn "
                "serves the one certificate chain the context loads and cannot call back "
                "into Python during a handshake)" % _show(self._fc_sni_callback))
        if self._fc_msg_callback is not None:
            raise TranslationError(
                "ssl_context: _msg_callback = %s cannot be translated to rustls (it does "
                "not expose handshake messages)" % _show(self._fc_msg_callback))
        if self._fc_keylog is not None:
            hint = ""
            if self._fc_keylog == os.environ.get("SSLKEYLOGFILE"):
                hint = ("; ssl.create_default_context() set it from the SSLKEYLOGFILE "
                        "environment variable, so unset that to start")
            raise TranslationError(
                "ssl_context: keylog_filename = %r cannot be translated to rustls "
                "(ferrocorn does not write TLS key logs)%s" % (self._fc_keylog, hint))
        if self._fc_post_handshake_auth:
            raise TranslationError(
                "ssl_context: post_handshake_auth = True cannot be translated to rustls (it "
                "has no TLS 1.3 post-handshake client authentication; set cert_reqs to "
                "request client certificates during the handshake)")
        flags = int(_c_get(self, "verify_flags"))
        for name, bit in _CRL_FLAGS:
            if bit and flags & bit == bit:
                raise TranslationError(
                    "ssl_context: verify_flags with %s cannot be translated to rustls "
                    "(ferrocorn does not check certificate revocation lists)" % name)
        options = int(_c_get(self, "options"))
        default = _default_options()
        untranslatable = (options ^ default) & ~_TRANSLATABLE_OPTIONS
        if untranslatable:
            changes = []
            for bit in _bits(untranslatable):
                verb = "sets" if options & bit else "clears"
                changes.append("%s %s" % (verb, _option_name(bit)))
            raise TranslationError(
                "ssl_context: options %s, which cannot be translated to rustls (it has no "
                "such switch); only %s may differ from "
                "ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)"
                % (", ".join(changes),
                   ", ".join(n for n in _TRANSLATABLE_OPTION_NAMES if hasattr(ssl, n))))
        if self._fc_chain is None:
            raise TranslationError(
                "ssl_context: the context has no certificate chain "
                "(load_cert_chain was never called)")

    def _fc_spec(self) -> dict[str, Any]:
        self._fc_check()
        assert self._fc_chain is not None
        certfile, keyfile, chain_origin = self._fc_chain

        ca_files: list[str] = []
        ca_dirs: list[str] = []
        ca_pem: list[bytes] = []
        ca_der: list[bytes] = []
        for _origin, kind, value in self._fc_cas:
            if kind == "file" and value not in ca_files:
                ca_files.append(value)
            elif kind == "dir" and value not in ca_dirs:
                ca_dirs.append(value)
            elif kind == "pem":
                ca_pem.append(value)
            elif kind == "der":
                ca_der.append(value)
        origins = {origin for origin, _kind, _value in self._fc_cas}
        if origins <= {"ca_certs"}:
            # Also when nothing was loaded: ca_certs is the setting that would fix that.
            ca_origin = "ca_certs"
        elif origins == {"system"}:
            ca_origin = "system CA certificates"
        else:
            ca_origin = HOOK + " (load_verify_locations)"

        ciphers, ciphers_origin = self._fc_ciphers or (None, "ciphers")

        protocol = _c_get(self, "protocol")
        min_version: Optional[int] = int(_c_get(self, "minimum_version"))
        max_version: Optional[int] = int(_c_get(self, "maximum_version"))
        if hasattr(ssl, "PROTOCOL_TLSv1_2") and protocol == ssl.PROTOCOL_TLSv1_2:
            # The deprecated version-specific method: TLS 1.2 and nothing else (its
            # minimum/maximum cannot be set and read as "no bound").
            min_version = max_version = _TLS1_2
        if min_version in _NO_BOUND:
            min_version = None
        if max_version in _NO_BOUND:
            max_version = None

        options = int(_c_get(self, "options"))
        watch = {certfile}
        if keyfile is not None:
            watch.add(keyfile)
        watch.update(ca_files)
        return {
            "certfile": certfile,
            "keyfile": keyfile,
            "chain_origin": chain_origin,
            "ca_files": ca_files,
            "ca_dirs": ca_dirs,
            "ca_pem": ca_pem,
            "ca_der": ca_der,
            "ca_origin": ca_origin,
            "verify_mode": int(_c_get(self, "verify_mode")),
            "ciphers": ciphers,
            "ciphers_origin": ciphers_origin,
            "min_version": min_version,
            "max_version": max_version,
            "alpn": None if self._fc_alpn is None else list(self._fc_alpn),
            "no_tls12": bool(options & _opt("OP_NO_TLSv1_2")),
            "no_tls13": bool(options & _opt("OP_NO_TLSv1_3")),
            # num_tickets = 0 asks OpenSSL for no TLS 1.3 tickets: the same wish.
            "no_ticket": bool(options & _opt("OP_NO_TICKET"))
            or _c_get(self, "num_tickets") == 0,
            "watch": sorted(watch),
        }


@contextlib.contextmanager
def _ssl_context_replaced() -> Iterator[None]:
    """``ssl.SSLContext`` is RecordingContext inside; nests (the factory uses it too)."""
    global _recording_thread
    with _swap_lock:
        saved, saved_thread = ssl.SSLContext, _recording_thread
        _recording_thread = threading.get_ident()
        ssl.SSLContext = RecordingContext  # type: ignore[misc]
        try:
            yield
        finally:
            ssl.SSLContext = saved  # type: ignore[misc]
            _recording_thread = saved_thread


def _factory(config: Any) -> Callable[[], RecordingContext]:
    def default_ssl_context_factory() -> RecordingContext:
        """Gunicorn 27's factory on a RecordingContext: create_default_context for
        CLIENT_AUTH with ca_certs, the certfile/keyfile chain, cert_reqs and ciphers."""
        token = _IN_FACTORY.set(True)
        try:
            with _ssl_context_replaced():
                # The real function, so its choices (PROTOCOL_TLS_SERVER; CAs only when
                # ca_certs is set, as a server context starts with CERT_NONE) are Python's.
                context = ssl.create_default_context(
                    ssl.Purpose.CLIENT_AUTH, cafile=getattr(config, "ca_certs", None))
            assert isinstance(context, RecordingContext)
            context.load_cert_chain(certfile=config.certfile,
                                    keyfile=getattr(config, "keyfile", None))
            context.verify_mode = getattr(config, "cert_reqs", ssl.CERT_NONE)
            ciphers = getattr(config, "ciphers", None)
            if ciphers:
                context.set_ciphers(ciphers)
            # No ALPN: Gunicorn offers h2 only with HTTP/2 enabled, which ferrocorn lacks.
            return context
        finally:
            _IN_FACTORY.reset(token)

    return default_ssl_context_factory


def context_spec(config: Any, hook: Optional[Callable[..., Any]]) -> dict[str, Any]:
    """Run ``hook(config, default_ssl_context_factory)`` (or the factory when hook is None)
    and describe the context it returns as a dict for the Rust side.

    Raises TranslationError for what rustls cannot serve; exceptions of the hook itself
    propagate unchanged.
    """
    factory = _factory(config)
    with _ssl_context_replaced():
        context = factory() if hook is None else hook(config, factory)
    if not isinstance(context, RecordingContext):
        if isinstance(context, ssl.SSLContext):
            what = ("an ssl.SSLContext made outside the hook (before it ran, or through a "
                    "name bound before it ran such as `from ssl import SSLContext`), whose "
                    "settings cannot be read back")
        elif context is None:
            what = "None"
        else:
            what = "%s (a %s)" % (_show(context), type(context).__qualname__)
        raise TranslationError(
            "ssl_context: the hook returned %s; it must return the context from "
            "default_ssl_context_factory() or an ssl.SSLContext it made itself" % what)
    return context._fc_spec()


# --- decoded certificates --------------------------------------------------------------

def _decode_cert(der: bytes) -> dict[str, Any]:
    """The dict Python's ``getpeercert()`` gives for this certificate (the same decoder,
    which only reads files, so through a temporary PEM file deleted at once)."""
    fd, path = tempfile.mkstemp(prefix="ferrocorn-cert-", suffix=".pem")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(ssl.DER_cert_to_PEM_cert(bytes(der)))
        return _test_decode_cert(path)
    finally:
        os.unlink(path)


_EOPNOTSUPP_MESSAGE = (
    "%s() on environ['gunicorn.socket']: TLS is handled by ferrocorn, so this socket "
    "carries encrypted TLS records; read wsgi.input and write the response through "
    "start_response and the returned body instead")


def _not_supported(name: str) -> Callable[..., NoReturn]:
    def refuse(self: socket.socket, *args: Any, **kwargs: Any) -> NoReturn:
        raise OSError(errno.EOPNOTSUPP, _EOPNOTSUPP_MESSAGE % name)

    refuse.__name__ = refuse.__qualname__ = name
    return refuse


class TLSAppSocket(socket.socket):
    """``environ['gunicorn.socket']`` on a TLS connection: the client connection's socket
    (a dup of its descriptor) that answers like Gunicorn's server-side ``ssl.SSLSocket``.

    ferrocorn makes it with ``TLSAppSocket(family=..., type=..., proto=0, fileno=fd)`` and
    then calls ``_ferrocorn_set_tls`` with what the handshake gave.
    """

    server_side = True
    server_hostname = None
    _fc_done = False
    _fc_peer_chain: tuple[bytes, ...] = ()
    _fc_cipher: Optional[tuple[str, str, int]] = None
    _fc_version: Optional[str] = None
    _fc_alpn: Optional[str] = None
    _fc_verify_mode = int(ssl.CERT_NONE)
    _fc_decoded: Optional[dict[str, Any]] = None

    def _ferrocorn_set_tls(self, peer_chain: Sequence[bytes],
                           cipher: Optional[Sequence[Any]], version: Optional[str],
                           alpn: Optional[str], verify_mode: int) -> None:
        self._fc_peer_chain = tuple(bytes(c) for c in peer_chain)
        self._fc_cipher = None if cipher is None else (
            str(cipher[0]), str(cipher[1]), int(cipher[2]))
        self._fc_version = version
        self._fc_alpn = alpn
        self._fc_verify_mode = int(verify_mode)
        self._fc_decoded = None
        self._fc_done = True

    def getpeercert(self, binary_form: bool = False) -> Any:
        if not self._fc_done:
            raise ValueError("handshake not done yet")
        if not self._fc_peer_chain:
            return None
        leaf = self._fc_peer_chain[0]
        if binary_form:
            return leaf
        if self._fc_verify_mode == ssl.CERT_NONE:
            # Python's rule: a certificate that was not verified is not decoded.
            return {}
        if self._fc_decoded is None:
            self._fc_decoded = _decode_cert(leaf)
        return self._fc_decoded

    def cipher(self) -> Optional[tuple[str, str, int]]:
        return self._fc_cipher

    def version(self) -> Optional[str]:
        return self._fc_version

    def selected_alpn_protocol(self) -> Optional[str]:
        return self._fc_alpn

    def selected_npn_protocol(self) -> None:
        return None

    def compression(self) -> None:
        return None

    def shared_ciphers(self) -> None:
        return None

    recv = _not_supported("recv")
    recv_into = _not_supported("recv_into")
    recvfrom = _not_supported("recvfrom")
    recvfrom_into = _not_supported("recvfrom_into")
    recvmsg = _not_supported("recvmsg")
    recvmsg_into = _not_supported("recvmsg_into")
    send = _not_supported("send")
    sendall = _not_supported("sendall")
    sendto = _not_supported("sendto")
    sendmsg = _not_supported("sendmsg")
    sendfile = _not_supported("sendfile")
    makefile = _not_supported("makefile")


# --- the ASGI TLS extension ------------------------------------------------------------

# OpenSSL's long names (what the decoder gives) to the names RFC 4514 section 3 defines.
_RFC4514_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}
_DESCR = re.compile(r"[A-Za-z][A-Za-z0-9-]*\Z")
_NUMERICOID = re.compile(r"[0-9]+(\.[0-9]+)*\Z")


def _rfc4514_type(name: str) -> str:
    short = _RFC4514_NAMES.get(name)
    if short is not None:
        return short
    if _DESCR.match(name) or _NUMERICOID.match(name):
        return name
    # A long name RFC 4514 would not parse as a descriptor: its dotted OID instead.
    try:
        return _ssl.txt2obj(name, name=True)[3]
    except ValueError:
        return name


def _rfc4514_value(value: str) -> str:
    out = []
    last = len(value) - 1
    for i, ch in enumerate(value):
        if ch in '"+,;<>\\':
            out.append("\\" + ch)
        elif ch == "\0":
            out.append("\\00")
        elif (i == 0 and ch in " #") or (i == last and ch == " "):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _rfc4514_name(subject: Sequence[Sequence[tuple[str, str]]]) -> str:
    """A decoded subject (RDNs in certificate order) as RFC 4514 writes it: the last RDN
    first, attributes of one RDN joined by ``+``."""
    return ",".join(
        "+".join("%s=%s" % (_rfc4514_type(t), _rfc4514_value(v)) for t, v in rdn)
        for rdn in reversed(subject))


@functools.lru_cache(maxsize=256)
def _client_cert_name(der: bytes) -> str:
    # Cached: a client usually presents the same certificate on each of its connections.
    return _rfc4514_name(_decode_cert(der).get("subject", ()))


def asgi_tls_extension(server_cert_der: Optional[bytes], peer_chain: Sequence[bytes],
                       version_code: Optional[int], cipher_code: Optional[int]) -> dict[str, Any]:
    """``scope['extensions']['tls']`` of the ASGI TLS extension (version 0.2)."""
    chain = [bytes(c) for c in peer_chain]
    return {
        "server_cert": None if server_cert_der is None
        else ssl.DER_cert_to_PEM_cert(bytes(server_cert_der)),
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(c) for c in chain],
        "client_cert_name": _client_cert_name(chain[0]) if chain else None,
        # ferrocorn refuses a connection whose client certificate fails verification.
        "client_cert_error": None,
        "tls_version": version_code,
        "cipher_suite": cipher_code,
    }
