"""The process model: workers, respawn, timeouts, signals, max_requests, and listeners
(several binds, IPv6, unix sockets, inherited fds, SO_REUSEPORT, backlog)."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
import requests

from conftest import (http_get, ipv6_loopback_available, is_gunicorn, listening_socket,
                      pid_alive, wait_until)

pytestmark = pytest.mark.timeout(90)


def parent_pid(pid: int) -> int:
    with open("/proc/%d/stat" % pid) as f:
        # The command name (field 2) may contain spaces; it is wrapped in parentheses.
        return int(f.read().rsplit(")", 1)[1].split()[1])


def get_pid(server, seconds: float = 0, timeout: float = 15) -> int:
    resp = requests.get(server.url + "/?s=%s" % seconds, timeout=timeout)
    assert resp.status_code == 200, resp.text
    return int(resp.headers["X-Worker-Pid"])


class InFlight:
    """A request running in a background thread; `.result()` is (status, body) or the exception."""

    def __init__(self, url: str, timeout: float = 30):
        self._outcome = None
        self._thread = threading.Thread(target=self._run, args=(url, timeout), daemon=True)
        self._thread.start()

    def _run(self, url, timeout):
        try:
            resp = requests.get(url, timeout=timeout)
            self._outcome = (resp.status_code, resp.text)
        except Exception as exc:  # noqa: BLE001 - the test inspects whatever happened
            self._outcome = exc

    def result(self, timeout: float = 30):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "in-flight request never finished"
        return self._outcome


def in_the_app(server, tmp_path, seconds: float) -> InFlight:
    """A slow request, returned once the app is running it (slow.py's ``started`` marker)."""
    marker = tmp_path / ("started-%d" % time.monotonic_ns())
    request = InFlight(server.url + "/?s=%s&started=%s" % (seconds, quote(str(marker))))
    wait_until(marker.exists, timeout=10, what="the request to reach the app")
    return request


# ---------------------------------------------------------------------------
# Workers.


def test_two_workers_boot_and_serve_concurrently(serve):
    server = serve("-w", "2", "slow:app")
    server.wait_for_log(r"Booting worker with pid: \d+", count=2)
    workers = server.worker_pids()
    assert len(workers) == 2
    assert len(set(workers)) == 2
    master = server.master_pid
    assert master == server.proc.pid
    assert master not in workers
    for pid in workers:
        assert parent_pid(pid) == master
    # Two sync workers serve two slow requests at the same time, one each.
    start = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        pids = list(pool.map(lambda _: get_pid(server, 1.5), range(2)))
    assert time.monotonic() - start < 2.9
    assert set(pids) == set(workers)


def test_killed_worker_is_replaced(serve):
    server = serve("slow:app")
    (victim,) = server.worker_pids()
    os.kill(victim, signal.SIGKILL)
    server.wait_for_log(r"Worker \(pid:%d\) was sent SIGKILL! Perhaps out of memory\?" % victim)
    server.wait_for_log(r"Booting worker with pid: \d+", count=2)
    replacement = server.worker_pids()[-1]
    assert replacement != victim
    assert get_pid(server) == replacement
    assert server.alive()


def test_worker_timeout_kills_and_replaces_the_worker(serve):
    server = serve("--timeout", "2", "slow:app")
    (stuck,) = server.worker_pids()
    start = time.monotonic()
    slow = InFlight(server.url + "/?s=20", timeout=30)
    server.wait_for_log(r"\[CRITICAL\] WORKER TIMEOUT \(pid:%d\)" % stuck, timeout=15)
    # Detected after the timeout, not at the end of the 20 s sleep.
    assert time.monotonic() - start < 10
    outcome = slow.result()
    # The stuck request is not answered with a success.
    assert isinstance(outcome, Exception) or outcome[0] == 500, outcome
    server.wait_for_log(r"Booting worker with pid: \d+", count=2)
    assert get_pid(server) != stuck
    assert not pid_alive(stuck)


def test_ttin_and_ttou_change_the_worker_count(serve):
    server = serve("slow:app")
    server.send_signal(signal.SIGTTIN)
    server.wait_for_log(r"Booting worker with pid: \d+", count=2)
    first, second = server.worker_pids()
    server.send_signal(signal.SIGTTOU)
    # The oldest worker is the one retired.
    server.wait_for_log(r"Worker exiting \(pid: %d\)" % first)
    assert get_pid(server) == second


# ---------------------------------------------------------------------------
# Signals to the master.


def test_term_lets_the_in_flight_request_finish(serve, tmp_path):
    server = serve("--graceful-timeout", "10", "slow:app")
    request = in_the_app(server, tmp_path, 2)
    signalled = time.monotonic()
    server.send_signal(signal.SIGTERM)
    status, body = request.result()
    assert status == 200
    assert body.startswith("slept 2.0 pid ")
    assert server.wait_exit(timeout=12) == 0
    assert time.monotonic() - signalled < 10
    server.wait_for_log(r"Handling signal: term")
    server.wait_for_log(r"Shutting down: Master")


@pytest.mark.parametrize("sig, name", [(signal.SIGINT, "int"), (signal.SIGQUIT, "quit")])
def test_int_and_quit_stop_promptly(serve, tmp_path, sig, name):
    server = serve("--graceful-timeout", "30", "slow:app")
    request = in_the_app(server, tmp_path, 20)
    signalled = time.monotonic()
    server.send_signal(sig)
    assert server.wait_exit(timeout=8) == 0
    # A quick stop does not wait for the 20 s request, nor for graceful_timeout.
    assert time.monotonic() - signalled < 5
    server.wait_for_log(r"Handling signal: %s" % name)
    outcome = request.result()
    # The interrupted request gets no success: a 500 page or a dropped connection.
    assert isinstance(outcome, Exception) or outcome[0] == 500, outcome


def test_term_with_idle_workers_exits_quickly(serve):
    server = serve("-w", "2", "hello:app")
    server.wait_for_log(r"Booting worker with pid: \d+", count=2)
    workers = server.worker_pids()
    signalled = time.monotonic()
    server.send_signal(signal.SIGTERM)
    assert server.wait_exit(timeout=10) == 0
    assert time.monotonic() - signalled < 5
    for pid in workers:
        server.wait_for_log(r"Worker exiting \(pid: %d\)" % pid)
        assert not pid_alive(pid)


def test_hup_reloads_config_and_replaces_workers(serve, tmp_path):
    conf = tmp_path / "reload.conf.py"
    conf.write_text("workers = 1\nraw_env = ['GENERATION=1']\n")
    server = serve("-c", conf, "environ_dump:app")
    (old,) = server.worker_pids()
    assert requests.get(server.url + "/env", timeout=10).json()["os_environ"]["GENERATION"] == "1"

    conf.write_text("workers = 2\nraw_env = ['GENERATION=2']\n")
    failures = []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            try:
                if requests.get(server.url + "/", timeout=10).status_code != 200:
                    failures.append("status")
            except requests.RequestException as exc:
                failures.append(exc)

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    try:
        server.send_signal(signal.SIGHUP)
        server.wait_for_log(r"Hang up: Master")
        # New workers start before the old one is told to stop.
        server.wait_for_log(r"Booting worker with pid: \d+", count=3)
        server.wait_for_log(r"Worker exiting \(pid: %d\)" % old)
    finally:
        stop.set()
        loader.join(15)
    assert not failures, failures[:3]
    assert server.alive()
    new = server.worker_pids()[1:]
    assert len(new) == 2 and old not in new
    data = requests.get(server.url + "/env", timeout=10).json()
    assert data["os_environ"]["GENERATION"] == "2"
    assert data["pid"] in new


def test_usr1_reopens_log_files(serve, tmp_path):
    access = tmp_path / "access.log"
    server = serve("--access-logfile", access, "hello:app", ready_path="/before")
    server.wait_for_log(r"GET /before", text=access.read_text)
    rotated = tmp_path / "access.log.1"
    access.rename(rotated)
    server.send_signal(signal.SIGUSR1)
    server.wait_for_log(r"Handling signal: usr1")
    # Both the master and the worker must have reopened before the next line is written.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        requests.get(server.url + "/after", timeout=10)
        if access.exists() and "GET /after" in access.read_text():
            break
        time.sleep(0.2)  # poll interval
    assert access.exists() and "GET /after" in access.read_text()
    assert "GET /before" in rotated.read_text()
    assert "GET /before" not in access.read_text()


# ---------------------------------------------------------------------------
# max_requests.


def runs_of(pids):
    """Group consecutive equal values: [a, a, b] -> [(a, 2), (b, 1)]."""
    runs = []
    for pid in pids:
        if runs and runs[-1][0] == pid:
            runs[-1][1] += 1
        else:
            runs.append([pid, 1])
    return [tuple(r) for r in runs]


def recycled_pids(server, limit_runs, max_requests=200):
    """Sequential requests, a little apart, until `limit_runs` workers have answered."""
    pids = []
    while len({p for p in pids}) < limit_runs and len(pids) < max_requests:
        pids.append(get_pid(server))
        time.sleep(0.02)  # the pace of the scenario's client, not a wait for an event
    return pids


def test_max_requests_recycles_the_worker_without_failing_requests(serve):
    server = serve("--max-requests", "5", "slow:app")
    if is_gunicorn():
        # Gunicorn's worker stops right after its 5th request: the readiness probe was the
        # first worker's first request, so 1 + 4, then 5, then 3.
        runs = runs_of([get_pid(server) for _ in range(12)])
        assert [count for _, count in runs] == [4, 5, 3], runs
        server.wait_for_log(r"Autorestarting worker after current request\.", count=2)
    else:
        # ferrocorn's worker keeps serving until its replacement has booted, so each worker
        # serves at least its limit (every request above succeeded through get_pid).
        runs = runs_of(recycled_pids(server, 3))
        assert len(runs) >= 3, runs
        counts = [count for _, count in runs]
        counts[0] += 1  # the readiness probe
        assert all(c >= 5 for c in counts[:-1]), counts
        server.wait_for_log(r"Autorestarting worker after max_requests", count=2)
        # The hand-over order: the replacement boots before the old worker leaves.
        text = server.stderr_text()
        for (old, _), (new, _) in zip(runs, runs[1:]):
            booted = text.index("Booting worker with pid: %d" % new)
            exiting = text.index("Worker exiting (pid: %d)" % old)
            assert booted < exiting, (old, new)
    assert len({pid for pid, _ in runs}) == len(runs)
    server.wait_for_log(r"Worker exiting \(pid: %d\)" % runs[0][0])


def test_max_requests_jitter(serve):
    server = serve("--max-requests", "3", "--max-requests-jitter", "2", "slow:app")
    if is_gunicorn():
        runs = runs_of([get_pid(server) for _ in range(20)])
    else:
        runs = runs_of(recycled_pids(server, 5))
    counts = [count for _, count in runs]
    counts[0] += 1  # the readiness probe
    # Each worker's limit is 3 + randint(0, 2); only the last worker may be cut short.
    # Gunicorn stops each worker exactly there; ferrocorn's serves on (never fewer) while
    # its replacement boots.
    assert all(c >= 3 for c in counts[:-1]), counts
    if is_gunicorn():
        assert all(c <= 5 for c in counts), counts
    else:
        limits = [int(n) for n in re.findall(
            r"Autorestarting worker after max_requests \((\d+)\)", server.stderr_text())]
        assert len(limits) >= 4 and all(3 <= n <= 5 for n in limits), limits
    assert len(runs) >= 4


# ---------------------------------------------------------------------------
# Listeners.


def test_several_binds(serve):
    # Two binds to port 0: two listeners, each on a port of its own, both in the one line.
    server = serve("-b", "127.0.0.1:0", "-b", "127.0.0.1:0", "hello:app", bind="log")
    (_, port_a), (_, port_b) = server.wait_listening()
    assert port_a != port_b
    server.wait_for_log(
        r"Listening at: http://127\.0\.0\.1:%d,http://127\.0\.0\.1:%d \(%d\)"
        % (port_a, port_b, server.proc.pid)
    )
    for port in (port_a, port_b):
        assert requests.get("http://127.0.0.1:%d/" % port, timeout=10).text == "Hello, World!\n"


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback")
def test_ipv6_bind(serve):
    server = serve("-b", "[::1]:0", "environ_dump:app", bind="log")
    assert server.host == "::1"
    port = server.port
    server.wait_for_log(r"Listening at: http://\[::1\]:%d \(\d+\)" % port)
    resp = requests.get(server.url + "/", timeout=10)
    assert resp.status_code == 200
    data = resp.json()
    assert data["REMOTE_ADDR"] == "::1"
    assert data["SERVER_NAME"] == "::1"
    assert data["SERVER_PORT"] == str(port)


def test_unix_socket_bind(serve):
    server = serve("environ_dump:app", bind="unix")
    path = server.address
    server.wait_for_log(r"Listening at: unix:%s \(\d+\)" % path)
    assert os.path.exists(path)
    resp = http_get(path, "/unix?x=1")
    assert resp.status == 200
    data = json.loads(resp.body)
    assert data["QUERY_STRING"] == "x=1"
    assert data["REMOTE_ADDR"] == ""
    assert "REMOTE_PORT" not in data
    # With a Host header, the server name and port come from it.
    assert data["SERVER_NAME"] == "127.0.0.1"
    assert data["SERVER_PORT"] == "80"
    server.send_signal(signal.SIGTERM)
    assert server.wait_exit(timeout=10) == 0
    # A plain master removes its socket file on the way out.
    assert not os.path.exists(path)


def test_unix_socket_replaces_stale_socket_file(serve, tmp_path):
    path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    assert path.exists()
    server = serve("-b", "unix:%s" % path, "hello:app", bind=str(path))
    assert http_get(str(path), "/").body == b"Hello, World!\n"
    assert server.alive()


def test_inherited_fd_bind(serve):
    listener, port = listening_socket()
    fd = listener.fileno()
    try:
        server = serve("-b", "fd://%d" % fd, "hello:app", bind=("127.0.0.1", port),
                       pass_fds=(fd,))
        server.wait_for_log(r"Listening at: http://127\.0\.0\.1:%d \(\d+\)" % port)
        assert requests.get(server.url, timeout=10).text == "Hello, World!\n"
    finally:
        listener.close()


def test_reuse_port_lets_two_servers_share_a_port(serve):
    # The port both servers bind is held meanwhile by a socket of ours with SO_REUSEPORT
    # that never listens: only sockets that set SO_REUSEPORT too (as --reuse-port does)
    # can bind it, and it never takes a connection.
    placeholder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    placeholder.bind(("127.0.0.1", 0))
    port = placeholder.getsockname()[1]
    with placeholder:
        first = serve("--reuse-port", "-b", "127.0.0.1:%d" % port, "slow:app",
                      bind=("127.0.0.1", port))
        # The first server answers on the shared port, so the second's readiness is its log.
        second = serve("--reuse-port", "-b", "127.0.0.1:%d" % port, "slow:app",
                       bind=("127.0.0.1", port), ready=None)
        second.wait_for_log(r"Booting worker with pid: \d+")
    first_pids, second_pids = set(first.worker_pids()), set(second.worker_pids())
    seen = set()
    deadline = time.monotonic() + 20
    # The kernel spreads new connections over both servers' sockets.
    while not (seen & first_pids and seen & second_pids) and time.monotonic() < deadline:
        seen.add(get_pid(first))
    assert seen & first_pids
    assert seen & second_pids
    assert first.alive() and second.alive()


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to read the backlog")
def test_backlog_sets_the_listen_queue(serve):
    server = serve("--backlog", "37", "hello:app")
    out = subprocess.run(
        ["ss", "-Hltn", "sport = :%d" % server.port], capture_output=True, text=True, timeout=10
    ).stdout
    # For a listening socket, ss shows the backlog in the Send-Q column.
    rows = [line.split() for line in out.splitlines() if line.strip()]
    assert rows, out
    assert rows[0][2] == "37", out


def test_umask_applies_to_the_unix_socket_file(serve):
    import stat

    server = serve("--umask", "0o077", "hello:app", bind="unix")
    mode = stat.S_IMODE(os.stat(server.address).st_mode)
    assert mode == 0o700, oct(mode)
    assert http_get(server.address, "/").status == 200
