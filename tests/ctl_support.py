"""Helpers for the control-socket client tests: which client to run, how to run it, and a
stand-in server that answers with whatever a test scripts (odd replies, silence, closes).

The client is chosen from the server under test: `gunicornc` beside a `gunicorn` executable
(the suite's Gunicorn mode), `ferrocornc` beside a `ferrocorn` one.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import base_env, is_gunicorn, server_command

SERVER_NAME = "gunicorn" if is_gunicorn() else "ferrocorn"
PROMPT = SERVER_NAME + "> "


def client_command() -> list:
    """The argv prefix of the client that goes with the server under test."""
    for part in server_command():
        path = Path(part)
        if path.name == SERVER_NAME:
            client = path.with_name(SERVER_NAME + "c")
            if not client.exists():
                pytest.fail("no %s beside %s (run `make install`)" % (client.name, path))
            return [str(client)]
    pytest.fail("cannot tell where %sc is: the server command %r names no %s executable"
                % (SERVER_NAME, server_command(), SERVER_NAME))


def client_env(tmp_path: Path, runtime_dir: Path | None = None, extra: dict | None = None) -> dict:
    """The client's environment: a home of its own (history files land there) and, unless
    given, an XDG_RUNTIME_DIR that no server uses."""
    home = tmp_path / "client-home"
    home.mkdir(exist_ok=True)
    runtime = runtime_dir if runtime_dir is not None else tmp_path / "client-run"
    runtime.mkdir(exist_ok=True)
    return base_env(runtime, {"HOME": str(home), **(extra or {})})


def run_client(tmp_path: Path, *args, input: str | None = None, env: dict | None = None,
               timeout: float = 30.0, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run(
        client_command() + [str(a) for a in args],
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=env if env is not None else client_env(tmp_path),
        cwd=str(tmp_path),
        text=True,
        timeout=timeout,
    )


def ctl(tmp_path, path, *command_and_flags, **kwargs):
    """Run the client once: `ctl(tmp, path, "show workers", "-j")` runs `-c "show workers"`."""
    command, *flags = command_and_flags
    return run_client(tmp_path, "-s", path, "-c", command, *flags, **kwargs)


def frame(message) -> bytes:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return struct.pack(">I", len(body)) + body


def read_frame(conn: socket.socket):
    """One request from the client, or None at EOF."""
    head = _read_exactly(conn, 4)
    if head is None:
        return None
    body = _read_exactly(conn, struct.unpack(">I", head)[0])
    return None if body is None else json.loads(body)


def _read_exactly(conn, size):
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class FakeControlServer:
    """A unix socket that hands each request to `respond(conn, request, index)`, which
    writes whatever it likes and returns False to end the connection. Requests are recorded
    in `.requests`; `.connections` counts accepted connections."""

    def __init__(self, path: Path, respond):
        self.path = str(path)
        self.respond = respond
        self.requests = []
        self.connections = 0
        self.request_seen = threading.Event()
        self.connection_closed = threading.Event()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        self._sock.listen(8)
        self._stop = False
        self._open = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        try:
            while True:
                request = read_frame(conn)
                if request is None:
                    return
                self.requests.append(request)
                self.request_seen.set()
                if self.respond(conn, request, len(self.requests) - 1) is False:
                    return
        except OSError:
            return
        finally:
            conn.close()
            self.connection_closed.set()

    def close(self):
        self._stop = True
        try:
            # Wakes the accept() in the serving thread; close() alone does not on Linux.
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        for conn in self._open:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
        if os.path.exists(self.path):
            os.unlink(self.path)

