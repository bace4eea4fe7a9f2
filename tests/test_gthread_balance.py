"""How gthread workers sharing one listener split keep-alive connections between them.

A kept-alive connection stays with the worker that accepted it, so whoever wins the
accepts decides the load for the connection's whole life. ferrocorn's workers publish how
many live connections they carry and one that carries more than the least loaded worker
stops listening until the others catch up. Gunicorn 27.0.1 leaves the split to the kernel's
wake-ups, which favour one worker (EPOLLEXCLUSIVE wakes the most recent waiter first).
"""

from __future__ import annotations

import collections
import json
import socket
import threading

import pytest

from conftest import wait_until
from netstate import TCP_CLOSE_WAIT, tcp_sockets

pytestmark = pytest.mark.timeout(60)

APP = "gthread_app:app"


class KeptConnection:
    """One keep-alive client connection that can send a GET and read its JSON answer."""

    def __init__(self, address):
        self.sock = socket.create_connection(address, timeout=10)
        self.buf = b""

    def get(self, path: str) -> dict:
        self.sock.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        assert head.startswith(b"HTTP/1.1 200"), head
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return json.loads(body)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise AssertionError("server closed a kept-alive connection")
        self.buf += data

    def close(self):
        self.sock.close()


def wait_for_two_workers(server):
    def two_pids():
        conns = [KeptConnection(server.address) for _ in range(2)]
        try:
            # Two slow requests at once: a worker with one thread can only take one.
            results = []
            threads = [threading.Thread(target=lambda c=c: results.append(c.get("/w?s=0.3")))
                       for c in conns]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return len({r["pid"] for r in results}) == 2
        finally:
            for c in conns:
                c.close()

    wait_until(two_pids, timeout=20, what="both workers serving")


@pytest.mark.ferrocorn_only
@pytest.mark.parametrize("arrival", ["one-by-one", "burst-under-load"])
def test_kept_alive_connections_spread_evenly_over_the_workers(serve, arrival):
    server = serve("-k", "gthread", "-w", "2", "--threads", "1", APP)
    wait_for_two_workers(server)
    # Let the warm-up connections' close reach both workers before counting: the workers
    # have closed their ends (none is left half-closed by the client only).
    wait_until(lambda: not any(s["state"] == TCP_CLOSE_WAIT for s in tcp_sockets(server.port)),
               timeout=10, what="the workers to close the warm-up connections")

    total = 40
    conns = []
    stop = threading.Event()
    load = []
    try:
        if arrival == "burst-under-load":
            # CPU-bound requests keep both workers' queues busy while the burst arrives.
            def spin(conn):
                while not stop.is_set():
                    conn.get("/load?spin=0.002")

            for _ in range(4):
                c = KeptConnection(server.address)
                c.get("/first")
                load.append(threading.Thread(target=spin, args=(c,), daemon=True))
                conns.append(c)
            for t in load:
                t.start()
            fresh = [KeptConnection(server.address) for _ in range(total - len(conns))]
            conns += fresh
            for c in fresh:
                c.get("/hello")
        else:
            for _ in range(total):
                c = KeptConnection(server.address)
                conns.append(c)
                c.get("/hello")
        # Every connection is still open; ask each which worker holds it.
        stop.set()
        for t in load:
            t.join(10)
        owners = collections.Counter(c.get("/who")["pid"] for c in conns)
    finally:
        stop.set()
        for c in conns:
            c.close()

    assert len(owners) == 2, owners
    fewest = min(owners.values())
    # The slack is 2 connections; allow a little for accepts that raced each other.
    assert fewest >= total // 2 - 4, "connections per worker: %s" % dict(owners)
