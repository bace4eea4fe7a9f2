"""The load generator's own classification, against a scripted in-process socket server:
the zero-failure tests are only as good as its idea of a failure."""

import socket
import struct
import threading
import time

import pytest

from conftest import reserved_port, wait_until
from loadgen import FAILED, OK, REFUSED, LoadGen


class ScriptedServer:
    """Accepts connections and answers each with `respond(conn)` after reading the head."""

    def __init__(self, respond):
        self.respond = respond
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.listener.settimeout(0.1)
        self.address = self.listener.getsockname()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.done.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(5)
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                self.respond(conn)

    def close(self):
        self.done.set()
        self.thread.join(5)
        self.listener.close()


def run_load(respond, count=3, timeout=2.0):
    server = ScriptedServer(respond)
    load = LoadGen(server.address, "/x", threads=1, limit=10, timeout=timeout)
    try:
        deadline = time.monotonic() + 10
        while len(load.attempts()) < count and time.monotonic() < deadline:
            time.sleep(0.01)  # poll interval
    finally:
        load.stop()
        server.close()
    return load


def reset(conn):
    # Linger 0: close() sends RST instead of FIN.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_a_complete_200_is_ok_and_names_the_worker():
    load = run_load(lambda c: c.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Worker-Pid: 4242\r\n\r\nhello"))
    assert load.count(OK) == len(load.attempts()) >= 3
    assert load.worker_pids() == {4242}
    assert load.bodies() == {b"hello"}
    load.assert_lossless()


def test_a_complete_chunked_200_is_ok():
    load = run_load(lambda c: c.sendall(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
    assert load.bodies() == {b"abc"}
    load.assert_lossless()


@pytest.mark.parametrize("respond, kind", [
    (lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
     "EOF in the body"),
    (lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"),
     "EOF in the body"),
    (lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nContent-"), "EOF before the response head"),
    (lambda c: None, "EOF before the response head"),
    (reset, "reset before the response head"),
    (lambda c: c.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"),
     "status 503"),
])
def test_anything_but_a_complete_200_after_connecting_is_a_failure(respond, kind):
    load = run_load(respond)
    failed = load.attempts(FAILED)
    assert len(failed) == len(load.attempts()) >= 3
    assert {a.kind for a in failed} == {kind}, load.report()
    assert kind in load.report()
    with pytest.raises(AssertionError):
        load.assert_lossless()


def test_a_server_that_never_answers_times_out():
    # The scripted server's own delay (the scenario), longer than the client's timeout.
    load = run_load(lambda c: time.sleep(1.0), count=1, timeout=0.3)
    assert {a.kind for a in load.attempts()} == {"timeout before the response head"}


def test_a_closed_port_is_refused_not_failed():
    # A port bound by a socket that never listens: connecting is refused, and nothing else
    # can start listening there while the test holds it.
    closed, port = reserved_port()
    with closed:
        load = LoadGen(("127.0.0.1", port), threads=2, limit=10)
        try:
            deadline = time.monotonic() + 5
            while len(load.attempts()) < 4 and time.monotonic() < deadline:
                time.sleep(0.01)  # poll interval
        finally:
            load.stop()
    assert len(load.attempts(REFUSED)) == len(load.attempts()) >= 4
    assert not load.attempts(FAILED)


def test_the_time_limit_stops_the_threads_without_stop():
    server = ScriptedServer(lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    try:
        load = LoadGen(server.address, threads=3, limit=0.5)
        # Within the same second the fixed sleep allowed.
        wait_until(lambda: not any(t.is_alive() for t in load._threads), timeout=1.0,
                   what="the load threads to stop at the time limit")
        load.stop()
        assert load.count(OK) > 0
        assert all(a.started < load.deadline for a in load.attempts())
    finally:
        server.close()


def test_marks_place_failures_in_the_report():
    server = ScriptedServer(reset)
    try:
        load = LoadGen(server.address, threads=1, limit=10)
        signalled = load.mark("SIGNAL")
        deadline = time.monotonic() + 5
        while not load.attempts(FAILED, since=signalled) and time.monotonic() < deadline:
            time.sleep(0.01)  # poll interval
        load.stop()
    finally:
        server.close()
    report = load.report()
    assert "marks: SIGNAL@+" in report
    assert "after SIGNAL), ended" in report, report
