"""Certificates renewed on disk, HUP and TERM, all under a TLS load that must lose nothing.

`TlsLoad` (below) is the TLS counterpart of tests/loadgen.py: threads of HTTPS requests
through `http.client`, half of them on a new connection (`Connection: close`, so new
handshakes happen all the time), the rest kept alive. Every attempt is classified:

- ``ok``: a complete 200 from the app;
- ``refused``: ECONNREFUSED at connect time (nothing listening);
- ``failed``: anything else after the TCP connect: a failed handshake, a reset, an EOF
  or timeout in the middle of a response, another status.

A kept-alive connection that the server closed while idle (the request then meets EOF or
a reset before a single response byte) is not counted: like any HTTP client, the load
retries the request on a new connection, and counts those retries under ``stale``.

- ferrocorn watches --certfile/--keyfile: a renewed pair (replaced, or rewritten in
  place) is served within about 2 s; a bad file (garbage, or a certificate that does not
  match the key) leaves the previous certificate in service, with one ERROR;
- HUP serves a renewed pair at once, in both servers (Gunicorn's new workers, and its sync
  and gthread workers on every connection anyway, build new contexts);
- TERM and HUP under a TLS load with keep-alive lose no request (as tests/test_lossless.py
  for plain HTTP).
"""

from __future__ import annotations

import http.client
import os
import random
import shutil
import signal
import ssl
import threading
import time

import pytest

from conftest import pid_alive, wait_until
from loadgen import FAILED, OK, REFUSED, Attempt, LoadGen
from tls_support import make_pki, reissue, tls_connect, wait_tls_ready

pytestmark = pytest.mark.timeout(90)

SYNC = pytest.param(("-k", "sync"), id="sync")
GTHREAD = pytest.param(("-k", "gthread", "--threads", "4"), id="gthread")
ASGI = pytest.param(("-k", "asgi"), id="asgi")
KINDS = pytest.mark.parametrize("kind", [SYNC, GTHREAD, ASGI])

RENEWED_LOG = "TLS certificate reloaded"
BAD_LOG = "still serving the previous certificate"


class TlsLoad(LoadGen):
    """Threads of HTTPS requests; see the module docstring. Stops by itself after `limit`.
    Results, marks and stopping are LoadGen's; only the requests differ."""

    def __init__(self, address, ctx: ssl.SSLContext, path: str = "/", threads: int = 6,
                 limit: float = 60.0, timeout: float = 10.0, fresh: float = 0.5):
        # Set before LoadGen starts the threads, which read them.
        self.ctx, self.path, self.fresh = ctx, path, fresh
        self.stale = 0
        super().__init__(address, path=path, threads=threads, limit=limit, timeout=timeout)

    def _loop(self):
        rng = random.Random(threading.current_thread().name)
        conn = None
        while not self._stop.is_set() and time.monotonic() < self.deadline:
            started = time.monotonic()
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPSConnection(*self.address, context=self.ctx,
                                                   timeout=self.timeout)
                try:
                    conn.connect()
                except ConnectionRefusedError:
                    conn = None
                    self._record(started, REFUSED, "refused")
                    continue
                except (OSError, ssl.SSLError) as exc:
                    conn.close()
                    conn = None
                    self._record(started, FAILED, "connect/handshake: %r" % exc)
                    continue
            closing = rng.random() < self.fresh
            stage = "send"
            try:
                conn.request("GET", self.path, headers={"Connection": "close"} if closing else {})
                stage = "head"
                response = conn.getresponse()
                stage = "body"
                body = response.read()
            except Exception as exc:  # noqa: BLE001 - every way a request can fail
                conn.close()
                conn = None
                if reused and stage != "body" and isinstance(
                        exc, (ConnectionError, ssl.SSLEOFError, ssl.SSLZeroReturnError)):
                    with self._lock:
                        self.stale += 1
                    continue
                self._record(started, FAILED, "%s in %s: %r" % (
                    "reused" if reused else "new", stage, exc))
                continue
            pid = response.getheader("x-worker-pid")
            if response.status != 200 or not body.startswith(b"hello pid "):
                self._record(started, FAILED, "status %d %r" % (response.status, body[:60]))
            else:
                self._record(started, OK, "ok", int(pid) if pid else None)
            if closing or response.will_close:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def _record(self, started, outcome, kind, pid=None):
        attempt = Attempt(started=started, finished=time.monotonic(), outcome=outcome,
                          kind=kind, worker_pid=pid)
        with self._lock:
            self._attempts.append(attempt)
        if outcome != OK:
            time.sleep(0.02)  # nothing to talk to, or something broke: do not spin

    def wait(self, predicate, timeout: float, what: str):
        """`wait_until`, failing with the load's report as it is at the time of failure."""
        try:
            return wait_until(predicate, timeout=timeout, what=what)
        except AssertionError as exc:
            raise AssertionError("%s\n%s" % (exc, self.report())) from None

    def report(self, limit: int = 8) -> str:
        return "tls %s\n%d stale keep-alive retries" % (super().report(limit), self.stale)


# ---------------------------------------------------------------------------
# Helpers.


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_serve(serve, pki, tmp_path):
    """``tls_serve(kind, *args)``: a TLS server of worker `kind` whose certificate and key
    are the test's own copies, ``server.cert`` and ``server.key``."""

    def start(kind, *args):
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        shutil.copy(pki.cert_file, cert)
        shutil.copy(pki.key_file, key)
        app = "tls_robust_app:asgi_app" if "asgi" in kind else "tls_robust_app:app"
        server = serve(*kind, "--certfile", cert, "--keyfile", key, *args, app, ready="port")
        wait_tls_ready(server, pki.client_context())
        server.cert, server.key = cert, key
        return server

    return start


def presented(server, pki) -> bytes:
    """The leaf certificate (DER) a new connection is shown."""
    with tls_connect(server.address, pki.client_context(), timeout=5) as tls:
        return tls.getpeercert(binary_form=True)


def wait_presented(server, pki, der: bytes, load: TlsLoad, timeout: float = 10.0):
    load.wait(lambda: presented(server, pki) == der, timeout,
              "new connections to be shown the new certificate")


def renew(pki, server, how: str) -> bytes:
    """A new certificate and key for `server`'s files: written to temporary files and
    renamed over them ("replace"), or rewritten in place ("in-place"). Returns its DER."""
    if how == "in-place":
        return reissue(pki, server.cert, server.key)
    cert_tmp, key_tmp = server.cert.with_suffix(".new"), server.key.with_suffix(".new")
    der = reissue(pki, cert_tmp, key_tmp)
    os.replace(key_tmp, server.key)
    os.replace(cert_tmp, server.cert)
    return der


def logged(server, level: str, text: str) -> list:
    return [m for _, lvl, m in server.log_lines() if lvl == level and text in m]


# ---------------------------------------------------------------------------
# 4. Renewed on disk.


def both_workers_loaded(load) -> None:
    """Wait until the load runs and both workers answered it: both booted with the first
    pair (a later one would read the files anew)."""
    load.wait_ok(20)
    load.wait(lambda: len(load.worker_pids()) == 2, 15, "both workers to answer")


@pytest.mark.ferrocorn_only
@KINDS
@pytest.mark.parametrize("how", ["replace", "in-place"])
def test_a_renewed_certificate_is_served_without_a_restart(tls_serve, pki, kind, how):
    server = tls_serve(kind, "-w", "2")
    first = presented(server, pki)
    load = TlsLoad(server.address, pki.client_context(), threads=6)
    try:
        both_workers_loaded(load)
        for round in range(2):
            der = renew(pki, server, how)
            assert der != first
            load.mark("renewed %d" % round)
            wait_presented(server, pki, der, load)
            load.wait_ok(20, what="load after renewal %d" % round)
        assert len(logged(server, "INFO", RENEWED_LOG)) >= 2, load.report()
    finally:
        load.stop()
    load.assert_lossless()


# ---------------------------------------------------------------------------
# 5. A bad renewed file.


@pytest.mark.ferrocorn_only
@KINDS
@pytest.mark.parametrize("bad", ["garbage", "mismatched"])
def test_a_bad_renewed_file_keeps_the_previous_certificate(tls_serve, pki, tmp_path, kind, bad):
    server = tls_serve(kind, "-w", "2")
    first = presented(server, pki)
    load = TlsLoad(server.address, pki.client_context(), threads=6)
    try:
        both_workers_loaded(load)
        if bad == "garbage":
            (tmp_path / "garbage.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nnot one\n")
            os.replace(tmp_path / "garbage.pem", server.cert)
        else:  # a good certificate, but not for key.pem
            reissue(pki, tmp_path / "other.pem", tmp_path / "other.key")
            os.replace(tmp_path / "other.pem", server.cert)
        load.mark("bad " + bad)
        load.wait(lambda: logged(server, "ERROR", BAD_LOG), 10, "the ERROR about the bad file")
        # For 4 s (four of the server's checks) new connections keep the old certificate,
        # and the ERROR is not repeated.
        end = time.monotonic() + 4
        while time.monotonic() < end:
            assert presented(server, pki) == first, load.report()
            time.sleep(0.1)
        assert len(logged(server, "ERROR", BAD_LOG)) == 1, logged(server, "ERROR", BAD_LOG)
        # A good pair is taken up.
        der = renew(pki, server, "replace")
        load.mark("good pair")
        wait_presented(server, pki, der, load)
        load.wait(lambda: logged(server, "INFO", RENEWED_LOG), 5, "the INFO line about the reload")
        load.wait_ok(20)
    finally:
        load.stop()
    load.assert_lossless()


# ---------------------------------------------------------------------------
# 6. HUP.


@KINDS
def test_hup_serves_a_renewed_certificate(tls_serve, pki, kind):
    server = tls_serve(kind, "-w", "2")
    first = presented(server, pki)
    der = renew(pki, server, "replace")
    assert der != first
    server.send_signal(signal.SIGHUP)
    # Within the turnover, every new connection is shown the new certificate (ten in a row:
    # the old workers, which may answer until they are gone, are gone).
    wait_until(lambda: all(presented(server, pki) == der for _ in range(10)), timeout=15,
               what="ten new connections in a row to be shown the new certificate")


# ---------------------------------------------------------------------------
# 7. TERM and HUP under a TLS load.


# Gunicorn 27 loses requests here with sync and gthread: connections in the backlog at
# the TERM are reset when its last worker exits (Gunicorn #2409), as over plain HTTP
# (tests/test_lossless.py). Its asgi worker passes.
@pytest.mark.parametrize("kind", [
    pytest.param(("-k", "sync"), id="sync", marks=pytest.mark.ferrocorn_only),
    pytest.param(("-k", "gthread", "--threads", "4"), id="gthread",
                 marks=pytest.mark.ferrocorn_only),
    ASGI,
])
def test_term_under_tls_load_loses_no_request(tls_serve, pki, kind):
    server = tls_serve(kind, "-w", "2", "--graceful-timeout", "10")
    # More clients than the workers serve at once: some wait in the backlog.
    load = TlsLoad(server.address, pki.client_context(), "/?s=0.3",
                   threads=6 if "sync" in kind else 12, limit=40)
    try:
        load.wait_ok(6)
        term = load.mark("TERM")
        server.send_signal(signal.SIGTERM)
        code = server.wait_exit(15)
        exited = load.mark("master exit")
        load.wait(lambda: load.count(REFUSED, since=exited) >= 2, 5,
                  "connects to be refused after the exit")
    finally:
        load.stop()
    report = load.report()
    assert code == 0, report
    assert load.count(FAILED) == 0, report
    assert not [a for a in load.attempts(REFUSED) if a.finished < term], report
    # Requests were in flight at the TERM, and they completed.
    assert len([a for a in load.attempts(OK) if a.started < term < a.finished]) >= 2, report


@KINDS
def test_hup_under_tls_load_loses_no_request(tls_serve, pki, kind):
    server = tls_serve(kind, "-w", "2", "--graceful-timeout", "10")
    load = TlsLoad(server.address, pki.client_context(), "/?s=0.02", threads=6)
    try:
        load.wait_ok(20)
        old = load.worker_pids()
        load.mark("HUP")
        server.send_signal(signal.SIGHUP)
        load.wait(lambda: not any(pid_alive(pid) for pid in old), 15, "the old workers to exit")
        settled = load.mark("old workers gone")
        load.wait(lambda: len(load.worker_pids(since=settled)) == 2, 15,
                  "both new workers to answer")
        load.wait_ok(20)
    finally:
        load.stop()
    load.assert_lossless()
    assert not (load.worker_pids(since=settled) & old), load.report()
