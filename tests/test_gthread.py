"""The gthread worker (`-k gthread --threads N`, or `--threads N` alone) over real sockets.

Covers keep-alive reuse and the ways a connection ends (Connection: close, HTTP/1.0,
`--keep-alive` timeout and 0), pipelining, the `--worker-connections` limit, slow clients
(slowloris heads, trickled bodies), large bodies that stream, accepting only with a free
thread, the graceful stop's 2 s keep-alive linger (Gunicorn 27.0.1), `wsgi.multithread`,
the access log's request time, and threads that really run the app concurrently.

Tests marked ``ferrocorn_only`` check where ferrocorn deliberately does better than
Gunicorn 27.0.1; each says what Gunicorn does instead. Every other test passes against
``FERROCORN_CMD=gunicorn``.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import wait_until
from gthread_client import (APP, GTHREAD, Client, closes, data_of, get, parked, raise_nofile,
                            request, started_marker, still_open, stopped_listening, timed,
                            wait_accepted)

pytestmark = pytest.mark.timeout(45)

# ---------------------------------------------------------------------------
# Keep-alive and the ways a connection ends.


@pytest.mark.parametrize("args", [GTHREAD + ("--threads", "2"), ("--threads", "4")],
                         ids=["gthread", "threads-alone"])
def test_keepalive_reuses_the_connection_and_the_worker(serve, args):
    # Two workers: a new connection per request would land on either of them.
    server = serve(*args, "-w", "2", APP)
    with Client(server.address) as client:
        pids = set()
        for i in range(6):
            client.send(request("/ka%d" % i))
            resp = client.read_response()
            assert data_of(resp)["path"] == "/ka%d" % i
            assert not closes(resp), resp.raw[:300]
            pids.add(resp.header("x-worker-pid"))
        assert len(pids) == 1
        assert client.is_open()


def test_connection_close_request_closes(serve):
    server = serve(*GTHREAD, "--threads", "2", APP)
    with Client(server.address) as client:
        client.send(request("/first"))
        assert not closes(client.read_response())
        client.send(request("/last", headers={"Connection": "close"}))
        resp = client.read_response()
        assert data_of(resp)["path"] == "/last"
        assert closes(resp)
        assert client.wait_eof(5) < 2.5


def test_http10_without_keepalive_closes(serve):
    server = serve(*GTHREAD, "--threads", "2", APP)
    with Client(server.address) as client:
        client.send(request("/old", version="HTTP/1.0"))
        resp = client.read_response()
        assert data_of(resp)["path"] == "/old"
        assert resp.header("connection", "close").lower() == "close"
        assert client.wait_eof(5) < 2.5


def test_http10_with_keepalive_header_stays_open(serve):
    server = serve(*GTHREAD, "--threads", "2", APP)
    with Client(server.address) as client:
        for i in range(3):
            client.send(request("/old%d" % i, version="HTTP/1.0",
                                headers={"Connection": "keep-alive"}))
            resp = client.read_response()
            assert data_of(resp)["path"] == "/old%d" % i
            assert resp.header("connection", "").lower() == "keep-alive"


def test_ten_pipelined_requests_answered_in_order(serve):
    server = serve(*GTHREAD, "--threads", "4", APP)
    upload = os.urandom(3000)
    wire = []
    for i in range(10):
        if i == 4:
            # A request with a body in the middle: its end must be found exactly.
            wire.append(request("/upload", method="POST", body=upload))
        else:
            wire.append(request("/pipe%d" % i, headers={"X-Index": str(i)}))
    with Client(server.address) as client:
        client.send(b"".join(wire))
        for i in range(10):
            resp = client.read_response()
            assert not closes(resp), (i, resp.raw[:300])
            data = data_of(resp)
            if i == 4:
                assert data["length"] == len(upload)
                assert data["sha256"] == hashlib.sha256(upload).hexdigest()
            else:
                assert data["path"] == "/pipe%d" % i
        assert client.buf == b"", "bytes after the tenth response: %r" % client.buf[:300]
        # The connection is still usable afterwards.
        client.send(request("/after", headers={"Connection": "close"}))
        assert data_of(client.read_response())["path"] == "/after"


# ---------------------------------------------------------------------------
# The keep-alive timeout.


def test_idle_keepalive_connection_closed_after_the_timeout(serve):
    server = serve(*GTHREAD, "--threads", "2", "--keep-alive", "1", APP)
    with Client(server.address) as client:
        # Requests 0.6 s apart outlive one timeout in total: the clock restarts after
        # each response.
        for i in range(3):
            if i:
                time.sleep(0.6)  # the scenario's idle gap, not a wait for an event
            client.send(request("/tick%d" % i))
            resp = client.read_response()
            assert data_of(resp)["path"] == "/tick%d" % i
            assert not closes(resp)
        idle = client.wait_eof(6)
    assert 0.5 <= idle <= 3.5, idle


def test_keepalive_zero_closes_after_each_response(serve):
    server = serve(*GTHREAD, "--threads", "2", "--keep-alive", "0", APP)
    with Client(server.address) as client:
        client.send(request("/once"))
        resp = client.read_response()
        assert data_of(resp)["path"] == "/once"
        assert closes(resp)
        assert client.wait_eof(5) < 2.0


# ---------------------------------------------------------------------------
# worker_connections.


def test_worker_connections_bounds_the_kept_alive_connections(serve):
    # One worker, one thread, 3 connections: at most 3 - 1 = 2 connections are kept alive
    # (Gunicorn's max_keepalived); beyond that each response closes its connection.
    server = serve(*GTHREAD, "-w", "1", "--threads", "1", "--worker-connections", "3",
                   "--keep-alive", "30", APP)
    clients = []
    try:
        for i in range(5):
            client = Client(server.address)
            clients.append(client)
            client.send(request("/c%d" % i))
            resp = client.read_response()
            assert data_of(resp)["path"] == "/c%d" % i
            assert closes(resp) == (i >= 2), (i, resp.raw[:300])
            if i >= 2:
                assert client.wait_eof(5) < 2.5
                # Hang up at once: a server may read until the client closes (RFC 9112
                # section 9.6), and Gunicorn does that on its main thread.
                client.close()
            else:
                # Gunicorn counts a kept connection only once its main thread has parked
                # it, which may come after the client has the response.
                wait_until(lambda: parked(server, client), timeout=5,
                           what="the worker to park kept connection %d" % i)
        # The two kept connections still serve requests.
        for i, client in enumerate(clients[:2]):
            client.send(request("/again%d" % i))
            resp = client.read_response()
            assert data_of(resp)["path"] == "/again%d" % i
            assert not closes(resp)
        # A client closing a kept connection frees its place for a new one.
        clients[0].close()

        def new_connection_kept():
            client = Client(server.address)
            clients.append(client)
            client.send(request("/freed"))
            return not closes(client.read_response())

        wait_until(new_connection_kept, timeout=5, what="a freed keep-alive place")
    finally:
        for client in clients:
            client.close()


@pytest.mark.ferrocorn_only
def test_worker_at_connection_limit_closes_an_idle_connection_for_a_new_client(serve):
    # Gunicorn 27.0.1 stops accepting at worker_connections: the new client waits in the
    # backlog while silent connections each hold a thread for up to 5 s in turn.
    server = serve(*GTHREAD, "-w", "1", "--threads", "2", "--worker-connections", "4",
                   "--keep-alive", "30", APP)
    silent = [Client(server.address) for _ in range(4)]
    try:
        wait_accepted(server)
        resp, elapsed = timed(get, server.address, "/newcomer")
        assert data_of(resp)["path"] == "/newcomer"
        assert elapsed < 2.0, elapsed
        # The worker kept within its limit: one of the silent connections made room.
        wait_until(lambda: sum(not c.is_open() for c in silent) >= 1, timeout=3,
                   what="an idle connection closed to make room")
    finally:
        for client in silent:
            client.close()


# ---------------------------------------------------------------------------
# Slow clients.


@pytest.mark.ferrocorn_only
def test_slowloris_does_not_delay_normal_clients(serve):
    # Gunicorn 27.0.1: a connection that sent part of a head holds a thread in a blocking
    # read, so 4 such connections stop the worker; the normal client never gets an answer.
    raise_nofile(2500)
    server = serve(*GTHREAD, "-w", "1", "--threads", "4", "--worker-connections", "1100",
                   APP)
    slow = []
    try:
        for i in range(1000):
            sock = socket.create_connection(server.address, timeout=10)
            slow.append(sock)
            if i % 2:
                # Half send an unfinished head, half nothing at all.
                sock.sendall(b"GET /slowloris HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ")
        wait_accepted(server)
        worst = 0.0
        for i in range(15):
            resp, elapsed = timed(get, server.address, "/normal%d" % i)
            assert data_of(resp)["path"] == "/normal%d" % i
            worst = max(worst, elapsed)
            assert elapsed < 2.0, "request %d took %.2fs" % (i, elapsed)
        with Client(server.address) as client:
            for i in range(10):
                start = time.monotonic()
                client.send(request("/kept%d" % i))
                assert data_of(client.read_response())["path"] == "/kept%d" % i
                assert time.monotonic() - start < 2.0
        # The slow clients were kept waiting, not dropped to make the numbers.
        assert sum(still_open(sock) for sock in slow) == len(slow)
    finally:
        for sock in slow:
            sock.close()


@pytest.mark.ferrocorn_only
def test_slow_senders_time_out(serve):
    # Gunicorn 27.0.1: a partial head holds a thread in a blocking read with no deadline,
    # and a silent connection is dropped only after 5 s in a thread plus the keep-alive
    # timeout. ferrocorn gives a request `--timeout` seconds to arrive in full.
    server = serve(*GTHREAD, "-w", "1", "--threads", "2", "--timeout", "2", APP)
    silent = socket.create_connection(server.address, timeout=10)
    partial = socket.create_connection(server.address, timeout=10)
    partial.sendall(b"GET /never HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    trickle = socket.create_connection(server.address, timeout=10)
    trickle.sendall(request("/upload", method="POST", content_length=1000))
    start = time.monotonic()
    closed = {}
    try:
        while len(closed) < 3 and time.monotonic() - start < 8:
            try:
                trickle.sendall(b"x")
            except OSError:
                pass
            for name, sock in (("silent", silent), ("partial", partial), ("trickle", trickle)):
                if name not in closed and not still_open(sock):
                    closed[name] = time.monotonic() - start
            time.sleep(0.25)  # the trickle's pace (one byte per round) and poll interval
        assert sorted(closed) == ["partial", "silent", "trickle"], closed
        assert all(1.0 <= t <= 6.0 for t in closed.values()), closed
        # The worker itself is fine.
        assert data_of(get(server.address, "/after"))["path"] == "/after"
    finally:
        for sock in (silent, partial, trickle):
            sock.close()


def test_slowly_sent_512k_body_is_answered(serve):
    server = serve(*GTHREAD, "--threads", "2", APP)
    body = os.urandom(512 * 1024)
    with Client(server.address) as client:
        client.send(request("/upload", method="POST", content_length=len(body)))
        for offset in range(0, len(body), 32 * 1024):
            time.sleep(0.03)  # the slow sender of the scenario
            client.send(body[offset : offset + 32 * 1024])
        data = data_of(client.read_response())
    assert data["length"] == len(body)
    assert data["sha256"] == hashlib.sha256(body).hexdigest()


def test_5mib_body_streams_to_the_app(serve):
    # The app answers its first chunk after 1.5 MiB; the client sends the rest only once it
    # has seen that chunk, so a server that buffered the whole body first would never answer.
    server = serve(*GTHREAD, "--threads", "2", APP)
    body = os.urandom(5 * 1024 * 1024)
    early = 1536 * 1024
    first_part = 2 * 1024 * 1024
    go_on = threading.Event()
    errors = []

    with Client(server.address, timeout=15) as client:
        def sender():
            try:
                client.send(request("/stream?early=%d" % early, method="POST",
                                    content_length=len(body)))
                client.send(body[:first_part])
                if go_on.wait(15):
                    client.send(body[first_part:])
            except OSError as exc:
                errors.append(exc)

        thread = threading.Thread(target=sender)
        thread.start()
        try:
            head = client.read_head()
            assert head.status == 200
            assert client.read_chunk() == b"got %d\n" % early
            go_on.set()
            rest = b"".join(iter(client.read_chunk, b""))
        finally:
            go_on.set()
            thread.join(20)
    assert not errors, errors
    assert rest == b"total %d sha256 %s\n" % (len(body), hashlib.sha256(body).hexdigest().encode())


@pytest.mark.ferrocorn_only
def test_slow_senders_never_block_other_clients_with_one_thread(serve):
    # Gunicorn 27.0.1: the only thread blocks reading the trickled body (or head), so the
    # other client's GET waits until the slow upload is complete.
    server = serve(*GTHREAD, "-w", "1", "--threads", "1", APP)
    body = os.urandom(256 * 1024)
    piece = 16 * 1024
    outcome = {}
    began = {"upload": threading.Event(), "head": threading.Event()}

    def slow_upload():
        with Client(server.address, timeout=20) as client:
            client.send(request("/upload", method="POST", content_length=len(body)))
            began["upload"].set()
            for offset in range(0, len(body), piece):
                time.sleep(0.2)  # the slow sender of the scenario
                client.send(body[offset : offset + piece])
            outcome["upload"] = data_of(client.read_response())
            outcome["upload_done"] = time.monotonic()

    def slow_head():
        with Client(server.address, timeout=20) as client:
            for part in (b"GET /slowhead HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"X-A: 1\r\n",
                         b"X-B: 2\r\n", b"Connection: close\r\n", b"\r\n"):
                client.send(part)
                began["head"].set()
                time.sleep(0.5)  # the slow sender of the scenario
            outcome["head"] = data_of(client.read_response())

    threads = [threading.Thread(target=slow_upload), threading.Thread(target=slow_head)]
    for thread in threads:
        thread.start()
    try:
        # Both slow clients have sent their first bytes and the server took them in.
        for name, event in began.items():
            assert event.wait(10), "the slow %s never started" % name
        wait_accepted(server)
        for i in range(5):
            resp, elapsed = timed(get, server.address, "/quick%d" % i)
            assert data_of(resp)["path"] == "/quick%d" % i
            assert elapsed < 2.0, "request %d took %.2fs" % (i, elapsed)
            time.sleep(0.1)  # spreads the quick requests over the slow ones' time
        quick_done = time.monotonic()
    finally:
        for thread in threads:
            thread.join(20)
    assert outcome["upload"]["length"] == len(body)
    assert outcome["upload"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert outcome["head"]["path"] == "/slowhead"
    assert quick_done < outcome["upload_done"]


# ---------------------------------------------------------------------------
# Accepting only with a free thread.


@pytest.mark.ferrocorn_only
def test_busy_worker_leaves_new_connections_to_a_free_one(serve, tmp_path):
    # Gunicorn 27.0.1 (#3433, #908): the busy worker keeps accepting up to
    # worker_connections and queues those requests behind its slow one, so about half of
    # the new requests wait for it to finish.
    server = serve(*GTHREAD, "-w", "2", "--threads", "1", APP)

    def both_workers_serve():
        with ThreadPoolExecutor(2) as pool:
            resps = list(pool.map(lambda i: get(server.address, "/warm?s=0.3"), range(2)))
        return len({data_of(r)["pid"] for r in resps}) == 2

    wait_until(both_workers_serve, timeout=15, what="both workers serving")

    started, wait_started = started_marker(tmp_path)
    with Client(server.address, timeout=15) as slow:
        start = time.monotonic()
        slow.send(request("/slow?s=3&" + started, headers={"Connection": "close"}))
        wait_started()
        pids = []
        for i in range(6):
            resp, elapsed = timed(get, server.address, "/fast%d" % i)
            pids.append(data_of(resp)["pid"])
            assert elapsed < 1.5, "request %d took %.2fs" % (i, elapsed)
        fast_done = time.monotonic() - start
        slow_pid = data_of(slow.read_response())["pid"]
        slow_done = time.monotonic() - start
    assert slow_pid not in pids
    assert len(set(pids)) == 1
    assert fast_done < 2.5 < slow_done


# ---------------------------------------------------------------------------
# Graceful stop.


@pytest.mark.parametrize("target", ["master", "worker"])
def test_graceful_stop_lingers_for_kept_alive_connections(serve, tmp_path, target):
    server = serve(*GTHREAD, "-w", "1", "--threads", "2", "--keep-alive", "30",
                   "--graceful-timeout", "10", APP)
    worker = wait_until(server.worker_pids, timeout=10, what="a booted worker")[-1]
    busy = Client(server.address, timeout=15)
    idle = Client(server.address, timeout=15)
    silent = Client(server.address, timeout=15)
    try:
        for name, client in (("idle", idle), ("silent", silent)):
            client.send(request("/" + name))
            resp = client.read_response()
            assert data_of(resp)["pid"] == worker
            assert not closes(resp)
        started, wait_started = started_marker(tmp_path)
        busy.send(request("/busy?s=1.5&" + started))
        wait_started()
        stopped = time.monotonic()
        os.kill(server.master_pid if target == "master" else worker, signal.SIGTERM)
        if target == "worker":
            # The worker has begun its graceful stop.
            wait_until(lambda: stopped_listening(server, worker), timeout=5,
                       what="the worker to stop listening")
        else:
            server.wait_for_log(r"Handling signal: term")
            # The master relays TERM to the worker. Nothing outside the worker shows when it
            # has acted on it (ferrocorn's keeps listening, to take what is queued in the
            # backlog before it goes), so the relay gets a margin.
            time.sleep(0.5)

        # A request arriving on a kept connection during the linger is still answered,
        # and told the connection ends.
        idle.send(request("/late"))
        resp = idle.read_response()
        assert data_of(resp)["path"] == "/late"
        assert resp.header("x-worker-pid") == str(worker)
        assert closes(resp)
        idle.wait_eof(5)

        # The request in flight at the signal finishes.
        resp = busy.read_response()
        assert data_of(resp)["path"] == "/busy"

        # A kept connection that stays silent is closed after the ~2 s linger.
        silent.wait_eof(6)
        lingered = time.monotonic() - stopped
        assert 1.0 <= lingered <= 4.5, lingered
    finally:
        for client in (busy, idle, silent):
            client.close()
    if target == "master":
        assert server.wait_exit(10) == 0
    else:
        server.wait_for_log(r"Booting worker with pid: (?!%d\b)\d+" % worker, timeout=10)
        assert data_of(get(server.address, "/after"))["pid"] != worker


# ---------------------------------------------------------------------------
# The environ, the access log, concurrency.


@pytest.mark.parametrize("args", [GTHREAD + ("--threads", "1"), ("--threads", "4")],
                         ids=["gthread-1", "threads-alone"])
def test_wsgi_multithread_is_true(serve, args):
    server = serve(*args, APP)
    assert data_of(get(server.address, "/mt"))["multithread"] is True


ACCESS_FORMAT = "%(r)s %(s)s D=%(D)s L=%(L)s"
ACCESS_RE = re.compile(r"^(GET|POST) (\S+) HTTP/1\.1 200 D=(\d+) L=(\d+\.\d{6})$")


def test_access_log_has_one_line_per_request_with_its_time(serve, tmp_path):
    log = tmp_path / "access.log"
    server = serve(*GTHREAD, "--threads", "2", "--access-logfile", str(log),
                   "--access-logformat", ACCESS_FORMAT, APP)
    paths = ["/log%d" % i for i in range(4)] + ["/logslow?s=0.3"]
    with Client(server.address) as client:
        for path in paths:
            client.send(request(path))
            data_of(client.read_response())

    def our_lines():
        lines = [ln for ln in log.read_text().splitlines() if " /log" in ln]
        return lines if len(lines) >= len(paths) else None

    lines = wait_until(our_lines, timeout=5, what="access log lines")
    by_path = {}
    for line in lines:
        m = ACCESS_RE.match(line)
        assert m, line
        by_path.setdefault(m.group(2), []).append((int(m.group(3)), float(m.group(4))))
    assert sorted(by_path) == sorted(paths)
    for path, entries in by_path.items():
        assert len(entries) == 1, (path, entries)
        micros, seconds = entries[0]
        assert abs(micros / 1e6 - seconds) < 0.001, (path, micros, seconds)
        if "slow" in path:
            assert micros >= 300000, (path, micros)
        else:
            assert micros < 300000, (path, micros)


def test_threads_run_the_app_concurrently(serve, tmp_path):
    log = tmp_path / "access.log"
    server = serve(*GTHREAD, "-w", "1", "--threads", "4", "--access-logfile", str(log),
                   "--access-logformat", ACCESS_FORMAT, APP)
    start = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        resps = list(pool.map(lambda i: get(server.address, "/par%d?s=1" % i, timeout=15),
                              range(4)))
    elapsed = time.monotonic() - start
    datas = [data_of(r) for r in resps]
    assert len({d["pid"] for d in datas}) == 1
    assert len({d["thread"] for d in datas}) == 4
    assert elapsed < 2.5, elapsed
    # Four threads logging at once still write four whole lines.
    lines = wait_until(
        lambda: (lambda ls: ls if len(ls) >= 4 else None)(
            [ln for ln in log.read_text().splitlines() if " /par" in ln]),
        timeout=5, what="access log lines")
    assert len(lines) == 4
    for line in lines:
        m = ACCESS_RE.match(line)
        assert m, line
        assert int(m.group(3)) >= 1000000


def test_a_cpu_bound_request_does_not_stall_the_others(serve, tmp_path):
    """One thread spinning in Python for 3 s shares the GIL: short requests on other
    connections are answered meanwhile, each well within a second."""
    server = serve(*GTHREAD, "-w", "1", "--threads", "4", APP)
    assert get(server.address, "/warm").status == 200
    started, wait_started = started_marker(tmp_path)
    with ThreadPoolExecutor(1) as pool:
        spinning = pool.submit(get, server.address, "/spin?spin=3&" + started, timeout=20)
        wait_started()
        assert not spinning.done()
        for i in range(5):
            start = time.monotonic()
            resp = get(server.address, "/quick%d" % i, timeout=10)
            assert resp.status == 200
            assert time.monotonic() - start < 1.0
        assert not spinning.done(), "the short requests should not have waited for it"
        assert spinning.result().status == 200


@pytest.mark.parametrize("split", [False, True], ids=["one-write", "body-later"])
def test_body_cut_short_by_the_client_closing_reaches_the_app(serve, split):
    """A client that half-closes before sending all of its Content-Length still gets an
    answer: the app reads what came (Gunicorn's length reader stops at EOF)."""
    server = serve(*GTHREAD, "-w", "1", "--threads", "2", APP)
    body = b"x" * 9000
    head = request("/upload", method="POST", content_length=20000)
    with Client(server.address) as client:
        if split:
            client.send(head + body[:100])
            time.sleep(0.3)  # the client's pause mid-body is the scenario
            client.send(body[100:])
        else:
            client.send(head + body)
        client.sock.shutdown(socket.SHUT_WR)
        resp = client.read_response()
    data = data_of(resp)
    assert data["length"] == len(body)
    assert data["sha256"] == hashlib.sha256(body).hexdigest()
