"""ASGI lifespan in the ASGI worker (`-k asgi`, issue 13; `--asgi-lifespan auto|on|off`).

The apps (tests/apps/asgi_lifespan.py) append what they ran to a JSON-lines file named
by LIFESPAN_LOG: every call with its scope type, startup and shutdown, and the start and
end of requests, each with the worker pid; the tests read the order of those events.
"""

import json
import signal
import socket
import time

import pytest

from conftest import http_get, wait_until
from ws_support import read_events

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def lifespan_server(serve, tmp_path):
    """``lifespan_server(app, *args, ready="http", env=None)`` -> a `-k asgi` server on
    asgi_lifespan:<app>; its ``events`` attribute is the app's event log."""

    def start(app, *args, ready="http", env=None):
        events = tmp_path / "lifespan-events.jsonl"
        server = serve("-k", "asgi", *args, "asgi_lifespan:" + app,
                       env={"LIFESPAN_LOG": str(events), **(env or {})}, ready=ready)
        server.events = events
        return server

    return start


def get_json(server, path="/"):
    resp = http_get(server.address, path, headers={"Connection": "close"})
    assert resp.status == 200, resp.raw
    return json.loads(resp.body)


def named(events, name):
    return [e for e in events if e["event"] == name]


def lifespan_calls(events):
    return [e for e in events if e["event"] == "call" and e["type"] == "lifespan"]


# ---------------------------------------------------------------------------
# Startup and state


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_startup_runs_once_per_worker_before_its_first_request(lifespan_server, mode):
    # A slow startup: a worker that served before startup completed would show it.
    server = lifespan_server("app", "-w", "2", "--asgi-lifespan", mode,
                             env={"LIFESPAN_STARTUP_DELAY": "0.5"})
    wait_until(lambda: len(server.worker_pids()) == 2, what="two workers")
    workers = set(server.worker_pids())
    wait_until(lambda: len(named(read_events(server.events), "startup")) == 2, timeout=15,
               what="a startup in each worker")
    seen = set()
    for _ in range(12):
        body = get_json(server)
        assert body["pid"] in workers
        assert body["started"] is True
        assert body["state"]["token"] == "tok-%d" % body["pid"]
        seen.add(body["pid"])
    events = read_events(server.events)
    startups = named(events, "startup")
    assert sorted(e["pid"] for e in startups) == sorted(workers), "one startup per worker"
    for startup in startups:
        assert startup["asgi"]["version"] == "3.0"
        assert {"type", "asgi", "state"} <= set(startup["scope_keys"])
        assert startup["state_type"] == "dict"
    # In each worker the startup completed before any request it served.
    for pid in seen:
        mine = [e["event"] for e in events if e["pid"] == pid and e["event"] != "call"]
        assert mine[:3] == ["startup", "startup-complete", "request-start"], mine
    assert len(lifespan_calls(events)) == 2
    assert named(events, "shutdown") == []


def test_state_is_a_shallow_copy_per_request(lifespan_server):
    server = lifespan_server("app")
    first = get_json(server, "/mutate")
    assert first["state"]["mutated"] is True and first["state"]["token"] == "changed"
    after = get_json(server, "/")
    # Keys set or replaced by one request do not reach the next...
    assert "mutated" not in after["state"]
    assert after["state"]["token"] == "tok-%d" % after["pid"]
    # ...but the copy is shallow: the objects startup stored are shared.
    assert after["state"]["shared"] == ["from /mutate"]


# ---------------------------------------------------------------------------
# Shutdown


def test_shutdown_runs_on_term_after_connections_drain(lifespan_server):
    server = lifespan_server("app", "--graceful-timeout", "10")
    sock = socket.create_connection(server.address, timeout=15)
    try:
        sock.sendall(b"GET /slow?s=1.5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        wait_until(lambda: [e for e in read_events(server.events) if e.get("path") == "/slow"],
                   what="the slow request to start")
        server.send_signal(signal.SIGTERM)
        response = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    finally:
        sock.close()
    assert response.startswith(b"HTTP/1.1 200 "), response
    assert server.wait_exit(timeout=15) == 0
    order = [e["event"] for e in read_events(server.events)
             if e["event"] in ("startup", "shutdown") or e.get("path") == "/slow"]
    assert order == ["startup", "request-start", "request-done", "shutdown"]
    assert "Error" not in server.stderr_text()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT], ids=["INT", "QUIT"])
def test_quick_stop_skips_shutdown(lifespan_server, sig):
    server = lifespan_server("app")
    assert get_json(server)["started"] is True
    server.send_signal(sig)
    assert server.wait_exit(timeout=15) == 0
    events = read_events(server.events)
    assert len(named(events, "startup")) == 1
    assert named(events, "shutdown") == []


# ---------------------------------------------------------------------------
# Startup failures


def assert_boot_error_exit(server, message):
    """The worker logged the startup failure and the master stopped with exit code 3,
    promptly and without booting replacement workers."""
    assert server.wait_exit(timeout=15) == 3
    assert time.monotonic() - server.started_at < 10
    text = server.stderr_text()
    assert "[ERROR] ASGI lifespan startup failed: Lifespan startup failed: %s\n" % message in text
    assert "[ERROR] Reason: Worker failed to boot." in text
    assert "Traceback" not in text


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_startup_failed_stops_the_server_with_exit_3(lifespan_server, mode):
    server = lifespan_server("failing_app", "--asgi-lifespan", mode, ready=None)
    assert_boot_error_exit(server, "database unreachable")
    boots = server.worker_pids()
    assert len(boots) == 1, "a failed startup must not be retried: %r" % boots
    text = server.stderr_text()
    assert "Worker (pid:%d) exited with code 3." % boots[0] in text
    events = read_events(server.events)
    assert len(named(events, "startup-failing")) == 1
    # No request was ever handed to the app.
    assert [e["type"] for e in events if e["event"] == "call"] == ["lifespan"]


@pytest.mark.ferrocorn_only
def test_startup_failed_in_two_workers_still_exits_3(lifespan_server):
    # Gunicorn 27.0.1: with -w 2 both workers fail, the master raises HaltServer again
    # while reaping the second one inside halt(), prints two tracebacks and exits 1.
    server = lifespan_server("failing_app", "-w", "2", ready=None)
    assert_boot_error_exit(server, "database unreachable")
    assert 1 <= len(server.worker_pids()) <= 2


@pytest.mark.parametrize("app, message", [
    ("raising_app", "raising_app only speaks http"),
    ("returning_app", "Application exited before startup complete"),
])
def test_lifespan_on_with_an_app_without_lifespan_exits_3(lifespan_server, app, message):
    server = lifespan_server(app, "--asgi-lifespan", "on", ready=None)
    assert_boot_error_exit(server, message)
    assert len(server.worker_pids()) == 1


@pytest.mark.parametrize("app", ["raising_app", "returning_app"])
def test_lifespan_auto_with_an_app_without_lifespan_serves(lifespan_server, app):
    server = lifespan_server(app, "--asgi-lifespan", "auto")
    for _ in range(3):
        assert "pid" in get_json(server)
    events = read_events(server.events)
    # The app was offered lifespan once, then served requests in the same worker.
    assert len(lifespan_calls(events)) == 1
    assert len(server.worker_pids()) == 1
    assert "ASGI lifespan startup failed" not in server.stderr_text()
    server.send_signal(signal.SIGTERM)
    assert server.wait_exit(timeout=15) == 0
    # No shutdown is attempted for an app that has no lifespan.
    assert len(lifespan_calls(read_events(server.events))) == 1


def test_lifespan_off_never_calls_the_app_with_lifespan(lifespan_server):
    server = lifespan_server("app", "--asgi-lifespan", "off")
    body = get_json(server)
    assert body["started"] is False
    assert "token" not in (body["state"] or {})
    server.send_signal(signal.SIGTERM)
    assert server.wait_exit(timeout=15) == 0
    events = read_events(server.events)
    assert lifespan_calls(events) == []
    assert named(events, "startup") == [] and named(events, "shutdown") == []
    assert {e["type"] for e in events if e["event"] == "call"} == {"http"}
