"""TLS under hostile or careless clients, and big bodies over TLS.

Every server here serves tests/apps/tls_robust_app.py with a module-wide certificate and is
told apart from the app by worker kind (`-k sync`, `-k gthread`, `-k asgi`):

- plain HTTP sent to the TLS port is answered or closed at once, and the worker serves on
  (ferrocorn answers a 400 that says what happened; Gunicorn closes without a word);
- bytes that are not a ClientHello, and a ClientHello cut short by the client's close, are
  closed at once;
- a handshake that stalls half way is closed after about `--timeout` (sync: by the worker
  timeout, in both servers; gthread and asgi: a thousand of them at once, while other
  clients are served, which only ferrocorn does: Gunicorn's gthread handshakes in a pool
  thread, and its asgi worker keeps asyncio's 60 s handshake timeout);
- 1 MiB responses (a plain one and a `wsgi.file_wrapper` one, the sendfile path), 4 MiB
  uploads and 200 keep-alive requests on one connection arrive intact;
- a client that closes without close_notify costs no ERROR and no traceback.
"""

from __future__ import annotations

import hashlib
import json
import http.client
import random
import resource
import select
import selectors
import socket
import ssl
import time

import pytest
import requests

from conftest import LOG_LINE_RE, RawResponse, wait_until
from tls_support import make_pki, tls_connect, tls_request, wait_tls_ready

SYNC = pytest.param(("-k", "sync"), id="sync")
GTHREAD = pytest.param(("-k", "gthread", "--threads", "4"), id="gthread")
ASGI = pytest.param(("-k", "asgi"), id="asgi")
KINDS = pytest.mark.parametrize("kind", [SYNC, GTHREAD, ASGI])

BIG = b"".join(i.to_bytes(4, "big") for i in range(1 << 18))  # the app's 1 MiB body
GET = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_serve(serve, pki):
    """``tls_serve(kind, *args)``: a TLS server of worker `kind` serving the test app."""

    def start(kind, *args, app=None):
        if app is None:
            app = "tls_robust_app:asgi_app" if "asgi" in kind else "tls_robust_app:app"
        server = serve(*kind, *pki.server_args(), *args, app, ready="port")
        wait_tls_ready(server, pki.client_context())
        return server

    return start


def assert_serves(server, pki, timeout: float = 10.0):
    """A new TLS client gets a 200 from `server`."""
    raw = tls_request(server.address, pki.client_context(), timeout=timeout)
    assert raw.startswith(b"HTTP/1.1 200"), raw[:200]


def read_to_close(sock: socket.socket, limit: float, what: str) -> bytes:
    """What the server sends before it closes `sock` (EOF or reset), within `limit` s."""
    deadline = time.monotonic() + limit
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("%s: the server kept the connection open for %ss; got %r"
                                 % (what, limit, b"".join(chunks)[:200]))
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except socket.timeout:
            continue
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def client_hello(pki) -> bytes:
    """The bytes of a real ClientHello, as a client with our CA would send them."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = pki.client_context().wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    assert hello[:1] == b"\x16" and len(hello) > 100, hello[:20]
    return hello


def half_hello(pki) -> bytes:
    hello = client_hello(pki)
    return hello[: len(hello) // 2]


def problems(server) -> list:
    """ERROR and CRITICAL lines and tracebacks in the server's log."""
    found = []
    for line in server.stderr_text().splitlines():
        m = LOG_LINE_RE.match(line)
        if (m and m.group(3) in ("ERROR", "CRITICAL")) or "Traceback" in line:
            found.append(line)
    return found


# ---------------------------------------------------------------------------
# 1. Plain HTTP to the TLS port.


def plain_http_answer(server) -> tuple[bytes, float]:
    start = time.monotonic()
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(GET)
        data = read_to_close(sock, 2.0, "plain HTTP to the TLS port")
    return data, time.monotonic() - start


@KINDS
def test_plain_http_to_the_tls_port_is_answered_or_closed_at_once(tls_serve, pki, kind):
    server = tls_serve(kind, "--log-level", "debug")
    for _ in range(2):
        data, elapsed = plain_http_answer(server)
        assert elapsed < 2.0
        # Whatever it said, it was not an answer served as if the request were fine.
        assert not data.startswith(b"HTTP/1.1 200"), data[:200]
        assert_serves(server, pki)
    assert not problems(server)


@pytest.mark.ferrocorn_only
@KINDS
def test_plain_http_to_the_tls_port_gets_a_400_that_says_why(tls_serve, pki, kind):
    server = tls_serve(kind)
    data, _ = plain_http_answer(server)
    response = RawResponse(data)
    assert response.status_line == "HTTP/1.1 400 Bad Request", data[:300]
    assert response.header("connection", "").lower() == "close", data[:300]
    assert response.header("content-type", "").startswith("text/plain"), data[:300]
    body = response.body.decode("latin-1").lower()
    assert "plain http" in body and "https" in body, data[:300]

    def warnings():
        return [msg for _, level, msg in server.log_lines()
                if level == "WARNING" and "Invalid request from ip=127.0.0.1" in msg]

    wait_until(warnings, timeout=5, what="the WARNING about the plain HTTP request")
    assert_serves(server, pki)
    assert len(warnings()) == 1, warnings()
    assert not problems(server)


# ---------------------------------------------------------------------------
# 2. Not a ClientHello, or a ClientHello cut short.


def random_bytes() -> bytes:
    rng = random.Random(20240601)
    # Not a TLS record type (0x14-0x18) and no SSLv2 length bit: garbage from the first byte.
    return bytes([rng.randrange(0x19, 0x80)]) + rng.randbytes(1023)


@KINDS
def test_garbage_and_cut_short_hellos_are_closed_at_once(tls_serve, pki, kind):
    server = tls_serve(kind, "--log-level", "debug")
    cases = [
        ("a handshake record that is no handshake", b"\x16\x03\x01\x00\x05hello", False),
        ("random bytes", random_bytes(), False),
        ("half a ClientHello, then the client's FIN", half_hello(pki), True),
    ]
    for what, data, half_close in cases:
        start = time.monotonic()
        with socket.create_connection(server.address, timeout=5) as sock:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            answer = read_to_close(sock, 2.0, what)
        assert time.monotonic() - start < 2.0, what
        assert b"HTTP/1.1 200" not in answer, (what, answer[:200])
        assert_serves(server, pki)
    assert not problems(server)


# ---------------------------------------------------------------------------
# 3. Stalled handshakes.


def ensure_nofile(needed: int):
    """Raise the soft open-files limit to `needed` (servers started later inherit it);
    returns the limits to restore. Skips when the hard limit is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed or soft == resource.RLIM_INFINITY:
        return soft, hard
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip("needs %d open files; the hard limit is %d" % (needed, hard))
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return soft, hard


def wait_all_closed(socks: list, deadline: float) -> dict:
    """Wait until the server closed every socket (EOF or reset; a TLS alert before it is
    fine); returns {socket: monotonic time its close was seen}."""
    closed = {}
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        while len(closed) < len(socks):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("%d of %d stalled handshakes still open"
                                     % (len(socks) - len(closed), len(socks)))
            for key, _ in selector.select(min(remaining, 0.2)):
                sock = key.fileobj
                try:
                    if sock.recv(65536):
                        continue
                except BlockingIOError:
                    continue
                except OSError:  # a reset is a close too
                    pass
                closed[sock] = time.monotonic()
                selector.unregister(sock)
    return closed


def test_sync_stalled_handshake_is_closed_after_the_timeout(tls_serve, pki):
    timeout = 3
    server = tls_serve(("-k", "sync"), "--timeout", str(timeout))
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(half_hello(pki))
        stalled = time.monotonic()
        closed = wait_all_closed([sock], stalled + 3 * timeout)[sock]
    # Not taken for garbage: a client may be slow; it is the timeout that ends it.
    assert closed - stalled >= timeout / 3, closed - stalled
    # The next client is served (by a replacement worker, where the worker was killed).
    assert_serves(server, pki, timeout=15)


@pytest.mark.ferrocorn_only
def test_sync_trickled_hello_is_cut_at_the_timeout_without_killing_the_worker(tls_serve, pki):
    """A ClientHello sent a byte at a time, each byte inside the read timeout, still ends at
    `timeout` (as a trickled plain request head does), and the worker is never so busy that
    the master kills it. Gunicorn's sync worker is killed (WORKER TIMEOUT)."""
    timeout = 2
    server = tls_serve(("-k", "sync"), "--timeout", str(timeout))
    hello = client_hello(pki)
    with socket.create_connection(server.address, timeout=5) as sock:
        start = time.monotonic()
        closed_at = None
        for b in hello[:-1]:
            try:
                sock.sendall(bytes([b]))
            except OSError:
                closed_at = time.monotonic()
                break
            readable, _, _ = select.select([sock], [], [], 0.4)
            if readable:
                try:
                    data = sock.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    closed_at = time.monotonic()
                    break
            if time.monotonic() - start > 4 * timeout:
                break
    assert closed_at is not None, "a trickling client was never cut off"
    assert closed_at - start < 3 * timeout, closed_at - start
    assert_serves(server, pki, timeout=10)
    assert "WORKER TIMEOUT" not in server.stderr_text()


@pytest.mark.ferrocorn_only
@pytest.mark.parametrize("kind", [
    pytest.param(("-k", "gthread", "--threads", "4", "--worker-connections", "2000"),
                 id="gthread"),
    # Room for the stalled ones and the client: at the default 1000 the client would only
    # get a permit once the stalled handshakes are cut.
    pytest.param(("-k", "asgi", "--worker-connections", "2000"), id="asgi"),
])
def test_a_thousand_stalled_handshakes_do_not_block_others(tls_serve, pki, kind):
    # `timeout` is what cuts the stalled handshakes; the other client must get through well
    # before that, however loaded the machine is.
    count, timeout = 1000, 8
    limits = ensure_nofile(2200)
    socks = []
    try:
        server = tls_serve(kind, "--timeout", str(timeout))
        half = half_hello(pki)
        sent = {}
        for _ in range(count):
            sock = socket.create_connection(server.address, timeout=5)
            socks.append(sock)
            sock.sendall(half)
            sent[sock] = time.monotonic()
        # The stalled handshakes hold no thread and no worker: a client gets through now.
        start = time.monotonic()
        raw = tls_request(server.address, pki.client_context(), timeout=5)
        assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
        assert time.monotonic() - start < timeout / 2, time.monotonic() - start
        # And the server closes them after about `timeout`, not at once.
        closed = wait_all_closed(socks, time.monotonic() + 2 * timeout)
        early = [closed[s] - sent[s] for s in socks if closed[s] - sent[s] < timeout / 3]
        assert not early, "closed after %.2fs (and %d more)" % (min(early), len(early) - 1)
        assert_serves(server, pki)
        assert not problems(server)
    finally:
        for sock in socks:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)


# ---------------------------------------------------------------------------
# 8. Big bodies.


@KINDS
def test_big_bodies_cross_tls_intact(tls_serve, pki, kind):
    server = tls_serve(kind)
    base = "https://127.0.0.1:%d" % server.address[1]
    upload = random.Random(4).randbytes(4 << 20)
    expected = "%d %s" % (len(upload), hashlib.sha256(upload).hexdigest())
    with requests.Session() as session:
        session.trust_env = False  # REQUESTS_CA_BUNDLE would replace our CA
        session.verify = str(pki.ca_file)
        paths = ["/big"] if "asgi" in kind else ["/big", "/file"]
        for path in paths:
            response = session.get(base + path, timeout=30)
            assert response.status_code == 200, path
            assert response.headers["content-length"] == str(len(BIG)), path
            assert response.content == BIG, path
        # With a Content-Length, and chunked (a generator body has no length).
        response = session.post(base + "/upload", data=upload, timeout=30)
        assert (response.status_code, response.text) == (200, expected)
        pieces = (upload[i:i + 65536] for i in range(0, len(upload), 65536))
        response = session.post(base + "/upload", data=pieces, timeout=30)
        assert (response.status_code, response.text) == (200, expected)
    assert not problems(server)


@pytest.mark.parametrize("kind", [GTHREAD, ASGI])  # the sync worker closes after each response
def test_two_hundred_keepalive_requests_on_one_tls_connection(tls_serve, pki, kind):
    server = tls_serve(kind)
    conn = http.client.HTTPSConnection(*server.address, context=pki.client_context(),
                                       timeout=10)
    try:
        conn.connect()
        first = conn.sock
        for i in range(200):
            path = "/big" if i % 25 == 0 else "/"
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200, i
            assert body == BIG if path == "/big" else body.startswith(b"hello pid "), i
            assert not response.will_close, (i, response.getheaders())
            assert conn.sock is first, "request %d went over a new connection" % i
    finally:
        conn.close()
    assert not problems(server)


# ---------------------------------------------------------------------------
# 9. Closing without close_notify (a ragged EOF).


def read_response(tls: ssl.SSLSocket) -> bytes:
    """One response with a Content-Length, read off a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        assert chunk, "EOF before the response head: %r" % data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(RawResponse(head + b"\r\n\r\n").header("content-length"))
    while len(body) < length:
        chunk = tls.recv(65536)
        assert chunk, "EOF after %d of %d body bytes" % (len(body), length)
        body += chunk
    return head + b"\r\n\r\n" + body


def ragged_close(tls: ssl.SSLSocket):
    # SSLSocket.shutdown() drops the TLS session and shuts the TCP socket down: no
    # close_notify is sent (only unwrap() would send one).
    try:
        tls.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    tls.close()


@KINDS
def test_a_close_without_close_notify_is_no_error(tls_serve, pki, kind):
    server = tls_serve(kind, "--log-level", "debug")
    ctx = pki.client_context()
    # After a whole exchange on a kept-alive connection.
    tls = tls_connect(server.address, ctx)
    tls.sendall(GET)
    assert read_response(tls).startswith(b"HTTP/1.1 200")
    ragged_close(tls)
    # Right after sending a request for 1 MiB, before reading any of it.
    tls = tls_connect(server.address, ctx)
    tls.sendall(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    ragged_close(tls)
    # In the middle of a request head.
    tls = tls_connect(server.address, ctx)
    tls.sendall(b"GET / HTTP/1.1\r\nHost: 127.")
    ragged_close(tls)
    # Right after the handshake.
    ragged_close(tls_connect(server.address, ctx))
    # The worker serves on; enough requests that it has dealt with the closes meanwhile.
    for _ in range(20):
        assert_serves(server, pki)
    assert not problems(server)


@pytest.mark.ferrocorn_only
@KINDS
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_cleartext_proxy_header_before_the_handshake(tls_serve, pki, kind, version):
    """HAProxy's `send-proxy` to a TLS server sends the PROXY header in clear, then the
    handshake: the header is read as the PROXY protocol says and the request carries its
    client. Gunicorn reads the header only from inside TLS, so there this fails."""
    asgi = "asgi" in kind
    server = tls_serve(kind, "--proxy-protocol", version, "--proxy-allow-from", "127.0.0.1",
                       app="tls_asgi_app:app" if asgi else "environ_dump:app")
    if version == "v1":
        header = b"PROXY TCP4 192.0.2.7 198.51.100.9 4711 443\r\n"
    else:
        header = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c"
                  + bytes([192, 0, 2, 7, 198, 51, 100, 9]) + (4711).to_bytes(2, "big")
                  + (443).to_bytes(2, "big"))
    ctx = pki.client_context()
    raw = socket.create_connection(server.address, timeout=10)
    raw.sendall(header)
    with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"GET /tls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
    body = json.loads(data.split(b"\r\n\r\n", 1)[1])
    if asgi:
        assert body["client"] == ["192.0.2.7", 4711], body
        assert body["scheme"] == "https"
    else:
        assert body["REMOTE_ADDR"] == "192.0.2.7", body
        assert body["wsgi.url_scheme"] == "https"


@pytest.mark.ferrocorn_only
@KINDS
def test_a_refused_cleartext_proxy_header_is_answered_over_tls(tls_serve, pki, kind):
    """A PROXY header from a peer outside `proxy_allow_ips` gets the head reader's error
    page, over TLS once the handshake is done (not a broken handshake)."""
    asgi = "asgi" in kind
    server = tls_serve(kind, "--proxy-protocol", "v1", "--proxy-allow-from", "192.0.2.1",
                       app="tls_asgi_app:app" if asgi else "environ_dump:app")
    raw = socket.create_connection(server.address, timeout=10)
    raw.sendall(b"PROXY TCP4 192.0.2.7 198.51.100.9 4711 443\r\n")
    with pki.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            try:
                chunk = tls.recv(65536)
            except (ssl.SSLEOFError, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
    status = data.split(b"\r\n", 1)[0]
    assert status.startswith(b"HTTP/1.1 4"), data[:200]
    assert_serves(server, pki)
