"""The server under test: the tiny app it serves (WSGI for sync and gthread, the same app in
ASGI 3 for asgi), starting it with a clean environment and waiting until it answers, scanning
its log for crash lines (and the worker pid), the worker's RSS, and stopping it (TERM, then
KILL of its process group).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path


# The app under the server. It reads the whole body; a read the server times out (the client
# sent less than it announced) or a vanished client is answered 408, so the log shows a
# traceback only for something else going wrong. Parse errors raised by the body reader
# propagate, so the server answers them itself (400).
APP_SOURCE = '''\
import errno

_CLIENT_GONE = {"NoMoreData", "UnexpectedEOF", "ClientDisconnected"}


_TIMED_OUT = ("timed out", "Resource temporarily unavailable", "os error 11)", "os error 110)")


def _client_problem(exc):
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, OSError) and (exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ETIMEDOUT)
                                     or any(t in str(exc) for t in _TIMED_OUT)):
        return True
    return type(exc).__name__ in _CLIENT_GONE


def app(environ, start_response):
    try:
        body = environ["wsgi.input"].read()
    except Exception as exc:
        if not _client_problem(exc):
            raise
        out = b"client timeout: " + type(exc).__name__.encode() + b"\\n"
        start_response("408 Request Timeout", [("Content-Type", "text/plain"),
                                               ("Content-Length", str(len(out)))])
        return [out]
    path = environ.get("PATH_INFO", "").encode("latin-1", "replace")
    out = b"len=%d path=%s\\n" % (len(body), path[:200])
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    if environ.get("REQUEST_METHOD") == "HEAD":
        return []
    return [out]
'''

# The same app for the ASGI worker (`-k asgi`), as an ASGI 3 coroutine. It reads the whole body
# through receive(); an `http.disconnect` before the last `http.request` (the server's read of
# the body timed out, the body was invalid, or the client left) is answered 408 as the WSGI app
# answers a timed-out read: the server may drop that answer (the client is gone), and both
# ferrocorn and Gunicorn ignore a send after a disconnect. A WebSocket handshake is refused
# (`websocket.close` before accepting: the server answers 403) so the connection ends, as the
# client never closes its side. Lifespan is supported, so the worker starts either way.
ASGI_APP_SOURCE = '''\
async def _lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(send, status, out, head):
    try:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain"),
                                (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": b"" if head else out})
    except OSError:
        pass  # the client is gone (ASGI 2.4 lets send() raise an OSError then)


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "lifespan":
        return await _lifespan(receive, send)
    if kind == "websocket":
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.close", "code": 1000})
        return
    if kind != "http":
        raise RuntimeError("unexpected scope type %r" % kind)
    head = scope.get("method") == "HEAD"
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.request":
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        elif message["type"] == "http.disconnect":
            await _respond(send, 408, b"client timeout: disconnect\\n", head)
            return
        else:
            raise RuntimeError("unexpected message %r" % (message["type"],))
    path = scope.get("path", "").encode("utf-8", "replace")
    out = b"len=%d path=%s\\n" % (len(body), path[:200])
    await _respond(send, 200, out, head)
'''

# Variables that change a server's configuration; never inherited from the caller.
CONFIG_ENV_VARS = (
    "GUNICORN_CMD_ARGS", "WEB_CONCURRENCY", "PORT", "FORWARDED_ALLOW_IPS", "SENDFILE",
    "SCRIPT_NAME", "GUNICORN_PID", "GUNICORN_FD", "LISTEN_PID", "LISTEN_FDS", "NOTIFY_SOCKET",
)

# The worker classes the harness knows how to serve (the app and the options differ).
WORKERS = ("sync", "gthread", "asgi")

LISTENING_RE = re.compile(rb"Listening at: http://127\.0\.0\.1:(\d+)")
BOOTING_RE = re.compile(rb"Booting worker with pid: (\d+)")
CRASH_RE = re.compile(
    rb"panicked|Traceback|Worker exiting|WORKER TIMEOUT|exited with code|was sent SIG"
    rb"|Booting worker with pid"
)


class Server:
    def __init__(self, cmd, worker, timeout, threads, workdir: Path):
        self.workdir = workdir
        (workdir / "app.py").write_text(ASGI_APP_SOURCE if worker == "asgi" else APP_SOURCE)
        (workdir / "run").mkdir(exist_ok=True)
        self.log_path = workdir / "server.log"
        argv = shlex.split(cmd)
        if argv and "/" in argv[0]:
            argv[0] = os.path.abspath(argv[0])  # the server runs in the temp dir
        self.argv = argv + [
            "-k", worker, "-w", "1", "--timeout", str(timeout), "--keep-alive", "2",
            "--graceful-timeout", "5", "--log-level", "debug", "-b", "127.0.0.1:0",
            "--chdir", str(workdir),
        ] + (["--threads", str(threads)] if worker == "gthread" else []) + ["app:app"]
        env = {k: v for k, v in os.environ.items() if k not in CONFIG_ENV_VARS}
        for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            env.pop(var, None)
        env["XDG_RUNTIME_DIR"] = str(workdir / "run")
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        self._log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                self.argv, cwd=str(workdir), env=env, stdin=subprocess.DEVNULL,
                stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        except OSError as exc:
            self._log.close()
            raise RuntimeError("cannot start %r: %s" % (self.argv[0], exc)) from None
        self.port = None
        self.boots = 0
        self.worker_pid = None
        self._scan_at = 0
        self._partial = b""

    def log_bytes(self) -> bytes:
        try:
            return self.log_path.read_bytes()
        except OSError:
            return b""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_bytes()
            m = LISTENING_RE.search(text)
            boots = BOOTING_RE.findall(text)
            if m and boots:
                self.port = int(m.group(1))
                if self._probe():
                    return
            if not self.alive():
                break
            time.sleep(0.05)
        raise RuntimeError("server not ready (%s); log tail:\n%s" % (
            "exited with %s" % self.proc.returncode if not self.alive() else "timed out",
            self.log_bytes()[-4000:].decode("utf-8", "replace")))

    def _probe(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                s.sendall(b"GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                got = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            return got.startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def scan_log(self):
        """New crash lines in the log since the last scan; tracks the worker pid."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._scan_at)
                new = f.read()
        except OSError:
            return []
        self._scan_at += len(new)
        new = self._partial + new
        lines = new.split(b"\n")
        self._partial = lines.pop()
        hits = []
        for line in lines:
            m = BOOTING_RE.search(line)
            if m:
                self.boots += 1
                self.worker_pid = int(m.group(1))
                if self.boots == 1:
                    continue
            if CRASH_RE.search(line):
                hits.append(line.decode("utf-8", "replace")[:300])
        return hits

    def rss_kb(self):
        if not self.worker_pid:
            return None
        try:
            for line in Path("/proc/%d/status" % self.worker_pid).read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return None

    def stop(self):
        """TERM the master and wait; KILL the whole group if anything is left."""
        if self.alive():
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


def start_server(args, workdir):
    server = Server(args.cmd, args.worker, args.timeout, args.threads, workdir)
    try:
        server.wait_ready()
    except Exception:
        server.stop()
        raise
    return server
