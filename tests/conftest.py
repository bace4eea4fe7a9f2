"""Start the real server command as a subprocess and talk to it over real sockets.

The command under test is ``FERROCORN_CMD`` (split like a shell would), else
``<repo>/.venv/bin/ferrocorn``, else ``ferrocorn`` on PATH. Pointing it at a
``gunicorn`` 27.0.1 executable runs the same suite against the reference server;
tests marked ``ferrocorn_only`` are then skipped.

Every server is started in its own session (so its process group is the master
plus its workers), logs to files under the test's ``tmp_path`` so they can be read
while it runs, and is always stopped on teardown: SIGTERM to the group, then
SIGKILL once ``STOP_GRACE`` seconds have passed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
APPS_DIR = Path(__file__).resolve().parent / "apps"

# Bounds: how long a server may take to answer its first request, how long a
# group gets between SIGTERM and SIGKILL on teardown, and the default per-test
# limit applied through pytest-timeout.
READY_TIMEOUT = 20.0
STOP_GRACE = 5.0
DEFAULT_TEST_TIMEOUT = 90

# Variables that change the server's configuration; the tests set them explicitly
# when they mean to, and never inherit them from the caller's shell.
_CONFIG_ENV_VARS = (
    "GUNICORN_CMD_ARGS",
    "WEB_CONCURRENCY",
    "PORT",
    "FORWARDED_ALLOW_IPS",
    "SENDFILE",
    "SCRIPT_NAME",
    "GUNICORN_PID",
    "GUNICORN_FD",
    "LISTEN_PID",
    "LISTEN_FDS",
    "NOTIFY_SOCKET",
)

# Every request in this suite goes to a server on this machine; a proxy configured in
# the caller's environment must never see them.
for _proxy_var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
    os.environ.pop(_proxy_var, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost,::1"

LOG_LINE_RE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4})\] \[(\d+)\] "
    r"\[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\] (.*)$"
)


def server_command() -> list[str]:
    """The argv prefix that starts the server under test."""
    configured = os.environ.get("FERROCORN_CMD")
    if configured:
        return shlex.split(configured)
    venv_cmd = REPO_ROOT / ".venv" / "bin" / "ferrocorn"
    if venv_cmd.exists():
        return [str(venv_cmd)]
    found = shutil.which("ferrocorn")
    if found:
        return [found]
    raise pytest.UsageError(
        "no server to test: set FERROCORN_CMD, run `make` to build .venv/bin/ferrocorn, "
        "or put ferrocorn on PATH"
    )


def is_gunicorn() -> bool:
    """True when the command under test is the reference gunicorn."""
    try:
        cmd = server_command()
    except pytest.UsageError:
        return False
    return any(Path(part).name.startswith("gunicorn") for part in cmd)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def children(pid: int) -> set:
    """Live (not zombie) processes whose parent is `pid`."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                # The command name (field 2) may contain spaces; it is wrapped in parentheses.
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.add(int(entry))
    return found


def socket_inodes(pid: int) -> set:
    """Inodes (ints) of the sockets process `pid` has open."""
    found = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            found.add(int(link[len("socket:["):-1]))
    return found


def wait_until(predicate, timeout: float = 20.0, what: str = "condition"):
    """Poll `predicate` until it returns something truthy (returned), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s" % what)


def read_pid(path: Path):
    """The pid in a pid file, or None while it is missing or half written."""
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


# No helper here hands out a "free" port number (bind port 0, close, pass the number on):
# another process may take the port in between. A server binds port 0 and the tests read
# the port it got from its "Listening at:" line, or it is handed a socket that is already
# bound (`fd://N`), or the port is held by a socket of the test's own for as long as the
# test needs it (`reserved_port`).


def listening_socket() -> tuple[socket.socket, int]:
    """A bound, listening TCP socket on a free loopback port (what systemd or a parent
    process hands a server), and its port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return listener, listener.getsockname()[1]


def reserved_port(host: str = "127.0.0.1") -> tuple[socket.socket, int]:
    """A socket bound to a free loopback port but not listening, and its port.

    While the test keeps the socket open, connections to the port are refused and no
    server can bind it (the socket has no SO_REUSEADDR, so a server's bind fails with
    EADDRINUSE even if the server sets that option). A test uses it for an address a
    server must not listen on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    return sock, sock.getsockname()[1]


# The master's "Listening at: <url>[,<url>...] (<pid>)" line; Gunicorn and ferrocorn print
# each listener's getsockname(), so a server bound to port 0 tells its real port here.
LISTENING_RE = re.compile(r"Listening at: (\S*) \((\d+)\)")


def parse_listeners(urls: str) -> list:
    """The addresses in a "Listening at:" line: (host, port) tuples and unix socket paths."""
    out = []
    for url in filter(None, urls.split(",")):
        if url.startswith("unix:"):
            out.append(url[len("unix:"):])
            continue
        m = re.fullmatch(r"https?://(\[([^\]]+)\]|[^:/]+):(\d+)", url)
        if not m:
            raise AssertionError("unexpected listener %r in %r" % (url, urls))
        out.append((m.group(2) or m.group(1), int(m.group(3))))
    return out


def listening_addresses(text: str) -> list | None:
    """The listeners of the first "Listening at:" line in `text` (a server log), or None."""
    m = LISTENING_RE.search(text)
    return parse_listeners(m.group(1)) if m else None


def connectable(address):
    """`address` with a wildcard host (0.0.0.0, ::) replaced by its loopback address."""
    if isinstance(address, tuple):
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(address[0], address[0])
        return (host, address[1])
    return address


def ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def base_env(runtime_dir: Path, extra: dict | None = None) -> dict:
    """The environment a server starts with: ours, minus config-changing variables."""
    env = {k: v for k, v in os.environ.items() if k not in _CONFIG_ENV_VARS}
    # Gunicorn 25+ opens a control socket under $XDG_RUNTIME_DIR (else ~/.gunicorn);
    # a per-test directory keeps concurrent servers from fighting over one path.
    env["XDG_RUNTIME_DIR"] = str(runtime_dir)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if extra:
        for key, value in extra.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
    return env


# ---------------------------------------------------------------------------
# Raw HTTP helpers: the tests need to see exact bytes (framing, Connection
# headers, EOF), which a high-level client hides.


def _connect(address, timeout: float) -> socket.socket:
    if isinstance(address, (str, Path)):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(str(address))
    else:
        sock = socket.create_connection(address, timeout=timeout)
    return sock


def raw_request(address, data: bytes | list, timeout: float = 15.0, pause: float = 0.0) -> bytes:
    """Send bytes (or a list of byte pieces, `pause` seconds apart) and read until EOF."""
    pieces = data if isinstance(data, list) else [data]
    with _connect(address, timeout) as sock:
        for i, piece in enumerate(pieces):
            if i and pause:
                time.sleep(pause)
            sock.sendall(piece)
        return read_until_eof(sock, timeout)


def read_until_eof(sock, timeout: float) -> bytes:
    """Everything the server sends until it closes (a reset counts as the close)."""
    chunks = []
    deadline = time.monotonic() + timeout
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError(
                "server did not close the connection within %ss; received so far: %r"
                % (timeout, b"".join(chunks))
            )
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


class RawResponse:
    """A parsed HTTP/1.x response: status line, ordered headers, raw and decoded body."""

    def __init__(self, raw: bytes):
        self.raw = raw
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError("no end of headers in response: %r" % raw[:500])
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        parts = self.status_line.split(" ", 2)
        self.version = parts[0]
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else ""
        self.header_list = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.header_list.append((name, value.strip()))
        self.raw_body = rest
        if self.header("transfer-encoding", "").lower() == "chunked":
            self.body, self.chunk_sizes = decode_chunked(rest)
        else:
            self.body, self.chunk_sizes = rest, None

    def header(self, name: str, default=None):
        values = self.headers_named(name)
        return values[-1] if values else default

    def headers_named(self, name: str) -> list:
        return [v for k, v in self.header_list if k.lower() == name.lower()]


def decode_chunked(data: bytes):
    """Decode a chunked body strictly; returns (body, [chunk sizes])."""
    body, sizes, pos = [], [], 0
    while True:
        end = data.index(b"\r\n", pos)
        size_text = data[pos:end].split(b";", 1)[0]
        assert re.fullmatch(rb"[0-9A-Fa-f]+", size_text), size_text
        size = int(size_text, 16)
        pos = end + 2
        if size == 0:
            assert data[pos:].startswith(b"\r\n"), "missing final CRLF: %r" % data[pos:]
            return b"".join(body), sizes
        body.append(data[pos : pos + size])
        sizes.append(size)
        assert data[pos + size : pos + size + 2] == b"\r\n", "chunk not CRLF-terminated"
        pos += size + 2


def http_get(address, path: str = "/", headers: dict | None = None, method: str = "GET",
             version: str = "HTTP/1.1", body: bytes = b"", timeout: float = 15.0) -> RawResponse:
    lines = ["%s %s %s" % (method, path, version), "Host: 127.0.0.1"]
    for name, value in (headers or {}).items():
        lines.append("%s: %s" % (name, value))
    if body:
        lines.append("Content-Length: %d" % len(body))
    payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    return RawResponse(raw_request(address, payload, timeout=timeout))


# ---------------------------------------------------------------------------
# The server process.


# `Server(address=FROM_LOG)`: the address is the one the server logs (it was told port 0).
FROM_LOG = object()


class Server:
    """One running server: its process, its address and its logs."""

    def __init__(self, args, tmp_path: Path, cwd=None, env=None, address=None, pass_fds=()):
        self.argv = server_command() + [str(a) for a in args]
        self.tmp_path = tmp_path
        self.cwd = Path(cwd) if cwd is not None else APPS_DIR
        self.env = env
        # A (host, port) tuple, a unix socket path, None when the test reads it itself, or
        # FROM_LOG: the first listener of the "Listening at:" line, read when first needed.
        self._address = address
        self.stdout_path = tmp_path / ("server-%d.stdout" % id(self))
        self.stderr_path = tmp_path / ("server-%d.stderr" % id(self))
        self._stdout = open(self.stdout_path, "wb")
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=str(self.cwd),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=self._stderr,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
        self.pgid = self.proc.pid
        self.started_at = time.monotonic()

    # -- addresses ----------------------------------------------------------
    @property
    def address(self):
        if self._address is FROM_LOG:
            self._address = connectable(self.wait_listening()[0])
        return self._address

    def wait_listening(self, timeout: float = READY_TIMEOUT) -> list:
        """The listeners the master logged on stderr ("Listening at:"), waited for. Fails
        at once if the server exits first."""
        deadline = time.monotonic() + timeout
        while True:
            alive = self.alive()  # before the read: a line written before an exit is seen
            found = listening_addresses(self.stderr_text())
            if found:
                return found
            if not alive or time.monotonic() > deadline:
                raise AssertionError(
                    "no \"Listening at:\" line (server %s); stderr:\n%s"
                    % ("exited with %s" % self.proc.returncode if not alive
                       else "still running after %ss" % timeout, self.stderr_text()[-6000:])
                )
            time.sleep(0.02)

    @property
    def host(self) -> str:
        return self.address[0]

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def url(self) -> str:
        if not isinstance(self.address, tuple):
            raise AttributeError("a unix-socket server has no URL")
        host = self.address[0]
        if ":" in host:
            host = "[%s]" % host
        return "http://%s:%d" % (host, self.address[1])

    # -- logs ---------------------------------------------------------------
    def stderr_text(self) -> str:
        return self.stderr_path.read_bytes().decode("utf-8", "replace")

    def stdout_text(self) -> str:
        return self.stdout_path.read_bytes().decode("utf-8", "replace")

    def log_lines(self) -> list:
        """Parsed `[time] [pid] [LEVEL] message` lines of stderr as (pid, level, message)."""
        out = []
        for line in self.stderr_text().splitlines():
            m = LOG_LINE_RE.match(line)
            if m:
                out.append((int(m.group(2)), m.group(3), m.group(4)))
        return out

    def wait_for_log(self, pattern, count: int = 1, timeout: float = 15.0, text=None):
        """Wait until `pattern` (a regex) matches `count` times in the log; return the matches."""
        regex = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            source = text() if text else self.stderr_text()
            matches = list(regex.finditer(source))
            if len(matches) >= count:
                return matches
            if time.monotonic() > deadline:
                raise AssertionError(
                    "pattern %r seen %d/%d times within %ss; stderr:\n%s"
                    % (pattern, len(matches), count, timeout, self.stderr_text()[-6000:])
                )
            time.sleep(0.05)

    def worker_pids(self) -> list:
        """Pids of every worker booted so far, in boot order."""
        return [int(p) for p in re.findall(r"Booting worker with pid: (\d+)", self.stderr_text())]

    @property
    def master_pid(self) -> int:
        m = re.search(r"Listening at: .* \((\d+)\)", self.stderr_text())
        return int(m.group(1)) if m else self.proc.pid

    # -- lifecycle ----------------------------------------------------------
    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float = READY_TIMEOUT, path: str = "/", mode: str = "http"):
        """Wait until the server answers (`http`) or accepts (`port`); fail with its stderr."""
        deadline = time.monotonic() + timeout
        if self._address is FROM_LOG:
            self._address = connectable(self.wait_listening(timeout)[0])
        last_error = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(
                    "server exited with %s before it was ready; stderr:\n%s"
                    % (self.proc.returncode, self.stderr_text()[-6000:])
                )
            try:
                if mode == "port":
                    _connect(self.address, 1.0).close()
                    return self
                if self._probe(path, deadline):
                    return self
            except OSError as exc:
                last_error = exc
            time.sleep(0.05)
        raise AssertionError(
            "server not ready within %ss (%s); stderr:\n%s"
            % (timeout, last_error, self.stderr_text()[-6000:])
        )

    def _probe(self, path: str, deadline: float) -> bool:
        # One connection per attempt, waited on until the deadline: an abandoned
        # probe would sit in the backlog and be served later, skewing request counts.
        # The whole response is read, so the probe never looks like a client that
        # hung up mid-response (that case has its own tests).
        with _connect(self.address, 1.0) as sock:
            sock.sendall(
                ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path).encode()
            )
            sock.settimeout(0.2)
            received = b""
            drain_until = None
            while time.monotonic() < (drain_until or deadline):
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    if not self.alive():
                        return False
                    continue
                except ConnectionResetError:
                    break
                if not data:
                    break
                received += data
                if drain_until is None and len(received) >= 7:
                    drain_until = min(deadline, time.monotonic() + 5.0)
            return received.startswith(b"HTTP/1.")

    def send_signal(self, sig: int):
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                "server still running %ss later; stderr:\n%s" % (timeout, self.stderr_text()[-6000:])
            ) from None

    def stop(self):
        """SIGTERM the whole process group, SIGKILL whatever is left after STOP_GRACE."""
        if self.alive():
            _killpg(self.pgid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                pass
        # Workers outlive a dead master only by a bug, but must never outlive the test.
        _killpg(self.pgid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            pass
        self._stdout.close()
        self._stderr.close()


def _killpg(pgid: int, sig: int):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_command(args, tmp_path: Path, cwd=None, env=None, timeout: float = 30.0):
    """Run the server command to completion (for --version, failures, ...).

    Returns a CompletedProcess with text stdout/stderr and an `elapsed` attribute.
    The process group is killed if it outlives `timeout`, and the test fails.
    """
    argv = server_command() + [str(a) for a in args]
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=str(cwd if cwd is not None else APPS_DIR),
        env=env if env is not None else base_env(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(
            "%r did not finish within %ss; stderr:\n%s"
            % (argv, timeout, err.decode("utf-8", "replace")[-6000:])
        ) from None
    finally:
        _killpg(proc.pid, signal.SIGKILL)
    result = subprocess.CompletedProcess(
        argv, proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    )
    result.elapsed = time.monotonic() - start
    return result


# ---------------------------------------------------------------------------
# Fixtures.


@pytest.fixture
def serve(request, tmp_path):
    """Factory: ``serve(*args, bind=..., cwd=..., env=..., ready=...)`` -> a ready Server.

    - ``args``: the command-line arguments after the program name (app URI included).
    - ``bind``: ``"tcp"`` (default) adds ``-b 127.0.0.1:0`` and takes the port the server
      got from its "Listening at:" line on stderr; ``"log"`` adds nothing but reads the
      address the same way (the test's own arguments, config file or environment bind a
      port 0); ``"fd"`` hands the server a listening socket on a free loopback port as
      ``-b fd://N`` (for a server whose "Listening at:" line does not reach stderr);
      ``"unix"`` adds ``-b unix:<tmp>/s.sock``; a ``(host, port)`` tuple or a path records
      the address the test arranged itself (no ``-b`` is added); ``None`` adds nothing and
      leaves ``.address`` unset.
    - ``env``: extra variables (``None`` values remove a variable).
    - ``ready``: ``"http"`` waits for an HTTP answer on ``ready_path``, ``"port"`` for an
      accepted connection, ``None`` does not wait.
    """
    servers = []

    def start(*args, bind="tcp", cwd=None, env=None, ready="http", ready_path="/",
              ready_timeout=READY_TIMEOUT, pass_fds=()):
        args = list(args)
        address = None
        listener = None
        if bind == "tcp":
            address = FROM_LOG
            args = ["-b", "127.0.0.1:0"] + args
        elif bind == "log":
            address = FROM_LOG
        elif bind == "fd":
            listener, port = listening_socket()
            address = ("127.0.0.1", port)
            args = ["-b", "fd://%d" % listener.fileno()] + args
            pass_fds = tuple(pass_fds) + (listener.fileno(),)
        elif bind == "unix":
            address = str(tmp_path / ("s%d.sock" % len(servers)))
            args = ["-b", "unix:%s" % address] + args
        elif bind is not None:
            address = bind
        runtime_dir = tmp_path / ("run%d" % len(servers))
        runtime_dir.mkdir()
        try:
            server = Server(
                args, tmp_path, cwd=cwd, env=base_env(runtime_dir, env), address=address,
                pass_fds=pass_fds,
            )
        finally:
            # The server holds its own copy; ours would keep accepting into the backlog
            # after the server is gone.
            if listener is not None:
                listener.close()
        servers.append(server)
        if ready:
            server.wait_ready(timeout=ready_timeout, path=ready_path, mode=ready)
        return server

    yield start
    stop_servers(request, servers)


def stop_servers(request, servers):
    """A fixture's teardown: stop every server it started; when the test failed, print the
    tail of each one's stderr."""
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for server in servers:
        server.stop()
        if failed:
            print("---- server %r stderr (tail) ----" % (server.argv,))
            print(server.stderr_text()[-8000:])


@pytest.fixture
def run(tmp_path):
    """``run(*args, cwd=None, env=None, timeout=30)`` -> CompletedProcess (+ ``elapsed``)."""

    def _run(*args, cwd=None, env=None, timeout=30.0):
        return run_command(args, tmp_path, cwd=cwd, env=base_env(tmp_path, env), timeout=timeout)

    return _run


# ---------------------------------------------------------------------------
# Hooks: markers, time limits, and the call report for teardown diagnostics.


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "ferrocorn_only: checks a deliberate ferrocorn difference; skipped against gunicorn",
    )
    if not config.pluginmanager.hasplugin("timeout"):
        raise pytest.UsageError(
            "pytest-timeout is required (pip install -r requirements-test.txt): "
            "every integration test must be bounded in time"
        )


def pytest_collection_modifyitems(config, items):
    skip_reference = pytest.mark.skip(reason="ferrocorn-only behaviour; testing gunicorn")
    reference = is_gunicorn()
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TEST_TIMEOUT))
        if reference and item.get_closest_marker("ferrocorn_only"):
            item.add_marker(skip_reference)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, "rep_" + rep.when, rep)
    return rep
