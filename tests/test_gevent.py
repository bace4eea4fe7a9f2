"""The gevent worker (`-k gevent`, issue 17) over real sockets.

The worker monkey-patches the standard library after fork, so apps written as plain
blocking code (`time.sleep`, `requests`, Flask, Django) run one greenlet per connection,
`--worker-connections` of them at once in a single worker. Covered here: a thousand
sleeping requests at once on one worker, hundreds of outbound `requests` calls at once,
Flask and Django, 20 MB uploads (Content-Length and chunked) and streamed downloads, a
slow reader that must not hold up other requests, keep-alive, a hub blocked by a
non-cooperative call (killed by `--timeout`), TERM with 500 requests in flight, malformed
requests and app exceptions, the pre/post_request hooks and the access log.

Concurrency is checked by counting, not by timing: the app records the most requests it
had inside its sleep at once, and the upstream server of the outbound test the most calls
it had in flight. Every test passes against Gunicorn 27.0.1's gevent worker
(``FERROCORN_CMD=gunicorn``) except those marked ``ferrocorn_only``.

gevent comes from requirements-test.txt and is never skipped for: without it the worker
cannot boot and every test here fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import textwrap
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import RawResponse, pid_alive, wait_until
from gthread_client import Client, get, raise_nofile, request

pytestmark = pytest.mark.timeout(60)

GEVENT = ("-k", "gevent")
APP = "gevent_app:app"
MB = 1024 * 1024
PIECE = 64 * 1024


def piece(i: int) -> bytes:
    """Piece `i` of the app's /download body (apps/gevent_app.py)."""
    return hashlib.sha256(b"piece %d" % i).digest() * (PIECE // 32)


def download_digest(mb: int) -> str:
    digest = hashlib.sha256()
    for i in range(mb * MB // PIECE):
        digest.update(piece(i))
    return digest.hexdigest()


@pytest.fixture
def many_files():
    # A thousand client sockets here, and as many in the worker, which inherits the limit.
    raise_nofile(4096)


# ---------------------------------------------------------------------------
# Many requests at once, each on its own connection (asyncio: no thread per client).


@dataclass
class Result:
    response: RawResponse | None
    error: str
    finished: float


async def _get_one(address, path: str, timeout: float) -> Result:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*address), timeout)
        try:
            writer.write(request(path, headers={"Connection": "close"}))
            await writer.drain()
            raw = await asyncio.wait_for(reader.read(), timeout)
        finally:
            writer.close()
        return Result(RawResponse(raw), "", time.monotonic())
    except (OSError, asyncio.TimeoutError, AssertionError) as exc:
        return Result(None, repr(exc), time.monotonic())


def get_all(address, paths, timeout: float = 30.0) -> list:
    """GET every path at once, each on a new connection; a Result for each, in order."""
    async def main():
        return await asyncio.gather(*(_get_one(address, p, timeout) for p in paths))

    return asyncio.run(main())


def all_ok(results) -> list:
    """The decoded JSON bodies, after checking that every result is a 200."""
    bad = [r.error or r.response.status_line for r in results
           if r.response is None or r.response.status != 200]
    assert not bad, "%d of %d failed, e.g. %s" % (len(bad), len(results), bad[:5])
    return [json.loads(r.response.body) for r in results]


def still_serving(server, pid=None):
    """A new request is answered (by worker `pid` when given)."""
    resp = get(server.address, "/")
    assert resp.status == 200, resp.raw[:300]
    if pid is not None:
        assert int(resp.header("x-worker-pid")) == pid
    return resp


def test_a_thousand_sleeping_requests_run_at_once_on_one_worker(serve, many_files):
    server = serve(*GEVENT, "-w", "1", "--worker-connections", "1100", APP)
    started = time.monotonic()
    results = get_all(server.address, ["/sleep?s=1"] * 1000, timeout=30)
    elapsed = time.monotonic() - started
    bodies = all_ok(results)
    assert len({b["pid"] for b in bodies}) == 1
    # Serially this takes 1000 s, in batches of 100 at least 10 s; the peak shows how many
    # were really asleep together.
    peak = max(b["peak"] for b in bodies)
    assert peak >= 900, peak
    assert elapsed < 30, elapsed


class Upstream:
    """A threaded HTTP server in the test process whose every answer takes `delay`
    seconds; it records the most requests it had in flight at once."""

    def __init__(self, delay: float):
        state = self
        self.inflight = self.peak = self.served = 0
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                with state.lock:
                    state.inflight += 1
                    state.peak = max(state.peak, state.inflight)
                try:
                    time.sleep(delay)
                    body = ("upstream %s" % self.path).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                finally:
                    with state.lock:
                        state.inflight -= 1
                        state.served += 1

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 1024  # the default of 5 would drop a burst of connects

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@pytest.fixture
def upstream():
    # A second per call: long enough that all 300 overlap even on a loaded box.
    server = Upstream(delay=1.0)
    yield server
    server.close()


def test_outbound_requests_calls_run_at_once(serve, upstream, many_files):
    server = serve(*GEVENT, "-w", "1", "--worker-connections", "1000", APP)
    paths = ["/fetch?url=%s/call%d" % (upstream.url, i) for i in range(300)]
    bodies = all_ok(get_all(server.address, paths, timeout=30))
    assert [b["body"] for b in bodies] == ["upstream /call%d" % i for i in range(300)]
    assert {b["status"] for b in bodies} == {200}
    assert len({b["pid"] for b in bodies}) == 1
    assert upstream.served == 300
    # One worker had hundreds of `requests.get` calls waiting on the upstream together.
    assert upstream.peak >= 200, upstream.peak


# ---------------------------------------------------------------------------
# Frameworks


def naps_each_see_their_own_request(server, path):
    results = get_all(server.address, ["%s?tag=t%d&s=0.5" % (path, i) for i in range(40)])
    bodies = all_ok(results)
    assert [(b["tag"], b["after"]) for b in bodies] == [("t%d" % i, "t%d" % i) for i in range(40)]
    assert len({b["pid"] for b in bodies}) == 1


def test_flask(serve):
    server = serve(*GEVENT, "-w", "1", "gevent_flask:app")
    url = server.url
    assert requests.get(url + "/", timeout=10).text == "flask index"
    assert requests.get(url + "/hello/ada", timeout=10).text == "hello ada"
    form = requests.post(url + "/form", data={"name": "Ada", "colour": "green"}, timeout=10)
    assert form.text == "name=Ada;colour=green"
    echoed = requests.post(url + "/json", json={"a": [1, 2], "b": None}, timeout=10)
    assert echoed.json() == {"received": {"a": [1, 2], "b": None}, "count": 2}
    assert requests.get(url + "/missing", timeout=10).status_code == 404
    boom = requests.get(url + "/boom", timeout=10)
    assert boom.status_code == 500
    # Flask answers the 500 itself and logs the exception to wsgi.errors: the error log.
    server.wait_for_log(r"RuntimeError: deliberate failure from gevent_flask\.py")
    naps_each_see_their_own_request(server, "/nap")


def test_django(serve):
    server = serve(*GEVENT, "-w", "1", "gevent_django:application", ready_path="/greet/")
    url = server.url
    greet = requests.get(url + "/greet/?q=gevent", timeout=10)
    assert greet.json() == {"greeting": "hello from django", "q": "gevent"}
    form = requests.post(url + "/submit/", data={"name": "Grace"}, timeout=10)
    assert (form.status_code, form.json()) == (201, {"method": "POST", "data": {"name": "Grace"}})
    posted = requests.post(url + "/submit/", json={"n": 1}, timeout=10)
    assert (posted.status_code, posted.json()) == (201, {"method": "POST", "data": {"n": 1}})
    assert requests.get(url + "/missing/", timeout=10).status_code == 404
    assert requests.get(url + "/boom/", timeout=10).status_code == 500
    naps_each_see_their_own_request(server, "/nap/")


# ---------------------------------------------------------------------------
# Big bodies


def test_large_uploads_with_content_length_and_chunked(serve):
    server = serve(*GEVENT, "-w", "1", APP)
    payload = os.urandom(20 * MB)
    expected = hashlib.sha256(payload).hexdigest()
    sized = requests.post(server.url + "/upload", data=payload, timeout=60)
    assert sized.json()["bytes"] == len(payload)
    assert sized.json()["sha256"] == expected

    def pieces():  # no length known: requests sends it chunked
        view = memoryview(payload)
        for start in range(0, len(payload), 300_000):
            yield bytes(view[start:start + 300_000])

    chunked = requests.post(server.url + "/upload", data=pieces(), timeout=60)
    assert chunked.request.headers.get("Transfer-Encoding") == "chunked"
    assert chunked.json()["bytes"] == len(payload)
    assert chunked.json()["sha256"] == expected
    # Read in pieces of at most 64 KiB: the app never had the body whole.
    assert chunked.json()["pieces"] >= len(payload) // PIECE


def test_streamed_download(serve):
    server = serve(*GEVENT, "-w", "1", APP)
    with requests.get(server.url + "/download?mb=20", stream=True, timeout=60) as resp:
        assert resp.status_code == 200
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        digest = hashlib.sha256()
        total = 0
        for data in resp.iter_content(PIECE):
            digest.update(data)
            total += len(data)
    assert total == 20 * MB
    assert digest.hexdigest() == download_digest(20)


def test_a_slow_reader_does_not_hold_up_other_requests(serve):
    server = serve(*GEVENT, "-w", "1", APP)
    with Client(server.address, timeout=30) as slow:
        slow.send(request("/download?mb=20", headers={"Connection": "close"}))
        head = slow.read_head()
        assert head.status == 200
        pid = int(head.header("x-worker-pid"))
        # Take a little, then stop reading: the rest of the 20 MB cannot fit in the socket
        # buffers (a few MB on loopback), so the worker's greenlet for this client is stuck
        # writing until it reads on.
        received = [slow.read_chunk() for _ in range(6)]
        # Meanwhile the same worker answers everybody else, sleepers included.
        bodies = all_ok(get_all(server.address, ["/sleep?s=0.2"] * 20))
        assert {b["pid"] for b in bodies} == {pid}
        still_serving(server, pid)
        # Then the slow client gets all of its body, intact.
        received.extend(iter(slow.read_chunk, b""))
    total = sum(map(len, received))
    digest = hashlib.sha256()
    for data in received:
        digest.update(data)
    assert total == 20 * MB
    assert digest.hexdigest() == download_digest(20)


# ---------------------------------------------------------------------------
# Keep-alive


def test_keepalive_serves_several_requests_on_one_connection(serve):
    server = serve(*GEVENT, "-w", "2", "--keep-alive", "1", APP)
    with Client(server.address) as client:
        pids = set()
        for i in range(5):
            client.send(request("/sleep?s=0&i=%d" % i))
            resp = client.read_response()
            assert resp.status == 200, resp.raw[:300]
            assert resp.header("connection", "keep-alive").lower() != "close"
            pids.add(resp.header("x-worker-pid"))
        client.send(request("/upload", method="POST", body=b"x" * 5000))
        assert json.loads(client.read_response().body)["bytes"] == 5000
        assert len(pids) == 1
        assert client.is_open()
        # Left idle longer than --keep-alive, the connection is closed without a word.
        assert client.wait_eof(10) < 8


# ---------------------------------------------------------------------------
# A blocked hub and the timeout


def test_a_blocked_hub_is_killed_by_the_timeout(serve):
    server = serve(*GEVENT, "-w", "1", "--timeout", "2", APP)
    (stuck,) = server.worker_pids()
    with Client(server.address, timeout=30) as conn:
        # The unpatched sleep blocks the hub: the worker stops sending heartbeats.
        conn.send(request("/block?s=60", headers={"Connection": "close"}))
        server.wait_for_log(r"\[CRITICAL\] WORKER TIMEOUT \(pid:%d\)" % stuck, timeout=20)
        # The request dies with its worker: never the app's answer.
        assert b"unblocked" not in conn.read_until_eof(timeout=20)
    wait_until(lambda: not pid_alive(stuck), timeout=15, what="the blocked worker to exit")
    wait_until(lambda: len(server.worker_pids()) >= 2, timeout=15, what="a new worker")
    new = server.worker_pids()[-1]
    assert new != stuck
    assert still_serving(server, new).status == 200
    bodies = all_ok(get_all(server.address, ["/sleep?s=0.2"] * 20))
    assert {b["pid"] for b in bodies} == {new}


@pytest.mark.ferrocorn_only
def test_a_blocked_hub_logs_the_requests_and_the_greenlet_stacks(serve):
    # Gunicorn only logs "WORKER TIMEOUT (pid:N)"; ferrocorn's aborted gevent worker also
    # names the requests in flight and logs where every greenlet's Python code was: the
    # one that blocks the hub and the ones it starves.
    server = serve(*GEVENT, "-w", "1", "--timeout", "2", APP)
    (stuck,) = server.worker_pids()
    with Client(server.address, timeout=30) as sleeper:
        sleeper.send(request("/sleep?s=30", headers={"Connection": "close"}))
        wait_until(lambda: json.loads(get(server.address, "/stats").body)["inflight"] == 1,
                   what="the sleeping request in the app")
        with Client(server.address, timeout=30) as blocker:
            blocker.send(request("/block?s=60", headers={"Connection": "close"}))
            server.wait_for_log(r"\[CRITICAL\] WORKER TIMEOUT \(pid:%d\)" % stuck, timeout=20)
            (aborted,) = server.wait_for_log(
                r"^\[[^]]+\] \[%d\] \[ERROR\] Worker \(pid:%d\) aborted while serving (.*)$"
                % (stuck, stuck), timeout=15)
            assert b"unblocked" not in blocker.read_until_eof(timeout=20)
        sleeper.read_until_eof(timeout=20)
    assert "GET /block?s=60 (running" in aborted.group(1)
    assert "GET /sleep?s=30 (running" in aborted.group(1)
    # The dump runs from the abort line to the next log line.
    dump = re.split(r"^\[\d{4}-", server.stderr_text()[aborted.end():], maxsplit=1,
                    flags=re.M)[0]
    assert "gevent_app.py" in dump, dump
    assert "block_the_hub" in dump, dump  # the greenlet that blocked the hub
    assert "sleep_counted" in dump, dump  # and the one waiting behind it
    wait_until(lambda: len(server.worker_pids()) >= 2, timeout=15, what="a new worker")
    still_serving(server, server.worker_pids()[-1])


# ---------------------------------------------------------------------------
# Graceful stop


def test_term_with_500_requests_in_flight_loses_none(serve, many_files):
    server = serve(*GEVENT, "-w", "1", "--worker-connections", "1000",
                   "--graceful-timeout", "30", APP)
    results = []
    # Each request waits in the app until all 500 are there, then sleeps 2 s more.
    clients = threading.Thread(target=lambda: results.extend(
        get_all(server.address, ["/sleep?s=2&n=500"] * 500, timeout=45)))
    clients.start()
    try:
        wait_until(lambda: json.loads(get(server.address, "/stats").body)["inflight"] >= 500,
                   timeout=20, what="500 requests in the app")
        term = time.monotonic()
        server.send_signal(signal.SIGTERM)
        code = server.wait_exit(40)
    finally:
        clients.join(50)
    assert code == 0
    bodies = all_ok(results)
    assert len(bodies) == 500
    assert all(b["reached"] for b in bodies)
    # They were all in flight when TERM came, and all finished after it.
    assert min(r.finished for r in results) > term
    assert "Worker graceful timeout" not in server.stderr_text()


# ---------------------------------------------------------------------------
# Errors


MALFORMED = [
    (b"GARBAGE\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    # --limit-request-line 200
    (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 414 URI Too Long"),
    # --limit-request-field_size 100
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 200 + b"\r\n\r\n",
     "HTTP/1.1 431 Request Header Fields Too Large"),
]


def test_malformed_requests_get_4xx_and_the_worker_serves_on(serve):
    server = serve(*GEVENT, "-w", "1", "--limit-request-line", "200",
                   "--limit-request-field_size", "100", APP)
    pid = int(still_serving(server).header("x-worker-pid"))
    for data, status_line in MALFORMED:
        with Client(server.address) as client:
            client.send(data)
            resp = RawResponse(client.read_until_eof())
        assert resp.status_line == status_line, (data[:40], resp.raw[:300])
        assert resp.header("connection") == "close"
        still_serving(server, pid)
    assert len(server.worker_pids()) == 1


def test_an_app_exception_is_a_500_and_a_logged_traceback(serve):
    server = serve(*GEVENT, "-w", "1", APP)
    pid = int(still_serving(server).header("x-worker-pid"))
    resp = get(server.address, "/boom")
    assert resp.status == 500
    server.wait_for_log(r"\[ERROR\] Error handling request GET /boom\nTraceback ")
    server.wait_for_log(r"GeventAppBoom: deliberate failure from gevent_app\.py$")
    still_serving(server, pid)
    assert len(server.worker_pids()) == 1


# ---------------------------------------------------------------------------
# Hooks and the access log

HOOKS_CONF = textwrap.dedent(
    """
    import json, os

    def _rec(**fields):
        with open(os.environ["HOOK_LOG"], "a") as f:
            f.write(json.dumps(fields) + "\\n")

    def pre_request(worker, req):
        _rec(hook="pre_request", pid=os.getpid(), worker_pid=worker.pid, path=req.path)

    def post_request(worker, req, environ, resp):
        _rec(hook="post_request", pid=os.getpid(), worker_pid=worker.pid, path=req.path,
             status=None if resp is None else resp.status_code)
    """
)


def test_request_hooks_and_access_log(serve, tmp_path):
    conf = tmp_path / "hooks.conf.py"
    conf.write_text(HOOKS_CONF)
    log = tmp_path / "hooks.jsonl"
    server = serve(*GEVENT, "-w", "1", "-c", str(conf), "--access-logfile", "-", APP,
                   env={"HOOK_LOG": str(log)}, ready_path="/ready")
    resp = get(server.address, "/sleep?s=0.1&tag=hooked", headers={"User-Agent": "ua-gevent"})
    assert resp.status == 200
    pid = int(resp.header("x-worker-pid"))

    def ours():
        found = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        found = [r for r in found if r["path"] == "/sleep"]
        return found if len(found) >= 2 else None

    calls = wait_until(ours, timeout=10, what="the two hook calls")
    assert [c["hook"] for c in calls] == ["pre_request", "post_request"]
    assert all(c["pid"] == c["worker_pid"] == pid for c in calls)
    assert calls[1]["status"] == 200
    line = wait_until(lambda: [ln for ln in server.stdout_text().splitlines() if "hooked" in ln],
                      timeout=10, what="the access log line")
    assert re.search(r'"GET /sleep\?s=0\.1&tag=hooked HTTP/1\.1" 200 \d+ "-" "ua-gevent"$',
                     line[0]), line
