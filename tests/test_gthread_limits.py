"""gthread limits that must not cost a worker: a client that stops reading a file response,
and a connection table that is full with nothing it may evict.

Tests marked ``ferrocorn_only`` check where ferrocorn deliberately does better than
Gunicorn 27.0.1; each says what Gunicorn does instead.
"""

from __future__ import annotations

import socket
import time

import pytest

from conftest import RawResponse, raw_request

pytestmark = pytest.mark.timeout(60)


def _worker_cpu_seconds(pid: int) -> float:
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in clock ticks


@pytest.mark.ferrocorn_only
def test_a_client_that_stops_reading_a_sendfile_response_frees_the_thread(serve):
    """Gunicorn 27.0.1 blocks the thread in sendfile for as long as the client stays
    connected; ferrocorn gives up after `timeout`, so with one thread the next client is
    served."""
    server = serve("files:app", "-k", "gthread", "--threads", "1", "--timeout", "2")
    stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(server.address)
    try:
        stalled.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        # Never read: the 32 MiB cannot fit in the buffers, so sendfile stalls.
        start = time.monotonic()
        raw = raw_request(server.address, b"GET /skip HTTP/1.1\r\nHost: x\r\n\r\n", timeout=20)
        assert RawResponse(raw).status_line == "HTTP/1.1 200 OK"
        assert time.monotonic() - start < 15
    finally:
        stalled.close()


def test_a_full_table_with_nothing_to_evict_leaves_new_clients_in_the_backlog(serve):
    """At `worker_connections` with the only connection uploading a body, a new client waits
    in the backlog without the worker spinning on it, and is served once room is made."""
    server = serve("echo:app", "-k", "gthread", "--threads", "1", "--worker-connections", "1")
    worker = server.worker_pids()[0]
    upload = socket.create_connection(server.address, timeout=10)
    try:
        upload.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        waiting = socket.create_connection(server.address, timeout=10)
        waiting.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        before = _worker_cpu_seconds(worker)
        time.sleep(1.0)  # the measured window: CPU the worker spends while nothing can move
        spent = _worker_cpu_seconds(worker) - before
        assert spent < 0.5, "the worker spun for %.2f s of CPU in 1 s" % spent
        upload.sendall(b"defghij")
        got = b""
        while b"\r\n\r\n" not in got:
            got += upload.recv(4096)
        assert got.startswith(b"HTTP/1.1 200 OK")
        upload.close()
        waiting.settimeout(10)
        answer = b""
        while True:
            chunk = waiting.recv(4096)
            if not chunk:
                break
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 OK"), answer[:200]
        waiting.close()
    finally:
        upload.close()
