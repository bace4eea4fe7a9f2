"""The Prometheus endpoint: `--prometheus-bind HOST:PORT` serves `/metrics` from the master.

Gunicorn has nothing like it, so every test here is `ferrocorn_only`. The master logs
`Metrics at: http://HOST:PORT/metrics` at info; the tests scrape that URL with `requests`
and parse it with prometheus_client's parser (which names a counter family without its
`_total`; the samples keep it).

The numbers must add up to exactly what the test sent, across everything that replaces a
worker: a crash (kill -9), a reload (HUP), max_requests recycling and a timeout kill. The
readiness check only connects (`ready="port"`), so the servers answer no request the test
did not send.
"""

import os
import signal
import socket
import threading
import time

import pytest
import requests

from conftest import children, pid_alive, wait_until
from metrics_support import (
    StatsdReceiver,
    listening_inode,
    metrics_url,
    scrape,
    socket_inodes,
    wait_request_lines,
    wait_scrape,
)

pytestmark = [pytest.mark.timeout(60), pytest.mark.ferrocorn_only]

APP = "metrics_app:app"
ASGI_APP = "metrics_asgi:app"

FAMILIES = {
    "ferrocorn_requests": "counter",
    "ferrocorn_request_duration_seconds": "histogram",
    "ferrocorn_requests_in_flight": "gauge",
    "ferrocorn_workers": "gauge",
    "ferrocorn_workers_target": "gauge",
    "ferrocorn_worker_restarts": "counter",
    "ferrocorn_worker_boot_duration_seconds": "histogram",
    "ferrocorn_master_start_time_seconds": "gauge",
    "ferrocorn_listener_backlog": "gauge",
    "ferrocorn_worker_resident_memory_bytes": "gauge",
    "ferrocorn_worker_cpu_seconds": "counter",
    "ferrocorn_statsd_dropped": "counter",
}
REASONS = ("timeout", "max_requests", "crash", "reload", "memory")


def start(serve, *args, app=APP, **kw):
    """A server with a metrics listener; returns (server, metrics URL)."""
    kw.setdefault("ready", "port")
    server = serve("--prometheus-bind", "127.0.0.1:0", *args, app, **kw)
    return server, metrics_url(server)


def send(server, script):
    """Send (method, path, expected status) requests, each on a fresh connection."""
    for method, path, status in script:
        resp = requests.request(method, server.url + path, allow_redirects=False, timeout=10,
                                data=b"payload" if method in ("POST", "PUT", "PATCH") else None)
        assert resp.status_code == status, (method, path, resp.status_code, resp.text[:200])


def restarts(scraped) -> dict:
    return {reason: scraped.value("ferrocorn_worker_restarts_total", reason=reason)
            for reason in REASONS}


def wait_counts(url, expected: dict, what="the request counters") -> object:
    """Scrape until ferrocorn_requests_total is exactly `expected` ({(method, class): n},
    zeros left out) and the duration histogram counted as many requests."""
    total = sum(expected.values())
    return wait_scrape(
        url,
        lambda s: s.requests() == expected
        and s.value("ferrocorn_request_duration_seconds_count") == total,
        what="%s to be %s" % (what, expected),
    )


def serving(url, count: int):
    return wait_scrape(url, lambda s: s.by_label("ferrocorn_workers", "state") == {
        "booting": 0, "serving": count, "stopping": 0}, what="%d serving workers" % count)


def live_workers(server) -> set:
    return {pid for pid in server.worker_pids() if pid_alive(pid)} & children(server.master_pid)


class Held:
    """A request kept in the app (GET /sleep?release=...) until `release()`."""

    def __init__(self, server, tmp_path, name):
        self.started = tmp_path / ("%s.started" % name)
        self.gate = tmp_path / ("%s.release" % name)
        self.result = {}
        params = {"started": str(self.started), "release": str(self.gate), "s": 20}

        def call():
            try:
                self.result["resp"] = requests.get(server.url + "/sleep", params=params,
                                                   timeout=30)
            except requests.RequestException as exc:
                self.result["error"] = exc

        self.thread = threading.Thread(target=call, daemon=True)
        self.thread.start()
        wait_until(self.started.exists, what="request %s to reach the app" % name)
        self.pid = int(self.started.read_text())

    def release(self):
        self.gate.write_text("go")
        self.thread.join(30)
        assert self.result.get("resp") is not None, self.result
        assert self.result["resp"].status_code == 200


# ---------------------------------------------------------------------------


def test_the_master_logs_the_metrics_url_and_serves_every_family(serve):
    before = time.time()
    server, url = start(serve, "-w", "2")
    master = server.master_pid
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    assert url == "http://127.0.0.1:%d/metrics" % port
    assert port not in (0, server.port)
    assert (master, "INFO", "Metrics at: %s" % url) in server.log_lines()
    scraped = serving(url, 2)
    resp = requests.get(url, timeout=10)
    assert resp.headers["Content-Type"].startswith("text/plain"), resp.headers
    for name, kind in FAMILIES.items():
        assert name in scraped.families, "%s missing:\n%s" % (name, scraped.text)
        assert scraped.families[name].type == kind, (name, scraped.families[name].type)
    # An idle server: nothing answered, nothing restarted, two workers booted.
    assert scraped.requests() == {}
    assert scraped.value("ferrocorn_requests_total", method="GET", status="2xx") == 0
    assert scraped.histogram("ferrocorn_request_duration_seconds")[2] == 0
    assert scraped.value("ferrocorn_requests_in_flight") == 0
    assert scraped.value("ferrocorn_workers_target") == 2
    assert restarts(scraped) == dict.fromkeys(REASONS, 0)
    buckets, boot_sum, boots = scraped.histogram("ferrocorn_worker_boot_duration_seconds")
    assert boots == 2 and boot_sum > 0, (buckets, boot_sum)
    started = scraped.value("ferrocorn_master_start_time_seconds")
    assert before - 1 <= started <= time.time(), (before, started)
    assert scraped.by_label("ferrocorn_listener_backlog", "listener") == {
        "http://127.0.0.1:%d" % server.port: 0}
    assert scraped.value("ferrocorn_statsd_dropped_total") == 0


def test_only_get_metrics_is_served(serve):
    server, url = start(serve)
    base = url[: -len("/metrics")]
    assert requests.get(base + "/other", timeout=10).status_code == 404
    assert requests.get(base + "/", timeout=10).status_code == 404
    assert requests.post(url, data=b"x", timeout=10).status_code == 405
    assert requests.get(url, timeout=10).status_code == 200
    # The master answered those; the workers counted nothing.
    assert scrape(url).requests() == {}


# Every method label, and the status classes an app can give.
SCRIPT = [
    ("GET", "/", 200), ("GET", "/", 200), ("GET", "/", 200),
    ("HEAD", "/", 200),
    ("POST", "/things", 201),
    ("PUT", "/things", 200),
    ("DELETE", "/things", 204),
    ("PATCH", "/things", 200),
    ("OPTIONS", "/things", 200),
    ("PURGE", "/things", 200),
    ("GET", "/missing", 404),
    ("POST", "/missing", 404), ("POST", "/missing", 404),
    ("GET", "/status?code=302", 302),
    ("GET", "/boom", 500),
    ("GET", "/sleep?s=0.3", 200),
]
SCRIPT_COUNTS = {
    ("GET", "2xx"): 4, ("HEAD", "2xx"): 1, ("POST", "2xx"): 1, ("PUT", "2xx"): 1,
    ("DELETE", "2xx"): 1, ("PATCH", "2xx"): 1, ("OPTIONS", "2xx"): 1, ("other", "2xx"): 1,
    ("GET", "4xx"): 1, ("POST", "4xx"): 2, ("GET", "3xx"): 1, ("GET", "5xx"): 1,
}


@pytest.mark.parametrize("kind", [
    pytest.param(("-k", "sync"), id="sync"),
    pytest.param(("-k", "gthread", "--threads", "4"), id="gthread"),
    pytest.param(("-k", "asgi"), id="asgi"),
])
def test_requests_by_method_and_status_class(serve, kind):
    server, url = start(serve, *kind, "-w", "2", app=ASGI_APP if "asgi" in kind else APP)
    send(server, SCRIPT)
    scraped = wait_counts(url, SCRIPT_COUNTS)
    buckets, total_seconds, count = scraped.histogram("ferrocorn_request_duration_seconds")
    assert count == len(SCRIPT)
    # One request slept 0.3 s: the sum has it, and no bucket below 0.3 s holds it.
    assert 0.3 <= total_seconds < 30, total_seconds
    for le, n in buckets:
        if float(le) < 0.3:
            assert n <= count - 1, buckets
    assert scraped.value("ferrocorn_requests_in_flight") == 0


def test_counters_survive_a_crash_and_a_reload(serve):
    server, url = start(serve, "-w", "2")
    master = server.master_pid
    send(server, [("GET", "/", 200)] * 7 + [("POST", "/missing", 404)] * 3)
    expected = {("GET", "2xx"): 7, ("POST", "4xx"): 3}
    wait_counts(url, expected)

    # A worker killed from outside: a crash. What it counted stays counted.
    first = wait_until(lambda: (lambda w: w if len(w) == 2 else None)(live_workers(server)),
                       what="two workers")
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    server.wait_for_log(r"Booting worker with pid: \d+", count=3)
    wait_until(lambda: victim not in children(master), what="the killed worker to be reaped")
    send(server, [("GET", "/", 200)] * 5)
    expected = {("GET", "2xx"): 12, ("POST", "4xx"): 3}
    scraped = wait_counts(url, expected, "the counters after a crash")
    scraped = wait_scrape(url, lambda s: restarts(s)["crash"] == 1, "a crash restart")
    assert restarts(scraped) == {"timeout": 0, "max_requests": 0,
                                 "crash": 1, "reload": 0, "memory": 0}
    assert scraped.histogram("ferrocorn_worker_boot_duration_seconds")[2] == 3

    # HUP: a new generation of two workers; the old one's counts stay.
    generation = live_workers(server)
    server.send_signal(signal.SIGHUP)
    server.wait_for_log(r"Booting worker with pid: \d+", count=5)
    wait_until(lambda: not (children(master) & generation), what="the old workers to go")
    send(server, [("DELETE", "/x", 204)] * 4 + [("PUT", "/missing", 404)] * 2)
    expected = {("GET", "2xx"): 12, ("POST", "4xx"): 3, ("DELETE", "2xx"): 4,
                ("PUT", "4xx"): 2}
    wait_counts(url, expected, "the counters after a reload")
    scraped = wait_scrape(url, lambda s: restarts(s)["reload"] == 2, "two reload restarts")
    assert restarts(scraped) == {"timeout": 0, "max_requests": 0,
                                 "crash": 1, "reload": 2, "memory": 0}
    assert scraped.histogram("ferrocorn_worker_boot_duration_seconds")[2] == 5
    serving(url, 2)
    assert scrape(url).value("ferrocorn_workers_target") == 2


def test_max_requests_recycling_counts_as_max_requests(serve):
    server, url = start(serve, "--max-requests", "5")
    master = server.master_pid
    for generation in (1, 2):
        (worker,) = wait_until(lambda: (lambda w: w if len(w) == 1 else None)(
            live_workers(server)), what="one worker")
        send(server, [("GET", "/", 200)] * 5)
        # The 5th request recycles the worker; wait until its successor took over (the old
        # one may serve until then), so the next 5 all go to the successor.
        server.wait_for_log(r"Booting worker with pid: \d+", count=generation + 1)
        wait_until(lambda: worker not in children(master), what="worker %d to go" % worker)
    send(server, [("GET", "/", 200)] * 2)
    scraped = wait_scrape(url, lambda s: restarts(s)["max_requests"] == 2,
                          "two max_requests restarts")
    assert restarts(scraped) == {"timeout": 0, "max_requests": 2,
                                 "crash": 0, "reload": 0, "memory": 0}
    wait_counts(url, {("GET", "2xx"): 12})
    assert len(server.worker_pids()) == 3


def test_a_timed_out_worker_counts_as_timeout(serve, tmp_path):
    server, url = start(serve, "--timeout", "2")
    stuck = Held(server, tmp_path, "stuck")
    wait_scrape(url, lambda s: s.value("ferrocorn_requests_in_flight") == 1,
                "the stuck request in flight")
    server.wait_for_log(r"WORKER TIMEOUT \(pid:%d\)" % stuck.pid, timeout=20)
    scraped = wait_scrape(url, lambda s: restarts(s)["timeout"] == 1, "a timeout restart")
    assert restarts(scraped) == {"timeout": 1, "max_requests": 0,
                                 "crash": 0, "reload": 0, "memory": 0}
    stuck.thread.join(30)
    # The killed worker's request is no longer in flight.
    wait_scrape(url, lambda s: s.value("ferrocorn_requests_in_flight") == 0,
                "no request in flight")
    send(server, [("GET", "/", 200)])
    scraped = wait_scrape(
        url, lambda s: s.get("ferrocorn_requests_total", method="GET", status="2xx") == 1,
        "the request after the timeout")
    assert restarts(scraped)["timeout"] == 1


def test_in_flight_and_backlog_while_requests_wait(serve, tmp_path):
    server, url = start(serve, "-w", "2")
    serving(url, 2)
    held = [Held(server, tmp_path, "a"), Held(server, tmp_path, "b")]
    assert held[0].pid != held[1].pid
    wait_scrape(url, lambda s: s.value("ferrocorn_requests_in_flight") == 2,
                "two requests in flight")
    # Both (sync) workers are busy: two more connections wait to be accepted.
    queued = []
    for _ in range(2):
        sock = socket.create_connection(server.address, timeout=10)
        sock.sendall(b"GET /queued HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        queued.append(sock)
    listener = "http://127.0.0.1:%d" % server.port
    try:
        wait_scrape(url, lambda s: s.get("ferrocorn_listener_backlog", listener=listener) == 2,
                    "two connections in the backlog")
    finally:
        for h in held:
            h.release()
    for sock in queued:
        with sock:
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            assert data.startswith(b"HTTP/1.1 200"), data[:200]
    wait_scrape(
        url, lambda s: s.value("ferrocorn_requests_in_flight") == 0
        and s.get("ferrocorn_listener_backlog", listener=listener) == 0, "an idle server")
    wait_counts(url, {("GET", "2xx"): 4})


def test_worker_states_booting_serving_stopping(serve, tmp_path):
    gate = tmp_path / "boot.gate"
    server, url = start(serve, "--graceful-timeout", "20",
                        env={"METRICS_BOOT_GATE": str(gate)})
    # The app's import waits for the gate: the worker is booting.
    scraped = wait_scrape(url, lambda s: s.value("ferrocorn_workers", state="booting") == 1,
                          "a booting worker")
    assert scraped.value("ferrocorn_workers", state="serving") == 0
    assert scraped.histogram("ferrocorn_worker_boot_duration_seconds")[2] == 0
    gate.write_text("open")
    scraped = serving(url, 1)
    assert scraped.histogram("ferrocorn_worker_boot_duration_seconds")[2] == 1
    # HUP while a request runs: the old worker finishes it while stopping.
    held = Held(server, tmp_path, "held")
    server.send_signal(signal.SIGHUP)
    server.wait_for_log(r"Booting worker with pid: \d+", count=2)
    try:
        scraped = wait_scrape(url, lambda s: s.by_label("ferrocorn_workers", "state") == {
            "booting": 0, "serving": 1, "stopping": 1}, "one stopping, one serving")
        assert scraped.value("ferrocorn_requests_in_flight") == 1
        assert held.pid in children(server.master_pid)
    finally:
        held.release()
    serving(url, 1)
    assert restarts(scrape(url))["reload"] == 1


def test_per_worker_memory_and_cpu(serve):
    server, url = start(serve, "-w", "2")
    master = server.master_pid
    serving(url, 2)
    send(server, [("GET", "/", 200)] * 4)
    workers = wait_until(lambda: (lambda w: w if len(w) == 2 else None)(live_workers(server)),
                         what="two workers")

    def per_pid(s, name):
        return {int(pid): v for pid, v in s.by_label(name, "pid").items()}

    scraped = scrape(url)
    rss = per_pid(scraped, "ferrocorn_worker_resident_memory_bytes")
    cpu = per_pid(scraped, "ferrocorn_worker_cpu_seconds_total")
    assert set(rss) == set(cpu) == workers, (rss, cpu, workers)
    assert master not in rss
    for pid in workers:
        assert rss[pid] > 1024 * 1024, rss
        assert cpu[pid] >= 0, cpu
    # A replaced worker's series go, its successor's come.
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    server.wait_for_log(r"Booting worker with pid: \d+", count=3)
    successor = server.worker_pids()[-1]
    wait_scrape(url, lambda s: set(per_pid(s, "ferrocorn_worker_resident_memory_bytes"))
                == (workers - {victim}) | {successor}, "the successor's memory sample")


def test_metrics_socket_stays_in_the_master(serve):
    server, url = start(serve, "-w", "2")
    serving(url, 2)
    metrics_port = int(url.rsplit(":", 1)[1].split("/")[0])
    metrics_inode = listening_inode(metrics_port)
    http_inode = listening_inode(server.port)
    master = server.master_pid
    assert metrics_inode in socket_inodes(master)
    workers = live_workers(server)
    assert len(workers) == 2
    for pid in workers:
        held = socket_inodes(pid)
        # The check can see a listener a worker holds: the HTTP one.
        assert http_inode in held, (pid, held)
        assert metrics_inode not in held, "worker %d holds the metrics socket" % pid


def test_scrape_with_statsd_on(serve):
    receiver = StatsdReceiver("udp")
    try:
        server, url = start(serve, "--statsd-host", receiver.host, "-w", "2")
        script = [("GET", "/", 200)] * 3 + [("GET", "/missing", 404)]
        send(server, script)
        wait_request_lines(receiver, [200, 200, 200, 404])
        scraped = wait_counts(url, {("GET", "2xx"): 3, ("GET", "4xx"): 1})
        assert scraped.value("ferrocorn_statsd_dropped_total") == 0
        receiver.assert_well_formed()
    finally:
        receiver.close()
