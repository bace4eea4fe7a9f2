"""A raw client for the control socket protocol (`gunicornc`'s wire format), written from
the protocol description: a 4-byte big-endian length, then that many bytes of UTF-8 JSON.
Tests use it instead of `gunicornc` so they see exactly what goes over the socket."""

import json
import socket
import struct
import time


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def encode(message) -> bytes:
    return frame(json.dumps(message).encode("utf-8"))


class ControlClient:
    """One connection; `call` sends a request and returns the decoded reply."""

    def __init__(self, path, timeout: float = 10.0, connect_retry: float = 5.0):
        # Gunicorn closes and re-creates its socket around every fork, so a connect may
        # briefly find nothing there: retry for a few seconds.
        deadline = time.monotonic() + connect_retry
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            try:
                self.sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.next_id = 1

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data: bytes):
        self.sock.sendall(data)

    def send(self, message):
        self.send_raw(encode(message))

    def _read_exactly(self, n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def read_reply(self):
        """The next reply, or None when the server closed the connection first."""
        head = self._read_exactly(4)
        if head is None:
            return None
        (length,) = struct.unpack(">I", head)
        body = self._read_exactly(length)
        if body is None:
            return None
        return json.loads(body.decode("utf-8"))

    def call(self, command: str, args=None, request_id=None):
        if request_id is None:
            request_id = self.next_id
            self.next_id += 1
        message = {"id": request_id, "command": command}
        if args is not None:
            message["args"] = args
        self.send(message)
        reply = self.read_reply()
        assert reply is not None, "connection closed without a reply to %r" % command
        return reply

    def closed_by_server(self, timeout: float = 10.0) -> bool:
        """Whether the server closes the connection (EOF or reset) within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def call(path, command: str, args=None):
    """One request on a fresh connection."""
    with ControlClient(path) as c:
        return c.call(command, args)


def data(path, command: str, args=None):
    """The `data` of an ok reply (fails on an error reply)."""
    reply = call(path, command, args)
    assert reply["status"] == "ok", reply
    return reply["data"]


def poll(path, command: str, args=None):
    """`data` for polling loops: None when the request failed at the socket level (Gunicorn
    stops its control thread around every fork, resetting or stalling connections then)."""
    try:
        with ControlClient(path, timeout=3.0) as c:
            reply = c.call(command, args)
    except (OSError, AssertionError):
        return None
    assert reply["status"] == "ok", reply
    return reply["data"]


def answers(path) -> bool:
    """Whether something accepts connections and answers `help` at `path`."""
    try:
        with ControlClient(path, timeout=5.0, connect_retry=0.0) as c:
            return c.call("help")["status"] == "ok"
    except (OSError, AssertionError, ValueError):
        return False


def wait_answering(path, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(path):
            return
        time.sleep(0.05)
    raise AssertionError("no control socket answering at %s within %ss" % (path, timeout))
