"""Helpers for the logging-configuration, syslog and logger-class tests: syslog receivers
that run in the test process, and small readers for the files the servers write."""

from __future__ import annotations

import json
import re
import signal
import selectors
import socket
import threading
import time
from pathlib import Path

import requests

# One syslog record as Gunicorn's SysLogHandler sends it:
# `<PRI>gunicorn.<prefix>.<error|access>: [<pid>] <message>` and a NUL byte.
SYSLOG_RECORD_RE = re.compile(r"\A<(\d+)>(\S+): \[(\d+)\] (.*)\x00\Z", re.S)


class SyslogRecord:
    """One received record: the raw bytes, and the parts when it has the expected shape."""

    def __init__(self, raw: bytes):
        self.raw = raw
        self.text = raw.decode("utf-8", "replace")
        m = SYSLOG_RECORD_RE.match(self.text)
        self.ok = m is not None
        self.pri = int(m.group(1)) if m else None
        self.tag = m.group(2) if m else None
        self.pid = int(m.group(3)) if m else None
        self.message = m.group(4) if m else None

    def __repr__(self):
        return "SyslogRecord(%r)" % self.raw


class SyslogReceiver:
    """A syslog server in the test process.

    kind: ``udp`` (127.0.0.1, a free port), ``tcp`` (listens, accepts any number of
    connections, splits each byte stream on NUL), ``unix_dgram`` or ``unix_stream`` (a
    socket at ``path``). ``address`` is the value for ``--log-syslog-to`` (``suffix`` is
    appended, e.g. ``#dgram``)."""

    def __init__(self, kind: str, path: Path | None = None, suffix: str = ""):
        self.kind = kind
        self._records: list = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sel = selectors.DefaultSelector()
        self._buffers: dict = {}
        self.connections = 0
        if kind == "udp":
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            self.address = "udp://127.0.0.1:%d" % sock.getsockname()[1]
        elif kind == "tcp":
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            sock.listen(16)
            self.address = "tcp://127.0.0.1:%d" % sock.getsockname()[1]
        elif kind in ("unix_dgram", "unix_stream"):
            assert path is not None and len(str(path)) < 100, path
            socktype = socket.SOCK_DGRAM if kind == "unix_dgram" else socket.SOCK_STREAM
            sock = socket.socket(socket.AF_UNIX, socktype)
            sock.bind(str(path))
            if kind == "unix_stream":
                sock.listen(16)
            self.address = "unix://%s" % path
        else:
            raise ValueError(kind)
        self.address += suffix
        self._main = sock
        sock.setblocking(False)
        self._sel.register(sock, selectors.EVENT_READ, "main")
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        stream = self.kind in ("tcp", "unix_stream")
        while not self._stop.is_set():
            for key, _ in self._sel.select(timeout=0.1):
                sock = key.fileobj
                try:
                    if key.data == "main" and stream:
                        conn, _ = sock.accept()
                        conn.setblocking(False)
                        self._buffers[conn] = b""
                        self.connections += 1
                        self._sel.register(conn, selectors.EVENT_READ, "conn")
                    elif key.data == "main":
                        data = sock.recv(65536)
                        with self._lock:
                            self._records.append(SyslogRecord(data))
                    else:
                        data = sock.recv(65536)
                        if not data:
                            self._sel.unregister(sock)
                            sock.close()
                            tail = self._buffers.pop(sock)
                            if tail:  # an unterminated record: kept, it will not parse
                                with self._lock:
                                    self._records.append(SyslogRecord(tail))
                            continue
                        buf = self._buffers[sock] + data
                        *complete, rest = buf.split(b"\x00")
                        self._buffers[sock] = rest
                        with self._lock:
                            self._records.extend(SyslogRecord(c + b"\x00") for c in complete)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    if self._stop.is_set():
                        return

    def records(self) -> list:
        with self._lock:
            return list(self._records)

    def matching(self, pattern) -> list:
        regex = re.compile(pattern, re.S)
        return [r for r in self.records() if r.message is not None and regex.search(r.message)]

    def wait_for(self, pattern, count: int = 1, timeout: float = 15.0) -> list:
        """Records whose message matches `pattern` (a regex), once there are `count`."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.matching(pattern)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    "syslog: %r seen %d/%d times within %ss; received:\n%s"
                    % (pattern, len(found), count, timeout,
                       "\n".join(repr(r.raw) for r in self.records()[-40:]))
                )
            time.sleep(0.05)

    def close(self):
        self._stop.set()
        self._thread.join(5)
        for key in list(self._sel.get_map().values()):
            try:
                key.fileobj.close()
            except OSError:
                pass
        self._sel.close()


def read_jsonl(path: Path) -> list:
    """The JSON lines of a file the apps append to (an empty list while it is missing)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    # A line being written is incomplete until its newline arrives.
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def file_text(path: Path) -> str:
    """The text of a file, or "" while it does not exist."""
    try:
        return Path(path).read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def lines_of(text: str) -> list:
    return [line for line in text.splitlines() if line.strip()]


def pythonjsonlogger_formatter_path() -> str:
    """The dotted path of python-json-logger's formatter class: `pythonjsonlogger.json`
    since 3.1; older releases only have `pythonjsonlogger.jsonlogger`."""
    import importlib.util

    if importlib.util.find_spec("pythonjsonlogger") is None:
        return ""
    if importlib.util.find_spec("pythonjsonlogger.json") is not None:
        return "pythonjsonlogger.json.JsonFormatter"
    return "pythonjsonlogger.jsonlogger.JsonFormatter"


def write_conf(path: Path, **settings) -> Path:
    """A Python config file setting each keyword to its repr."""
    path.write_text("".join("%s = %r\n" % item for item in settings.items()))
    return path


def hup_then_after_and_final(server) -> tuple[int, int]:
    """HUP a one-worker server, wait until the new worker replaced the old one, then request
    /after and /final and wait for the /final access line on stdout: (old pid, new pid)."""
    (old,) = server.worker_pids()
    server.send_signal(signal.SIGHUP)
    server.wait_for_log(r"Hang up: Master")
    server.wait_for_log(r"Booting worker with pid: \d+", count=2)
    server.wait_for_log(r"Worker exiting \(pid: %d\)" % old)
    new = server.worker_pids()[1]
    requests.get(server.url + "/after", timeout=10)
    requests.get(server.url + "/final", timeout=10)
    server.wait_for_log(r"GET /final", text=server.stdout_text)
    return old, new
