"""StatsD: what the server sends to `--statsd-host`, line by line.

A receiver of our own (UDP on 127.0.0.1:0, [::1]:0, or a unix datagram socket in
tmp_path) collects every datagram. Gunicorn sends one metric per datagram; ferrocorn may
pack several into one, separated by "\\n", so every datagram is split and the tests only
compare lines (tests/metrics_support.py).

Per request, with or without an access log: `gunicorn.requests:1|c|@1.0`,
`gunicorn.request.status.<code>:1|c|@1.0` and `gunicorn.request.duration:<float ms>|ms`.
From the master: `gunicorn.workers:<n>|g` and, with --enable-backlog-metric,
`gunicorn.backlog:<n>|h`. From every log call at warning and above:
`gunicorn.log.<level>:1|c|@1.0`. From any log call with
`extra={"metric", "value", "mtype"}`: that metric.

Deliberate ferrocorn differences (`ferrocorn_only`, with Gunicorn's behaviour pinned in a
twin test that only runs against Gunicorn): a one-character prefix gets its dot, the
workers gauge is re-sent about every second, a unix listener does not skew the backlog by
-1, a collector that is down is not reported in the error log on every send, and the ASGI
worker sends the per-request metrics without an access log too (Gunicorn 27.0.1's skips
them along with the access log line).
"""

import collections
import re
import signal
import socket
import textwrap
import threading

import pytest
import requests

from conftest import ipv6_loopback_available, is_gunicorn, wait_until
from metrics_support import (
    DURATION_VALUE_RE,
    StatsdReceiver,
    request_lines,
    wait_request_lines,
)

pytestmark = pytest.mark.timeout(60)

gunicorn_only = pytest.mark.skipif(
    not is_gunicorn(), reason="pins Gunicorn's behaviour, which ferrocorn deliberately changes"
)

APP = "metrics_app:app"
ASGI_APP = "metrics_asgi:app"

KIND_PARAMS = [
    pytest.param(("-k", "sync"), id="sync"),
    pytest.param(("-k", "gthread", "--threads", "4"), id="gthread"),
    pytest.param(("-k", "asgi"), id="asgi"),
]

# 3x GET / (200), GET /missing (404), POST /things (201), GET /boom (the app raises: 500).
SCRIPT = [("GET", "/", 200)] * 3 + [
    ("GET", "/missing", 404),
    ("POST", "/things", 201),
    ("GET", "/boom", 500),
]


def app_for(kind) -> str:
    return ASGI_APP if "asgi" in kind else APP


def send(url, script=SCRIPT):
    """Send each (method, path, status) of `script`, checking the status."""
    for method, path, status in script:
        resp = requests.request(method, url + path, data=b"payload" if method == "POST" else None,
                              timeout=10)
        assert resp.status_code == status, (method, path, resp.status_code, resp.text[:200])
    return [status for _, _, status in script]


@pytest.fixture
def statsd():
    receiver = StatsdReceiver("udp")
    yield receiver
    receiver.close()


@pytest.fixture
def statsd_unix(tmp_path):
    receiver = StatsdReceiver("unix", tmp_path / "statsd.sock")
    yield receiver
    receiver.close()


def start(serve, receiver, *args, **kw):
    """A server sending to `receiver`. `ready="port"`: the readiness check only connects,
    so every request the server answers is one the test sent."""
    kw.setdefault("ready", "port")
    return serve("--statsd-host", receiver.host, *args, **kw)


def queue_connections(address, count: int) -> list:
    """`count` connections that each sent a whole request and now wait to be accepted."""
    socks = []
    for _ in range(count):
        sock = socket.create_connection(address, timeout=10)
        sock.sendall(b"GET /queued HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        socks.append(sock)
    return socks


def drain(socks):
    """Read each queued connection's response; each must be a 200."""
    for sock in socks:
        with sock:
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            assert data.startswith(b"HTTP/1.1 200"), data[:200]


def hold_worker(server, tmp_path, name="hold"):
    """Keep one worker in the app (GET /sleep?release=...) until the returned `release()`."""
    started = tmp_path / ("%s.started" % name)
    gate = tmp_path / ("%s.release" % name)
    result = {}

    def call():
        result["resp"] = requests.get(
            server.url + "/sleep", params={"started": str(started), "release": str(gate), "s": 20},
            timeout=30)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    wait_until(started.exists, what="the held request to reach the app")

    def release():
        gate.write_text("go")
        thread.join(30)
        assert result["resp"].status_code == 200

    return release


# ---------------------------------------------------------------------------
# Per-request metrics.


def _kind_and_access_log():
    for kind in KIND_PARAMS:
        for access_log in (False, True):
            marks = ()
            if kind.id == "asgi" and not access_log:
                # Gunicorn's ASGI worker skips log.access, and with it the StatsD request
                # metrics, when no access log is configured (the twin below).
                marks = (pytest.mark.ferrocorn_only,)
            yield pytest.param(kind.values[0], access_log, marks=marks, id="%s-%s" % (
                kind.id, "access-log" if access_log else "no-access-log"))


@pytest.mark.parametrize("kind,access_log", list(_kind_and_access_log()))
def test_request_metrics_are_exactly_one_set_per_request(serve, statsd, kind, access_log):
    args = ["--access-logfile", "-"] if access_log else []
    server = start(serve, statsd, *kind, *args, app_for(kind))
    statuses = send(server.url)
    wait_request_lines(statsd, statuses)
    lines = statsd.lines()
    # 3 x 200, 404, 201, 500; each answer exactly once.
    counts = request_lines(lines)
    assert counts["gunicorn.request.status.200:1|c|@1.0"] == 3
    for status in (404, 201, 500):
        assert counts["gunicorn.request.status.%d:1|c|@1.0" % status] == 1
    for line in lines:
        if line.startswith("gunicorn.request.duration:"):
            assert re.fullmatch(r"gunicorn\.request\.duration:" + DURATION_VALUE_RE + r"\|ms", line)
    statsd.assert_well_formed()
    if access_log:
        wait_until(lambda: server.stdout_text().count('"GET /boom ') == 1, what="the access log")
    else:
        # No access log configured: nothing on stdout, yet every request was sent above.
        assert server.stdout_text() == ""


@gunicorn_only
def test_gunicorn_asgi_worker_sends_no_request_metrics_without_an_access_log(serve, statsd):
    server = start(serve, statsd, "-k", "asgi", "--enable-backlog-metric", ASGI_APP)
    send(server.url, [("GET", "/", 200), ("GET", "/boom", 500)])
    statsd.wait_count(r"gunicorn\.log\.exception:1\|c\|@1\.0")
    # The master's loop (~1 s a pass) sends the backlog: a clock to wait two passes by.
    mark = statsd.mark()
    statsd.wait_count(r"gunicorn\.backlog:\d+\|h", count=2, since=mark)
    assert statsd.count(r"gunicorn\.request.*") == 0, statsd.dump()


def test_request_metrics_over_a_unix_datagram_socket(serve, statsd_unix):
    server = start(serve, statsd_unix, APP)
    script = [("GET", "/", 200), ("GET", "/a", 200), ("GET", "/missing", 404)]
    wait_request_lines(statsd_unix, send(server.url, script))
    statsd_unix.wait_count(r"gunicorn\.workers:1\|g")
    statsd_unix.assert_well_formed()


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback")
def test_request_metrics_to_an_ipv6_collector(serve):
    receiver = StatsdReceiver("udp6")
    try:
        server = start(serve, receiver, APP)
        wait_request_lines(receiver, send(server.url, [("GET", "/", 200)]))
        receiver.assert_well_formed()
    finally:
        receiver.close()


def test_request_durations_are_milliseconds(serve, statsd, tmp_path):
    server = start(serve, statsd, APP)
    requests.get(server.url + "/sleep?s=0.3", timeout=10).raise_for_status()
    requests.get(server.url + "/", timeout=10).raise_for_status()
    (slow, fast) = statsd.wait_count(
        r"gunicorn\.request\.duration:(" + DURATION_VALUE_RE + r")\|ms", count=2)
    assert 300.0 <= float(slow.group(1)) < 5000.0, slow.group(0)
    assert 0.0 <= float(fast.group(1)) < 300.0, fast.group(0)


# ---------------------------------------------------------------------------
# Prefix and tags.


@pytest.mark.parametrize("prefix,written", [
    ("app", "app."),
    ("app.", "app."),
    ("app..", "app."),
    ("my.app", "my.app."),
])
def test_prefix_gets_exactly_one_trailing_dot(serve, statsd, prefix, written):
    server = start(serve, statsd, "--statsd-prefix", prefix, APP)
    script = [("GET", "/", 200), ("GET", "/missing", 404)]
    wait_request_lines(statsd, send(server.url, script), prefix=written)
    statsd.wait_count(re.escape(written) + r"gunicorn\.workers:1\|g")
    statsd.assert_well_formed()
    unprefixed = [line for line in statsd.lines() if not line.startswith(written + "gunicorn.")]
    assert not unprefixed, unprefixed


@pytest.mark.ferrocorn_only
def test_one_character_prefix_gets_its_dot(serve, statsd):
    # Gunicorn's prefix regex needs two characters, so `a` stays `a` (see the twin below).
    server = start(serve, statsd, "--statsd-prefix", "a", APP)
    wait_request_lines(statsd, send(server.url, [("GET", "/", 200)]), prefix="a.")
    statsd.wait_count(r"a\.gunicorn\.workers:1\|g")
    assert not [line for line in statsd.lines() if line.startswith("agunicorn")]


@gunicorn_only
def test_gunicorn_one_character_prefix_has_no_dot(serve, statsd):
    server = start(serve, statsd, "--statsd-prefix", "a", APP)
    wait_request_lines(statsd, send(server.url, [("GET", "/", 200)]), prefix="a")
    statsd.wait_count(r"agunicorn\.workers:1\|g")


def test_dogstatsd_tags_end_every_line(serve, statsd):
    tags = "env:prod,team:x"
    server = start(serve, statsd, "--dogstatsd-tags", tags, "--enable-backlog-metric", APP)
    suffix = "|#" + tags
    wait_request_lines(statsd, send(server.url), suffix=suffix)
    statsd.wait_count(re.escape("gunicorn.requests:1|c|@1.0|#env:prod,team:x"), count=6)
    statsd.wait_count(r"gunicorn\.request\.duration:" + DURATION_VALUE_RE
                      + re.escape("|ms|#env:prod,team:x"), count=6)
    statsd.wait_count(re.escape("gunicorn.workers:1|g|#env:prod,team:x"))
    statsd.wait_count(r"gunicorn\.backlog:\d+" + re.escape("|h|#env:prod,team:x"))
    statsd.wait_count(re.escape("gunicorn.log.exception:1|c|@1.0|#env:prod,team:x"))
    statsd.assert_well_formed()
    untagged = [line for line in statsd.lines() if not line.endswith(suffix)]
    assert not untagged, untagged


# ---------------------------------------------------------------------------
# The master's metrics: workers and backlog.


def test_workers_gauge_follows_the_worker_count(serve, statsd):
    server = start(serve, statsd, "-w", "2", APP)
    statsd.wait_count(r"gunicorn\.workers:2\|g")
    server.wait_for_log(r"Booting worker with pid: \d+", count=2)
    # Never a count that was not true (no 0 while the workers boot, say).
    values = [m.group(1) for m in statsd.matching(r"gunicorn\.workers:(-?\d+)\|g")]
    assert set(values) == {"2"}, values
    mark = statsd.mark()
    server.send_signal(signal.SIGTTIN)
    statsd.wait_count(r"gunicorn\.workers:3\|g", since=mark)
    mark = statsd.mark()
    server.send_signal(signal.SIGTTOU)
    statsd.wait_count(r"gunicorn\.workers:2\|g", since=mark)
    statsd.assert_well_formed()


@pytest.mark.ferrocorn_only
def test_workers_gauge_is_resent_about_every_second(serve, statsd):
    # Gunicorn sends it only when the count changes (the twin below), so a collector that
    # expires gauges (Datadog, Gunicorn issue #2882) sees the workers drop to 0.
    start(serve, statsd, APP)
    found = statsd.wait_count(r"gunicorn\.workers:1\|g", count=3, timeout=6)
    assert len(found) >= 3
    times = [t for t, line in statsd.timed_lines() if line == "gunicorn.workers:1|g"]
    assert times[2] - times[0] >= 0.5, "re-sent too fast: %s" % times


@gunicorn_only
def test_gunicorn_sends_the_workers_gauge_only_on_change(serve, statsd):
    # The backlog metric goes out on every pass of the master's loop (~1 s): a clock.
    start(serve, statsd, "--enable-backlog-metric", APP)
    statsd.wait_count(r"gunicorn\.workers:1\|g")
    mark = statsd.mark()
    statsd.wait_count(r"gunicorn\.backlog:\d+\|h", count=4, since=mark)
    assert statsd.count(r"gunicorn\.workers:.*") == 1, statsd.dump()


def test_backlog_metric_counts_connections_waiting_to_be_accepted(serve, statsd, tmp_path):
    server = start(serve, statsd, "--enable-backlog-metric", APP)
    statsd.wait_count(r"gunicorn\.backlog:0\|h")
    # The only (sync) worker is busy, so three more connections wait in the accept queue.
    release = hold_worker(server, tmp_path)
    mark = statsd.mark()
    queued = queue_connections(server.address, 3)
    try:
        statsd.wait_count(r"gunicorn\.backlog:3\|h", since=mark)
    finally:
        release()
        drain(queued)
    mark = statsd.mark()
    statsd.wait_count(r"gunicorn\.backlog:0\|h", since=mark)
    values = [int(m.group(1)) for m in statsd.matching(r"gunicorn\.backlog:(-?\d+)\|h")]
    assert min(values) >= 0 and max(values) <= 3, values
    statsd.assert_well_formed()


def test_no_backlog_metric_unless_enabled(serve, statsd):
    server = start(serve, statsd, "-w", "2", APP)
    # The master has sent its workers gauge; requests come back after that.
    statsd.wait_count(r"gunicorn\.workers:2\|g")
    wait_request_lines(statsd, send(server.url, [("GET", "/", 200)] * 3))
    assert statsd.count(r"gunicorn\.backlog:.*") == 0, statsd.dump()


@pytest.mark.ferrocorn_only
def test_unix_listener_does_not_skew_the_backlog(serve, statsd, tmp_path):
    # Gunicorn counts -1 for every unix listener, and drops a negative total (the twin).
    sock_path = tmp_path / "b.sock"
    server = start(serve, statsd, "-b", "unix:%s" % sock_path, "--enable-backlog-metric", APP)
    statsd.wait_count(r"gunicorn\.backlog:0\|h", count=2)
    release = hold_worker(server, tmp_path)
    mark = statsd.mark()
    queued = queue_connections(server.address, 2)
    try:
        statsd.wait_count(r"gunicorn\.backlog:2\|h", since=mark)
    finally:
        release()
        drain(queued)
    values = [int(m.group(1)) for m in statsd.matching(r"gunicorn\.backlog:(-?\d+)\|h")]
    assert min(values) >= 0, values


@gunicorn_only
def test_gunicorn_unix_listener_skews_the_backlog_by_minus_one(serve, statsd, tmp_path):
    sock_path = tmp_path / "b.sock"
    server = start(serve, statsd, "-b", "unix:%s" % sock_path, "--enable-backlog-metric", APP)
    release = hold_worker(server, tmp_path)
    queued = queue_connections(server.address, 2)
    try:
        # Two connections wait, the metric says one (2 + -1 for the unix listener).
        statsd.wait_count(r"gunicorn\.backlog:1\|h")
    finally:
        release()
        drain(queued)
    values = [int(m.group(1)) for m in statsd.matching(r"gunicorn\.backlog:(-?\d+)\|h")]
    # Never the true 2. (An idle server's total is -1 and is not sent at all; a 0 shows up
    # only while one connection waits.)
    assert max(values) == 1 and min(values) >= 0, values


# ---------------------------------------------------------------------------
# Log counters and custom metrics.


LOG_HOOKS = textwrap.dedent(
    """
    def post_request(worker, req, environ, resp):
        if req.path != "/logs":
            return
        worker.log.warning("hook warning")
        worker.log.error("hook error")
        worker.log.critical("hook critical")
        try:
            raise ValueError("hook exception")
        except ValueError:
            worker.log.exception("hook exception")
        worker.log.info("hook info")
        worker.log.debug("hook debug")
        worker.log.info("hook done", extra={"metric": "hook.done", "value": 1, "mtype": "gauge"})
    """
)


def test_log_calls_count_by_level(serve, statsd, tmp_path):
    conf = tmp_path / "hooks.conf.py"
    conf.write_text(LOG_HOOKS)
    server = start(serve, statsd, "-c", conf, APP)
    requests.get(server.url + "/logs", timeout=10).raise_for_status()
    statsd.wait_count(r"hook\.done:1\|g")
    server.wait_for_log(r"\[INFO\] hook done$")
    levels = collections.Counter(
        m.group(1) for m in statsd.matching(r"gunicorn\.log\.(\w+):1\|c\|@1\.0"))
    # One each; `exception` does not also count as `error`; info and debug are not counted.
    assert levels == {"warning": 1, "error": 1, "critical": 1, "exception": 1}, statsd.dump()
    assert statsd.count(r"gunicorn\.log\..*") == 4, statsd.dump()
    statsd.assert_well_formed()


def test_app_exception_counts_once_as_exception(serve, statsd):
    server = start(serve, statsd, APP)
    wait_request_lines(statsd, send(server.url, [("GET", "/boom", 500), ("GET", "/", 200)]))
    server.wait_for_log(r"\[ERROR\] Error handling request")
    assert statsd.count(r"gunicorn\.log\.exception:1\|c\|@1\.0") == 1, statsd.dump()
    assert statsd.count(r"gunicorn\.log\.error:.*") == 0, statsd.dump()


def test_invalid_request_counts_a_warning_and_no_request(serve, statsd):
    server = start(serve, statsd, APP)
    response = socket.create_connection(server.address, timeout=10)
    with response:
        response.sendall(b"GARBAGE\r\n\r\n")
        data = b""
        while True:
            chunk = response.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 "), data[:200]
    server.wait_for_log(r"\[WARNING\] Invalid request from ip=127\.0\.0\.1: ")
    statsd.wait_count(r"gunicorn\.log\.warning:1\|c\|@1\.0")
    # Then one good request: its metrics arrive after anything the bad one caused.
    wait_request_lines(statsd, send(server.url, [("GET", "/after", 200)]))
    assert statsd.count(r"gunicorn\.log\.warning:.*") == 1, statsd.dump()
    assert statsd.count(r"gunicorn\.log\..*") == 1, statsd.dump()


def test_worker_timeout_counts_a_critical(serve, statsd, tmp_path):
    # The master's "WORKER TIMEOUT" line. (Gunicorn also counts the killed request: the
    # abort raises SystemExit in the app, logged as "Error handling request" with a 500
    # access entry, hence gunicorn.log.exception and gunicorn.request.status.500.)
    server = start(serve, statsd, "--timeout", "2", APP)
    worker = int(server.wait_for_log(r"Booting worker with pid: (\d+)")[0].group(1))
    threading.Thread(
        target=lambda: requests.get(server.url + "/sleep?s=30", timeout=30), daemon=True
    ).start()
    server.wait_for_log(r"\[CRITICAL\] WORKER TIMEOUT \(pid:%s\)" % worker, timeout=20)
    statsd.wait_count(r"gunicorn\.log\.critical:1\|c\|@1\.0")
    server.wait_for_log(r"Booting worker with pid: \d+", count=2)
    assert statsd.count(r"gunicorn\.log\.critical:.*") == 1, statsd.dump()


CUSTOM_HOOKS = textwrap.dedent(
    """
    def post_fork(server, worker):
        server.log.info("forked", extra={"metric": "my.forked", "value": worker.pid,
                                         "mtype": "gauge"})

    def post_request(worker, req, environ, resp):
        if req.path != "/custom":
            return
        log = worker.log
        log.info("m", extra={"metric": "my.gauge", "value": 7, "mtype": "gauge"})
        log.info("c", extra={"metric": "my.counter", "value": 3, "mtype": "counter"})
        log.info("h", extra={"metric": "my.hist", "value": 5, "mtype": "histogram"})
        log.info("t", extra={"metric": "my.timer", "value": 12.5, "mtype": "timer"})
        log.info("z", extra={"metric": "my.zero", "value": 0, "mtype": "gauge"})
        # Below the log level: no line, but the metric still goes out.
        log.debug("d", extra={"metric": "my.debug", "value": 2, "mtype": "gauge"})
        # An empty message: the metric alone, no log line.
        log.info("", extra={"metric": "my.silent", "value": 4, "mtype": "gauge"})
        # Skipped: no value, an unknown type.
        log.info("n", extra={"metric": "my.none", "value": None, "mtype": "gauge"})
        log.info("u", extra={"metric": "my.unknown", "value": 1, "mtype": "meter"})
        log.info("end", extra={"metric": "my.end", "value": 1, "mtype": "gauge"})
    """
)


def test_log_extra_emits_custom_metrics(serve, statsd, tmp_path):
    conf = tmp_path / "custom.conf.py"
    conf.write_text(CUSTOM_HOOKS)
    server = start(serve, statsd, "-c", conf, APP)
    worker = int(server.wait_for_log(r"Booting worker with pid: (\d+)")[0].group(1))
    statsd.wait_count(r"my\.forked:%d\|g" % worker)
    requests.get(server.url + "/custom", timeout=10).raise_for_status()
    statsd.wait_count(r"my\.end:1\|g")
    custom = [line for line in statsd.lines() if line.startswith("my.")]
    assert custom == [
        "my.forked:%d|g" % worker,
        "my.gauge:7|g",
        "my.counter:3|c|@1.0",
        "my.hist:5|h",
        "my.timer:12.5|ms",
        "my.zero:0|g",
        "my.debug:2|g",
        "my.silent:4|g",
        "my.end:1|g",
    ], statsd.dump()
    server.wait_for_log(r"\[INFO\] end$")
    messages = [(level, msg) for _, level, msg in server.log_lines()]
    for msg in ("m", "c", "h", "t", "z", "n", "u"):
        assert ("INFO", msg) in messages, msg
    assert ("DEBUG", "d") not in messages
    assert not [m for m in messages if m[1] == ""], "a line for the empty message"
    statsd.assert_well_formed()


# ---------------------------------------------------------------------------
# A collector that is down.


def closed_udp_port() -> int:
    """A loopback UDP port nothing listens on (bound for a moment, then let go)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def down_collector(where, tmp_path) -> str:
    if where == "udp":
        return "127.0.0.1:%d" % closed_udp_port()
    return "unix://%s" % (tmp_path / "no-such-dir" / "statsd.sock")


DOWN = pytest.mark.parametrize("where", ["udp", "unix"])
KEEPALIVE_KINDS = pytest.mark.parametrize("kind", [
    pytest.param(("-k", "sync"), id="sync"),
    pytest.param(("-k", "gthread", "--threads", "4"), id="gthread"),
])


def serve_many(server, count=500):
    """`count` requests over one keep-alive session (the server may close between them)."""
    with requests.Session() as session:
        for i in range(count):
            resp = session.get(server.url + "/n%d" % i, timeout=10)
            assert resp.status_code == 200, (i, resp.status_code)


@DOWN
@KEEPALIVE_KINDS
def test_a_collector_that_is_down_slows_nothing(serve, tmp_path, where, kind):
    server = serve("--statsd-host", down_collector(where, tmp_path), *kind, "-w", "2",
                   "--enable-backlog-metric", APP)
    server.wait_for_log(r"Booting worker with pid: \d+", count=2)
    serve_many(server)
    # Still serving, with the same workers.
    assert requests.get(server.url + "/after", timeout=10).status_code == 200
    assert len(server.worker_pids()) == 2, server.stderr_text()[-3000:]
    assert server.alive()
    bad = [line for line in server.log_lines() if line[1] in ("ERROR", "CRITICAL")]
    assert not bad, bad


@pytest.mark.ferrocorn_only
@DOWN
def test_a_collector_that_is_down_is_not_an_error(serve, tmp_path, where):
    # Gunicorn logs a WARNING with a traceback for every failed send (the twin below).
    server = serve("--statsd-host", down_collector(where, tmp_path), "-k", "gthread",
                   "--enable-backlog-metric", APP)
    serve_many(server, 200)
    text = server.stderr_text()
    assert "Error sending message to statsd" not in text, text[-3000:]
    bad = [line for line in server.log_lines() if line[1] in ("WARNING", "ERROR", "CRITICAL")]
    assert not bad, bad


@gunicorn_only
def test_gunicorn_warns_on_each_failed_send_to_a_closed_udp_port(serve, tmp_path):
    server = serve("--statsd-host", down_collector("udp", tmp_path), APP)
    serve_many(server, 20)
    # A connected UDP socket reports the port-unreachable of one send on a later send.
    server.wait_for_log(r"\[WARNING\] Error sending message to statsd$", count=5)
    assert "ConnectionRefusedError: [Errno 111] Connection refused" in server.stderr_text()


@gunicorn_only
def test_gunicorn_drops_metrics_silently_when_the_unix_path_is_missing(serve, tmp_path):
    server = serve("--statsd-host", down_collector("unix", tmp_path), APP)
    serve_many(server, 20)
    assert "statsd" not in server.stderr_text()
