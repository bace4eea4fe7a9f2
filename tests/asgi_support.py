"""Helpers for the ASGI HTTP tests (`test_asgi_http_*.py`): a server shared by the tests
of one module, a client connection that reads one response at a time (keep-alive,
pipelining), and the marker files `apps/asgi_http.py` writes."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

from conftest import FROM_LOG, RawResponse, Server, base_env, wait_until

APP = "asgi_http:app"
# Every server in these tests: the ASGI worker, without lifespan unless a test asks.
ASGI_ARGS = ["-k", "asgi", "--asgi-lifespan", "off"]


def shared_server(tmp_path_factory, name: str, extra_args=()):
    """Start a server that several tests of a module share; a generator for a
    module-scoped fixture (stops the server when the module is done)."""
    tmp = tmp_path_factory.mktemp(name)
    markers = tmp / "markers"
    markers.mkdir()
    runtime = tmp / "run"
    runtime.mkdir()
    server = Server(
        ["-b", "127.0.0.1:0"] + ASGI_ARGS + list(extra_args) + [APP],
        tmp,
        env=base_env(runtime, {"ASGI_HTTP_MARKERS": str(markers)}),
        address=FROM_LOG,
    )
    server.markers = markers
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def report_on_failure(request, server):
    """After a failed test, print the tail of a shared server's log."""
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print("---- shared server %r stderr (tail) ----" % (server.argv,))
        print(server.stderr_text()[-8000:])


def start(serve, tmp_path, *args, **kwargs):
    """`serve` the test app with the ASGI worker, a marker directory and `args`."""
    markers = tmp_path / "markers"
    markers.mkdir(exist_ok=True)
    env = dict(kwargs.pop("env", None) or {})
    env["ASGI_HTTP_MARKERS"] = str(markers)
    server = serve(*(ASGI_ARGS + list(args) + [APP]), env=env, **kwargs)
    server.markers = markers
    return server


# ---------------------------------------------------------------------------
# Markers written by the app (`?record=<name>`): one JSON value a line.


def records(server, name: str) -> list:
    path = Path(server.markers) / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_records(server, name: str, count: int = 1, timeout: float = 10.0) -> list:
    """The app's records under `name`, once there are at least `count`."""
    wait_until(lambda: len(records(server, name)) >= count, timeout=timeout,
               what="%d record(s) %r from the app" % (count, name))
    return records(server, name)


# ---------------------------------------------------------------------------
# A client connection that reads responses one at a time.


def request_bytes(target: str, method: str = "GET", version: str = "HTTP/1.1",
                  headers=(), body: bytes = b"") -> bytes:
    """A request; `headers` is a list of (name, value) pairs, Host first unless given."""
    lines = ["%s %s %s" % (method, target, version)]
    names = [name.lower() for name, _ in headers]
    if "host" not in names:
        lines.append("Host: 127.0.0.1")
    lines += ["%s: %s" % (name, value) for name, value in headers]
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Client:
    """One connection to a server; `read_response()` reads exactly one response, so a
    test can send more requests on the connection and see whether the server closed it."""

    def __init__(self, address, timeout: float = 10.0):
        if isinstance(address, (str, Path)):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(str(address))
        else:
            self.sock = socket.create_connection(address, timeout=timeout)
        self.buf = b""
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, data: bytes):
        self.sock.sendall(data)

    def request(self, target: str, **kwargs) -> RawResponse:
        self.send(request_bytes(target, **kwargs))
        return self.read_response(head=kwargs.get("method") == "HEAD")

    def _fill(self) -> bool:
        """Read more bytes; False at EOF (a reset counts as EOF)."""
        if self.eof:
            return False
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _take_until(self, marker: bytes, start: int = 0) -> int:
        """Index just past `marker` in the buffer, reading until it is there."""
        while True:
            index = self.buf.find(marker, start)
            if index >= 0:
                return index + len(marker)
            if not self._fill():
                raise EOFError("connection closed before %r; got %r" % (marker, self.buf[-300:]))

    def _need(self, size: int):
        while len(self.buf) < size:
            if not self._fill():
                raise EOFError("connection closed after %d of %d bytes" % (len(self.buf), size))

    def read_head(self) -> bytes:
        end = self._take_until(b"\r\n\r\n")
        head, self.buf = self.buf[:end], self.buf[end:]
        return head

    def read_response(self, head: bool = False) -> RawResponse:
        """One final response (1xx responses before it are skipped and kept in
        `self.informational`). The body is framed as the headers say; a response with
        neither Content-Length nor chunked coding is read to EOF."""
        self.informational = []
        while True:
            raw_head = self.read_head()
            status = int(raw_head.split(b" ", 2)[1])
            if 100 <= status < 200:
                self.informational.append(raw_head)
                continue
            break
        fields = {}
        for line in raw_head.decode("latin-1").split("\r\n")[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                fields.setdefault(name.strip().lower(), value.strip())
        if head or status in (204, 304):
            body = b""
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            pos = 0
            while True:
                line_end = self._take_until(b"\r\n", pos)
                size = int(self.buf[pos:line_end - 2].split(b";")[0], 16)
                if size == 0:
                    pos = self._take_until(b"\r\n", line_end)
                    break
                self._need(line_end + size + 2)
                pos = line_end + size + 2
            body, self.buf = self.buf[:pos], self.buf[pos:]
        elif "content-length" in fields:
            size = int(fields["content-length"])
            self._need(size)
            body, self.buf = self.buf[:size], self.buf[size:]
        else:
            while self._fill():
                pass
            body, self.buf = self.buf, b""
        return RawResponse(raw_head + body)

    def closed_by_server(self, timeout: float = 5.0) -> bool:
        """True if the server closes the connection within `timeout` with nothing more
        sent; False if it is still open then. Bytes arriving instead fail the test."""
        if self.eof:
            return True
        self.sock.settimeout(timeout)
        try:
            got = self._fill()
        except socket.timeout:
            return False
        assert not got, "unexpected bytes after the response: %r" % self.buf[:300]
        return True

    def read_to_eof(self, timeout: float = 10.0) -> bytes:
        """Everything up to the server's close; fails if it is still open after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("connection still open after %ss; got %r"
                                   % (timeout, self.buf[-300:]))
            self.sock.settimeout(remaining)
            try:
                if not self._fill():
                    break
            except socket.timeout:
                continue
        data, self.buf = self.buf, b""
        return data


def json_body(resp: RawResponse):
    assert resp.status == 200, resp.raw[:500]
    return json.loads(resp.body)


def log_lines_matching(server, pattern: str) -> list:
    regex = re.compile(pattern)
    return [line for line in server.stderr_text().splitlines() if regex.search(line)]
