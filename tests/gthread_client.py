"""Client-side helpers for the gthread tests: raw HTTP/1.1 requests and responses on
sockets, and conditions to wait for (a request reaching the app, connections accepted,
a connection parked in a worker's epoll set, a worker that stopped listening)."""

from __future__ import annotations

import json
import os
import re
import resource
import select
import socket
import time
from urllib.parse import quote

import pytest

from conftest import pid_alive, wait_until
from netstate import TCP_LISTEN, accept_queue, tcp_sockets

APP = "gthread_app:app"
GTHREAD = ("-k", "gthread")


def request(path="/", method="GET", headers=None, body=b"", version="HTTP/1.1",
            content_length=None) -> bytes:
    """The bytes of one request; `content_length` overrides the body's real length."""
    lines = ["%s %s %s" % (method, path, version), "Host: 127.0.0.1"]
    for name, value in (headers or {}).items():
        lines.append("%s: %s" % (name, value))
    if body or content_length is not None:
        length = len(body) if content_length is None else content_length
        lines.append("Content-Length: %d" % length)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Response:
    """A response read off a kept connection: status, headers, and (once read) its body."""

    def __init__(self, head: bytes):
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.status = int(lines[0].split(" ", 2)[1])
        self.header_list = [
            tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:]
        ]
        self.head = head
        self.body = b""

    @property
    def raw(self) -> bytes:
        return self.head + b"\r\n\r\n" + self.body

    def header(self, name: str, default=None):
        values = [v for k, v in self.header_list if k.lower() == name.lower()]
        return values[-1] if values else default


class Client:
    """One connection that reads responses one at a time, so a test can see keep-alive,
    pipelining and the moment the server closes."""

    def __init__(self, address, timeout: float = 10.0):
        self.sock = socket.create_connection(address, timeout=timeout)
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise EOFError("server closed the connection; unread: %r" % self.buf[:300])
        self.buf += chunk

    def _take(self, size: int) -> bytes:
        while len(self.buf) < size:
            self._fill()
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def _take_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_head(self) -> Response:
        """Status line and headers only; the body is left for `read_chunk`."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return Response(head)

    def read_chunk(self) -> bytes:
        """The next chunk of a chunked body; b"" for the last one (its trailers are consumed)."""
        size = int(self._take_line().split(b";", 1)[0], 16)
        if size == 0:
            while self._take_line():
                pass
            return b""
        data = self._take(size)
        assert self._take_line() == b"", "chunk not CRLF-terminated"
        return data

    def read_response(self) -> Response:
        """One whole response, framed by Content-Length, chunked encoding or the close."""
        head = self.read_head()
        if head.header("transfer-encoding", "").lower() == "chunked":
            body = b"".join(iter(self.read_chunk, b""))
        elif head.header("content-length") is not None:
            body = self._take(int(head.header("content-length")))
        else:
            body = self.read_until_eof()
        head.body = body
        return head

    def read_until_eof(self, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                self._fill()
            except EOFError:
                data, self.buf = self.buf, b""
                return data

    def wait_eof(self, timeout: float) -> float:
        """Seconds until the server closes; fails if it sends anything or outlasts `timeout`."""
        start = time.monotonic()
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        except socket.timeout:
            raise AssertionError("connection still open after %ss" % timeout) from None
        assert data == b"", "unexpected bytes instead of a close: %r" % data[:300]
        return time.monotonic() - start

    def is_open(self) -> bool:
        return still_open(self.sock)


def get(address, path, headers=None, timeout=10.0) -> Response:
    """One request on its own connection, closed after the response."""
    headers = dict(headers or {})
    headers.setdefault("Connection", "close")
    with Client(address, timeout) as client:
        client.send(request(path, headers=headers))
        return client.read_response()


def data_of(resp: Response) -> dict:
    assert resp.status == 200, resp.raw[:500]
    return json.loads(resp.body)


def closes(resp: Response) -> bool:
    return resp.header("connection", "").lower() == "close"


def timed(func, *args, **kwargs):
    start = time.monotonic()
    result = func(*args, **kwargs)
    return result, time.monotonic() - start


def still_open(sock: socket.socket) -> bool:
    """True unless the server closed `sock` (nothing is consumed; never blocks)."""
    # A socket with a timeout waits for readiness before recv, so ask select instead.
    if not select.select([sock], [], [], 0)[0]:
        return True
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except OSError:
        return False


def started_marker(tmp_path):
    """A query parameter that makes the app write a marker file when the request reaches it,
    and a function that waits for that file."""
    marker = tmp_path / ("started-%d" % time.monotonic_ns())

    def wait():
        wait_until(marker.exists, timeout=10, what="the request to reach the app")

    return "started=%s" % quote(str(marker)), wait


def wait_accepted(server):
    """Wait until the server has accepted every connection made so far (none wait in the
    listening socket's accept queue)."""
    wait_until(lambda: accept_queue(server.port) == 0, timeout=10,
               what="the server to accept the connections")


def in_epoll(pid: int, inodes: set) -> bool:
    """True when process `pid` has a socket with one of these inodes in one of its epoll
    interest lists, i.e. it waits for that socket to become ready (from /proc fdinfo)."""
    links = {}
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                links[fd] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                pass
    except OSError:
        return False
    wanted = {fd for fd, link in links.items() if link in {"socket:[%d]" % i for i in inodes}}
    for fd, link in links.items():
        if link != "anon_inode:[eventpoll]":
            continue
        try:
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                registered = set(re.findall(r"^tfd:\s*(\d+)", f.read(), re.M))
        except OSError:
            continue
        if wanted & registered:
            return True
    return False


def parked(server, client) -> bool:
    """True once a worker waits for the next request on `client`'s connection: the server's
    end of it is in the worker's epoll set. (Gunicorn registers a kept-alive connection
    there when its main thread parks it, after the response was sent.)"""
    port = client.sock.getsockname()[1]
    inodes = {s["inode"] for s in tcp_sockets(server.port) if s["remote_port"] == port}
    return any(in_epoll(pid, inodes) for pid in server.worker_pids() if pid_alive(pid))


def stopped_listening(server, pid: int) -> bool:
    """True once worker `pid` no longer waits for connections on the listening socket:
    both Gunicorn and ferrocorn take it out of the worker's epoll set when TERM to the
    worker begins its graceful stop."""
    inodes = {s["inode"] for s in tcp_sockets(server.port) if s["state"] == TCP_LISTEN}
    return not in_epoll(pid, inodes)


def raise_nofile(wanted: int):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < wanted:
        pytest.skip("RLIMIT_NOFILE cannot be raised to %d" % wanted)
