"""Faults a review found in the gevent worker (`-k gevent`), each over real sockets.

- A greenlet the app spawns to read ``wsgi.input`` while the request's own greenlet answers
  (or starts answering): the worker used to freeze, the answer waiting on a lock the reader
  held while parked, until the master killed it.
- A 256 MiB upload read in pieces: the bytes the app had already taken stayed in the
  worker's buffer, so memory grew with the body (gevent, and gthread/sync with pieces that
  do not line up with what the socket gave).
- A ``gevent.Timeout`` the app starts and never cancels, fired into the idle greenlet that
  served it: the next request went to that dead greenlet and was never answered, and TERM
  then waited for it until the graceful timeout.
- A ``pre_request`` hook that raises: a 500 at once, not a request that hangs.
- ``Expect: 100-continue`` answered without reading the body: the connection must close.
- ``contextvars`` set by one request seen by the next, its greenlet being reused.
- 103 Early Hints followed by the ``100 Continue`` a body read asks for.
- A malformed chunked body found after the app started: Gunicorn's 400 page, a 400 in the
  access log, and no "Error handling request" traceback.

The app is apps/gevent_faults_app.py. Tests that pass against Gunicorn 27.0.1's workers
(``FERROCORN_CMD=gunicorn``) run there too; ``ferrocorn_only`` ones say why not.
"""

from __future__ import annotations

import json
import re
import signal
import textwrap
import time

import pytest

from conftest import RawResponse, wait_until
from gthread_client import Client, get, request

pytestmark = pytest.mark.timeout(60)

APP = "gevent_faults_app:app"
GEVENT = ("-k", "gevent")
MiB = 1024 * 1024


def pid_of(resp) -> int:
    return int(resp.header("x-worker-pid"))


def serving(server, pid=None, timeout=5.0):
    """A new connection is answered (by worker `pid` when given); returns the worker's pid."""
    resp = get(server.address, "/", timeout=timeout)
    assert resp.status == 200, resp.raw[:300]
    if pid is not None:
        assert pid_of(resp) == pid, "answered by another worker: the first one died"
    return pid_of(resp)


# ---------------------------------------------------------------------------
# 1. A spawned greenlet reads the body while the request's greenlet answers.

SHORT_BODY = (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n"
              + b"a" * 70000)


@pytest.mark.parametrize("kill", [False, True], ids=["reader-left-parked", "reader-killed"])
def test_a_408_while_a_spawned_greenlet_waits_for_the_body(serve, kill):
    # Before the fix the 408 never came: the answer blocked the thread on the exchange the
    # parked reader held, the hub stopped, and the master killed the worker for its missed
    # heartbeats (`--timeout` seconds later). Left parked, the reader holds the exchange
    # until its read gives up, `--timeout` seconds after the last byte here (Gunicorn's
    # gevent worker has no such limit, and its 408 goes out at once).
    server = serve(*GEVENT, "-w", "1", "--timeout", "10" if kill else "3", APP)
    pid = serving(server)
    path = b"/spawnread?kill=1" if kill else b"/spawnread"
    with Client(server.address, timeout=20) as client:
        client.send(SHORT_BODY % path)  # 30000 bytes short, and the socket stays open
        resp = client.read_response()
        assert resp.status == 408, resp.raw[:300]
        assert resp.body == b"body too slow\n"
        assert pid_of(resp) == pid
        if kill:
            # A kill thrown into the parked reader frees the exchange: the answer (after the
            # app's 1 s) did not wait for the body read to give up (10 s).
            assert "timed out reading the request body" not in server.stderr_text()
        serving(server, pid)
    serving(server, pid)
    assert server.worker_pids() == [pid]


def test_the_response_starts_while_a_spawned_greenlet_waits_for_the_body(serve):
    server = serve(*GEVENT, "-w", "1", "--timeout", "3", APP)
    pid = serving(server)
    with Client(server.address, timeout=20) as client:
        client.send(SHORT_BODY % b"/spawnread?write=1")
        resp = client.read_response()
        assert resp.status == 200, resp.raw[:300]
        assert pid_of(resp) == pid
        # The app's write() went out, then its own tail: "timeout" when the reader was still
        # waiting a second later (Gunicorn), "read failed: TimeoutError" when the write could
        # only go once the reader's read had given up (ferrocorn, where both share the
        # request's exchange).
        assert resp.body.startswith(b"started\n"), resp.body
        assert resp.body[len(b"started\n"):] in (b"timeout\n", b"read failed: TimeoutError\n")
    serving(server, pid)
    assert server.worker_pids() == [pid]


# ---------------------------------------------------------------------------
# 2. A big upload read in pieces does not stay in the worker's memory.

UPLOAD = 256 * MiB


@pytest.mark.parametrize("worker,piece", [("gevent", 65536), ("gthread", 8191), ("sync", 8191)])
def test_a_256_mib_upload_read_in_pieces_is_not_kept(serve, worker, piece):
    server = serve("-k", worker, "-w", "1", "--timeout", "60", APP)
    before = json.loads(get(server.address, "/mem").body)
    block = bytes(range(256)) * (MiB // 256)
    with Client(server.address, timeout=60) as client:
        client.send(request("/count?size=%d" % piece, method="POST", content_length=UPLOAD,
                            headers={"Connection": "close"}))
        for _ in range(UPLOAD // MiB):
            client.send(block)
        resp = client.read_response()
    assert resp.status == 200, resp.raw[:300]
    after = json.loads(resp.body)
    assert after["bytes"] == UPLOAD
    assert after["pid"] == before["pid"]
    # Before the fix the peak grew by about the whole body (314 MiB under gevent, 268 MiB
    # under gthread); a few pieces in flight are all it needs.
    growth = (after["hwm_kb"] - before["rss_kb"]) * 1024
    assert growth < 64 * MiB, "peak RSS grew by %.0f MiB" % (growth / MiB)


# ---------------------------------------------------------------------------
# 3. A timer the app leaves running fires into an idle greenlet.


def test_a_timeout_left_running_by_the_app_loses_no_later_request(serve):
    server = serve(*GEVENT, "-w", "1", "--graceful-timeout", "20", APP)
    pid = serving(server)
    resp = get(server.address, "/leak", timeout=5)
    assert resp.status == 200, resp.raw[:300]
    # The app's own 0.3 s timer fires meanwhile, into the greenlet that served /leak, now
    # idle. Before the fix that greenlet died but stayed in the idle pool: the next request
    # handed to it was never answered, and counted as in flight for ever.
    time.sleep(1)
    for _ in range(5):
        serving(server, pid, timeout=5)
    server.send_signal(signal.SIGTERM)
    assert server.wait_exit(10) == 0  # well before --graceful-timeout 20
    assert "Worker graceful timeout" not in server.stderr_text()


# ---------------------------------------------------------------------------
# 4. A pre_request hook that raises.

FAILING_HOOK = textwrap.dedent(
    """
    def pre_request(worker, req):
        if req.path == "/prefail":
            raise RuntimeError("nope")
    """
)


@pytest.mark.parametrize("worker", ["gevent", "sync", "gthread"])
def test_a_failing_pre_request_hook_is_a_500(serve, tmp_path, worker):
    conf = tmp_path / "prefail.conf.py"
    conf.write_text(FAILING_HOOK)
    server = serve("-k", worker, "-w", "1", "-c", str(conf), "--access-logfile", "-", APP)
    pid = serving(server)
    # Before the fix the request hung on gevent, and sync and gthread workers exited: Gunicorn
    # answers it as an app exception.
    resp = get(server.address, "/prefail", timeout=5)
    assert resp.status == 500, resp.raw[:300]
    server.wait_for_log(r"Error handling request GET /prefail")
    server.wait_for_log(r"RuntimeError: nope$")
    wait_until(lambda: '"GET /prefail HTTP/1.1" 500' in server.stdout_text(), timeout=5,
               what="the access line of the failed request")
    serving(server, pid)
    assert server.worker_pids() == [pid]


# ---------------------------------------------------------------------------
# 5. Expect: 100-continue, answered without reading the body.


@pytest.mark.ferrocorn_only  # Gunicorn sends 100 Continue before the app runs, answers
# keep-alive, then waits (gevent: `keepalive` seconds) for the 5 bytes it invited.
@pytest.mark.parametrize("worker", ["gevent", "gthread"])
def test_an_unread_body_still_awaited_closes_the_connection(serve, worker):
    server = serve("-k", worker, "-w", "1", APP)
    with Client(server.address, timeout=5) as client:
        client.send(request("/noread", method="POST", content_length=5,
                            headers={"Expect": "100-continue"}))
        # The first head is the final one: the app did not read, so no 100 invited the body.
        resp = client.read_response()
        assert resp.status == 200, resp.raw[:300]
        assert resp.body == b"not read\n"
        # Before the fix (gevent): keep-alive, and the next request on the connection was
        # taken for the body and got a 400.
        assert resp.header("connection", "").lower() == "close", resp.raw[:300]
        assert client.wait_eof(5) < 5


# ---------------------------------------------------------------------------
# 6. contextvars do not leak from one request into the next.


def test_each_request_starts_with_a_fresh_context(serve):
    server = serve(*GEVENT, "-w", "1", APP)
    seen = []
    for user in ("alice", "bob", "carol"):
        resp = get(server.address, "/ctx?user=%s" % user, timeout=5)
        assert resp.status == 200, resp.raw[:300]
        seen.append(json.loads(resp.body))
    # One worker served the three, on greenlets that may be the same one.
    assert len({s["pid"] for s in seen}) == 1
    assert [s["seen"] for s in seen] == [None, None, None]


# ---------------------------------------------------------------------------
# 7. 103 Early Hints, then 100 Continue.


@pytest.mark.ferrocorn_only  # Gunicorn sends 100 Continue before the app runs, so it
# precedes the 103 there (docs/differences.md, `Expect: 100-continue`).
@pytest.mark.parametrize("worker", ["gevent", "gthread"])
def test_early_hints_then_100_continue_then_the_response(serve, worker):
    server = serve("-k", worker, "-w", "1", APP)
    with Client(server.address, timeout=5) as client:
        client.send(request("/hints", method="POST", content_length=5,
                            headers={"Expect": "100-continue"}))
        hints = client.read_head()
        assert hints.status_line == "HTTP/1.1 103 Early Hints", hints.head
        assert hints.header("link") == "</style.css>; rel=preload"
        # Before the fix (gevent) the 103 took the place of the 100, which never came: a
        # client waiting for it stalled, and so did the app reading the body.
        cont = client.read_head()
        assert cont.status_line == "HTTP/1.1 100 Continue", cont.head
        client.send(b"hello")
        resp = client.read_response()
    assert resp.status == 200, resp.raw[:300]
    assert resp.body == b"hello"


# ---------------------------------------------------------------------------
# 8. A malformed chunked body, found after the app started.


def bad_chunked_body(server, tmp_path, name):
    """POST a chunked body whose second chunk-size line is garbage, sent once the request
    reached the app (which is reading the body); the raw response."""
    marker = tmp_path / name
    head = ("POST /echo?marker=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Transfer-Encoding: chunked\r\n\r\n" % marker).encode()
    with Client(server.address, timeout=10) as client:
        client.send(head + b"5\r\nhello\r\n")
        wait_until(marker.exists, timeout=10, what="the request to reach the app")
        client.send(b"zz\r\n")
        return client.read_until_eof(10)


def test_a_malformed_chunked_body_is_gunicorns_400(serve, tmp_path):
    sync = serve("-k", "sync", "-w", "1", APP)
    expected = RawResponse(bad_chunked_body(sync, tmp_path, "sync-marker"))
    assert expected.status == 400, expected.raw[:300]
    assert b"<title>Bad Request</title>" in expected.body

    server = serve(*GEVENT, "-w", "1", "--access-logfile", "-", APP)
    pid = serving(server)
    raw = bad_chunked_body(server, tmp_path, "gevent-marker")
    # The same page as the sync worker's, byte for byte (before the fix, the gevent worker
    # sent its own).
    assert raw == expected.raw
    line = wait_until(lambda: [ln for ln in server.stdout_text().splitlines()
                               if "/echo" in ln], timeout=10, what="the access log line")
    # Before the fix the app saw a generic read error: a 500 in the access log and an
    # "Error handling request" traceback.
    assert re.search(r'"POST /echo\?\S+ HTTP/1\.1" 400 ', line[0]), line
    server.wait_for_log(r"\[WARNING\] Invalid request from ip=127\.0\.0\.1: Invalid chunk size")
    serving(server, pid)
    errors = [msg for _, level, msg in server.log_lines() if level == "ERROR"]
    assert not [m for m in errors if "Error handling request" in m], errors
    assert "Traceback" not in server.stderr_text()


# ---------------------------------------------------------------------------
# 9. Found by the second review.


def test_a_stream_ends_when_its_client_leaves(serve, tmp_path):
    # Before the fix a write to a client that had left was dropped without the app hearing
    # of it, so an endless event stream went on for good and TERM waited out the graceful
    # timeout.
    marker = tmp_path / "ended"
    server = serve(*GEVENT, "-w", "1", "--graceful-timeout", "20", APP)
    with Client(server.address, timeout=5) as client:
        client.send(request("/stream?marker=%s" % marker))
        assert client.read_head().status == 200
        while b"data: 3" not in client.buf:
            client._fill()
    wait_until(marker.exists, timeout=10, what="the stream to end after the client left")
    serving(server)
    started = time.monotonic()
    server.send_signal(signal.SIGTERM)
    server.wait_exit(15)
    assert time.monotonic() - started < 10


@pytest.mark.ferrocorn_only  # Gunicorn's start_response never waits: both greenlets use the
# socket at once (see differences.md, "two greenlets of one request").
def test_an_exception_thrown_while_waiting_for_the_request_reaches_the_app(serve):
    # Before the fix a gevent.Timeout thrown into a greenlet waiting for its request (held
    # by another greenlet of the app, parked in a body read) was dropped.
    server = serve(*GEVENT, "-w", "1", "--timeout", "20", APP)
    with Client(server.address, timeout=10) as client:
        client.send(b"POST /timeout-while-locked HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Length: 100000\r\n\r\n")
        resp = client.read_response()
    assert resp.body == b"timeout raised", resp.raw[:300]


PRE_AND_POST = textwrap.dedent(
    """
    import json

    def pre_request(worker, req):
        if req.path == "/prefail":
            raise RuntimeError("nope")

    def post_request(worker, req, environ, resp):
        with open(%r, "a") as f:
            f.write(json.dumps({"path": req.path, "environ": type(environ).__name__,
                                "environ_len": len(environ) if isinstance(environ, dict) else -1,
                                "resp": resp is None, "nr": worker.nr}) + "\\n")
    """
)


@pytest.mark.parametrize("worker", ["gevent", "sync"])
def test_after_a_failing_pre_request_post_request_gets_what_gunicorn_gives(serve, tmp_path,
                                                                           worker):
    record = tmp_path / "post.jsonl"
    conf = tmp_path / "hooks.conf.py"
    conf.write_text(PRE_AND_POST % str(record))
    server = serve("-k", worker, "-w", "1", "-c", str(conf), APP)
    assert get(server.address, "/prefail", timeout=5).status == 500
    assert get(server.address, "/", timeout=5).status == 200
    def calls():
        lines = record.read_text().splitlines() if record.exists() else []
        found = [json.loads(line) for line in lines]
        paths = [c["path"] for c in found]
        return found if "/prefail" in paths and paths[-1] == "/" and len(paths) >= 2 else None

    found = wait_until(calls, timeout=5, what="both post_request calls")
    failed, ok = found[-2], found[-1]
    # An empty environ and no response; the failed request is not counted (the server may
    # have been probed before: counts are relative).
    assert failed["path"] == "/prefail", found
    assert (failed["environ_len"], failed["resp"]) == (0, True), failed
    assert ok["environ_len"] > 0 and ok["resp"] is False, ok
    assert ok["nr"] == failed["nr"] + 1, found


@pytest.mark.ferrocorn_only  # Gunicorn's pool slot is the greenlet: it is held until the app
# returns (listed in differences.md with worker_connections).
def test_a_client_that_leaves_frees_its_connection_slot_at_once(serve, tmp_path):
    # The gevent worker's I/O thread used to keep a connection whose client had left until
    # the app's greenlet finished and the disconnect grace period ran out: with every slot
    # of `worker_connections` held that way, new clients waited in the backlog.
    server = serve(*GEVENT, "-w", "1", "--worker-connections", "2", APP)
    serving(server)
    for i in range(2):
        marker = tmp_path / ("nap%d" % i)
        with Client(server.address, timeout=5) as client:
            client.send(request("/nap?s=4&marker=%s" % marker))
            # The request is in the app before the client goes.
            wait_until(marker.exists, timeout=5, what="the nap to start")
    started = time.monotonic()
    assert get(server.address, "/", timeout=10).status == 200
    assert time.monotonic() - started < 3, "a new client waited for the naps to end"
