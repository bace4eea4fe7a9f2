"""The ASGI worker's connections: keep-alive, pipelining, `--keep-alive 0`, Connection:
close and HTTP/1.0, malformed requests, the access log, the pre_request/post_request
hooks, `--worker-connections`, the `--threads` warning, and a blocked event loop killed
by `--timeout`."""

from __future__ import annotations

import json
import re
import textwrap
import threading
import time

import pytest

from asgi_support import Client, json_body, report_on_failure, request_bytes, shared_server, start
from conftest import RawResponse, raw_request, wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def _shared(tmp_path_factory):
    # Small request limits for the malformed-request tests; the other tests stay below.
    yield from shared_server(tmp_path_factory, "asgi-connection",
                             ["--limit-request-line", "200",
                              "--limit-request-field_size", "100"])


@pytest.fixture
def server(request, _shared):
    yield _shared
    report_on_failure(request, _shared)


def still_serving(server):
    raw = raw_request(server.address, request_bytes("/", headers=[("Connection", "close")]))
    assert RawResponse(raw).body == b"ok"


# ---------------------------------------------------------------------------
# Keep-alive


def test_two_requests_on_one_connection(server):
    with Client(server.address) as conn:
        first = conn.request("/scope?n=1")
        assert first.header("connection") is None
        second = conn.request("/scope?n=2")
        assert json_body(first)["client"] == json_body(second)["client"]
        assert json_body(second)["query_string"] == "n=2"


def test_pipelined_requests_are_answered_in_order(server):
    with Client(server.address) as conn:
        conn.send(request_bytes("/respond?cl=1&b=one")
                  + request_bytes("/body", method="POST", body=b"0123456789")
                  + request_bytes("/stream?n=2&size=3")
                  + request_bytes("/respond?cl=1&b=four", headers=[("Connection", "close")]))
        assert conn.read_response().raw_body == b"one"
        assert json_body(conn.read_response())["total"] == 10
        assert conn.read_response().body == b"aaabbb"
        last = conn.read_response()
        assert last.raw_body == b"four"
        assert last.header("connection") == "close"
        assert conn.closed_by_server(timeout=5)


def test_connection_close_is_honoured(server):
    with Client(server.address) as conn:
        resp = conn.request("/respond?cl=1&b=x", headers=[("Connection", "close")])
        assert resp.header("connection") == "close"
        assert conn.closed_by_server(timeout=5)


def test_http10_closes_unless_keep_alive_is_asked(server):
    with Client(server.address) as conn:
        resp = conn.request("/respond?cl=1&b=x", version="HTTP/1.0")
        assert resp.status_line == "HTTP/1.0 200 OK"
        assert conn.closed_by_server(timeout=5)
    with Client(server.address) as conn:
        keep = [("Connection", "keep-alive")]
        assert conn.request("/respond?cl=1&b=x", version="HTTP/1.0", headers=keep).raw_body == b"x"
        resp = conn.request("/respond?cl=1&b=y", version="HTTP/1.0", headers=keep)
        assert resp.status_line == "HTTP/1.0 200 OK"
        assert resp.raw_body == b"y"


def test_idle_connection_is_closed_after_the_keep_alive_timeout(server):
    # Gunicorn's default keep-alive is 2 seconds.
    with Client(server.address) as conn:
        assert conn.request("/").body == b"ok"
        started = time.monotonic()
        assert conn.closed_by_server(timeout=10)
        assert 1.0 < time.monotonic() - started < 6


def test_keep_alive_0_closes_after_each_response(serve, tmp_path):
    server = start(serve, tmp_path, "--keep-alive", "0")
    with Client(server.address) as conn:
        resp = conn.request("/respond?cl=1&b=x")
        assert resp.raw_body == b"x"
        assert resp.header("connection") == "close"
        assert conn.closed_by_server(timeout=5)


# ---------------------------------------------------------------------------
# Malformed requests: Gunicorn answers `HTTP/1.1 <code> <reason>` with Content-Type
# text/plain, a short message as the body and Connection: close, then closes.


@pytest.mark.parametrize("data, status_line", [
    (b"GARBAGE\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    (b"GET / HTTP/2.5\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
     "HTTP/1.1 400 Bad Request"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     "HTTP/1.1 400 Bad Request"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n",
     "HTTP/1.1 501 Not Implemented"),
    # --limit-request-line 200
    (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 414 URI Too Long"),
    # --limit-request-field_size 100
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 200 + b"\r\n\r\n",
     "HTTP/1.1 431 Request Header Fields Too Large"),
], ids=["request-line", "version", "no-colon", "two-lengths", "bad-length", "chunk-size",
        "transfer-coding", "line-too-long", "field-too-large"])
def test_malformed_request(server, data, status_line):
    with Client(server.address) as conn:
        conn.send(data)
        raw = conn.read_to_eof()
    resp = RawResponse(raw)
    assert resp.status_line == status_line
    assert resp.header("connection") == "close"
    still_serving(server)


# ---------------------------------------------------------------------------
# Access log

ACCESS_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s "%(a)s" %(D)s %({x-test}i)s'


def test_access_log_custom_format(serve, tmp_path):
    server = start(serve, tmp_path, "--access-logfile", "-", "--access-logformat", ACCESS_FORMAT,
                   ready_path="/ready")
    with Client(server.address) as conn:
        conn.request("/respond?cl=1&b=hello",
                     headers=[("User-Agent", "ua-test/1.0"), ("X-Test", "first")])
        conn.request("/stream?n=2&size=3&delay=0.2", headers=[("X-Test", "second")])
        conn.request("/respond?status=404&cl=1&b=gone", method="HEAD")
    raw_request(server.address, request_bytes("/no-response", version="HTTP/1.0"))

    def ours():
        lines = [line for line in server.stdout_text().splitlines() if "/ready" not in line]
        return lines if len(lines) >= 4 else None

    lines = wait_until(ours, timeout=10, what="four access log lines")
    assert len(lines) == 4, lines
    pattern = re.compile(r'^(\S+) "([^"]*)" (\d{3}) (\S+) "([^"]*)" (\d+) (\S+)$')
    parsed = [pattern.match(line) for line in lines]
    assert all(parsed), lines
    fields = [m.groups() for m in parsed]
    # h, r, s, b (body bytes sent), a, D (microseconds), {x-test}i
    assert [f[:5] + f[6:] for f in fields] == [
        ("127.0.0.1", "GET /respond?cl=1&b=hello HTTP/1.1", "200", "5", "ua-test/1.0", "first"),
        ("127.0.0.1", "GET /stream?n=2&size=3&delay=0.2 HTTP/1.1", "200", "6", "-", "second"),
        ("127.0.0.1", "HEAD /respond?status=404&cl=1&b=gone HTTP/1.1", "404", "0", "-", "-"),
        ("127.0.0.1", "GET /no-response HTTP/1.0", "500", "0", "-", "-"),
    ]
    durations = [int(f[5]) for f in fields]
    assert durations[1] >= 400_000  # two 0.2 s sleeps in the app
    assert durations[0] < 400_000
    # The access log goes to stdout only.
    assert "/respond" not in server.stderr_text()


# ---------------------------------------------------------------------------
# Hooks

HOOKS_CONF = textwrap.dedent(
    """
    import json, os

    def _rec(**fields):
        with open(os.environ["HOOK_LOG"], "a") as f:
            f.write(json.dumps(fields) + "\\n")

    def pre_request(worker, req):
        _rec(hook="pre_request", pid=os.getpid(), worker_pid=worker.pid, method=req.method,
             path=req.path, query=req.query, uri=req.uri, version=list(req.version),
             headers=[list(h) for h in req.headers])

    def post_request(worker, req, environ, resp):
        _rec(hook="post_request", pid=os.getpid(), worker_pid=worker.pid, method=req.method,
             path=req.path,
             environ=None if environ is None else {
                 k: environ.get(k) for k in ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING",
                                             "RAW_URI", "SERVER_PROTOCOL", "HTTP_X_TEST")},
             status=None if resp is None else resp.status,
             sent=None if resp is None else getattr(resp, "sent", None))
    """
)


def hook_records(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("access_log", [True, False], ids=["access-log", "no-access-log"])
def test_pre_and_post_request_hooks(serve, tmp_path, access_log):
    conf = tmp_path / "hooks.conf.py"
    conf.write_text(HOOKS_CONF)
    log = tmp_path / "hooks.jsonl"
    extra = ["--access-logfile", str(tmp_path / "access.log")] if access_log else []
    server = start(serve, tmp_path, "-c", str(conf), *extra, env={"HOOK_LOG": str(log)},
                   ready_path="/ready")
    with Client(server.address) as conn:
        conn.request("/respond?status=201&cl=1&b=hello", headers=[("X-Test", "yes")])
        conn.request("/stream?n=2&size=3")

    def ours():
        found = [r for r in hook_records(log) if r["path"] != "/ready"]
        return found if len(found) >= 4 else None

    calls = wait_until(ours, timeout=10, what="four hook calls")
    assert [(c["hook"], c["path"]) for c in calls] == [
        ("pre_request", "/respond"), ("post_request", "/respond"),
        ("pre_request", "/stream"), ("post_request", "/stream")]
    for call in calls:
        # Both run in the worker, with the worker object.
        assert call["pid"] == call["worker_pid"] != server.proc.pid
        assert call["method"] == "GET"
    pre = calls[0]
    assert pre["query"] == "status=201&cl=1&b=hello"
    assert pre["uri"] == "/respond?status=201&cl=1&b=hello"
    assert pre["version"] == [1, 1]
    assert ["X-TEST", "yes"] in pre["headers"]
    if access_log:
        # Gunicorn 27 gives post_request the environ and the response only when access
        # logging is on (else both are None).
        post = calls[1]
        assert post["environ"] == {
            "REQUEST_METHOD": "GET", "PATH_INFO": "/respond",
            "QUERY_STRING": "status=201&cl=1&b=hello",
            "RAW_URI": "/respond?status=201&cl=1&b=hello", "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_X_TEST": "yes"}
        assert post["status"] == 201
        assert post["sent"] == 5
        assert calls[3]["status"] == 200 and calls[3]["sent"] == 6


# ---------------------------------------------------------------------------
# Worker settings


def test_threads_setting_is_warned_about(serve, tmp_path):
    server = start(serve, tmp_path, "--threads", "4")
    server.wait_for_log(r"\[WARNING\] ASGI worker does not use threads configuration\. "
                        r"Use worker_connections instead\.$")
    still_serving(server)


@pytest.mark.ferrocorn_only
def test_worker_connections_limits_concurrent_connections(serve, tmp_path):
    # Gunicorn 27 does not enforce worker_connections in the ASGI worker: all three run
    # at once there.
    server = start(serve, tmp_path, "--worker-connections", "2")
    results = []

    def one():
        raw = raw_request(server.address, request_bytes("/inflight?delay=1",
                                                        headers=[("Connection", "close")]))
        results.append(RawResponse(raw).body)

    started = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    elapsed = time.monotonic() - started
    assert results == [b"done"] * 3
    # The third connection waited until one of the first two finished.
    assert elapsed >= 1.9
    with Client(server.address) as conn:
        assert conn.request("/max-inflight").body == b"2"


def test_blocked_event_loop_is_killed_by_the_timeout(serve, tmp_path):
    server = start(serve, tmp_path, "--timeout", "2")
    server.wait_for_log(r"Booting worker with pid: \d+")
    (first,) = server.worker_pids()
    started = time.monotonic()
    with Client(server.address, timeout=20) as conn:
        conn.send(request_bytes("/block?s=10"))
        # The worker dies with the request (Gunicorn 27: the client gets nothing).
        assert b"unblocked" not in conn.read_to_eof(timeout=15)
    assert time.monotonic() - started < 9
    server.wait_for_log(r"\[CRITICAL\] WORKER TIMEOUT \(pid:%d\)" % first)
    wait_until(lambda: len(server.worker_pids()) >= 2, timeout=10, what="a new worker")
    still_serving(server)
    assert server.worker_pids()[-1] != first
