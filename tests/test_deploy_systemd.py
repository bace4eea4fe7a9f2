"""The deploy guide's systemd units, run without systemd: docs/deploy/ferrocorn.socket and
ferrocorn.service are parsed, and the server is started the way systemd starts it from
them. The test plays systemd's part: it binds the socket of ListenStream= (mode from
SocketMode=) and keeps it, passes it as descriptor 3 with LISTEN_FDS=1 and LISTEN_PID set
to the server's pid, sets Environment= and WorkingDirectory=, runs ExecStart= (the path of
the server and of its config swapped for the test's) and reads sd_notify messages on a
NOTIFY_SOCKET, accepting only those the main process sends (NotifyAccess=main, the
default). A reload is the SIGHUP of Type=notify-reload; a stop is KillMode=mixed's TERM to
the main process.

tests/test_systemd.py covers the mechanisms on their own (READY, RELOADING, STOPPING,
LISTEN_FDS); this file checks that the guide's files use them as systemd would. Not
emulated: User=, Group=, SocketUser=, SocketGroup= and the sandboxing options.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest

from conftest import APPS_DIR, base_env, children, http_get, server_command, wait_until
from deploy_support import EXAMPLES, example

pytestmark = pytest.mark.timeout(60)

CONFIG = "/etc/ferrocorn/ferrocorn.conf.py"
CLOSE = {"Connection": "close"}  # the config keeps connections alive for 75 s


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def parse_unit(text: str) -> dict:
    """{section: [(key, value), ...]} of a unit file (comments dropped, continuations
    joined)."""
    sections: dict = {}
    current, pending = None, ""
    for raw in text.splitlines():
        line = (pending + raw.strip()) if pending else raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections.setdefault(current, [])
            continue
        key, sep, value = line.partition("=")
        assert sep and current, "not a unit file line: %r" % raw
        sections[current].append((key.strip(), value.strip()))
    return sections


def value(unit: dict, section: str, key: str) -> str:
    found = [v for k, v in unit[section] if k == key]
    assert len(found) == 1, "%s= in [%s]: %r" % (key, section, found)
    return found[0]


def values(unit: dict, section: str, key: str) -> list:
    return [v for k, v in unit.get(section, []) if k == key]


def config_setting(name: str):
    """A literal setting of docs/deploy/ferrocorn.conf.py."""
    for node in ast.parse((EXAMPLES / "ferrocorn.conf.py").read_text()).body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == [name]:
            return ast.literal_eval(node.value)
    raise AssertionError("no %s in ferrocorn.conf.py" % name)


SOCKET = parse_unit(example("ferrocorn.socket"))
SERVICE = parse_unit(example("ferrocorn.service"))


def test_the_files_agree():
    # nginx connects where systemd listens; systemd waits longer than a graceful stop.
    listen = value(SOCKET, "Socket", "ListenStream")
    assert "server unix:%s;" % listen in example("nginx-unix.conf")
    assert value(SERVICE, "Service", "Type") == "notify-reload"
    assert value(SERVICE, "Service", "KillMode") == "mixed"
    assert float(value(SERVICE, "Service", "TimeoutStopSec")) > config_setting("graceful_timeout")
    assert CONFIG in value(SERVICE, "Service", "ExecStart")
    assert "ferrocorn.socket" in value(SERVICE, "Unit", "Requires")


def systemd_version() -> int:
    out = subprocess.run(["systemd-analyze", "--version"], capture_output=True, text=True).stdout
    return int(re.match(r"systemd (\d+)", out).group(1))


def test_systemd_analyze_verify(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart's program exists: name the one under test.
    exec_start = shlex.split(value(SERVICE, "Service", "ExecStart"))
    service = example("ferrocorn.service", {
        exec_start[0]: shlex.join(server_command())})
    (tmp_path / "ferrocorn.service").write_text(service)
    (tmp_path / "ferrocorn.socket").write_text(example("ferrocorn.socket"))
    result = subprocess.run(
        ["systemd-analyze", "verify", "./ferrocorn.socket", "./ferrocorn.service"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30)
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    if systemd_version() < 253:
        # notify-reload came in systemd 253: an older one reads it as an unknown type.
        complaints = [line for line in complaints if not re.search(
            r"ferrocorn\.service:\d+: Failed to parse service type, ignoring: notify-reload$",
            line)]
    assert result.returncode == 0 and complaints == [], result.stdout + result.stderr


# ---------------------------------------------------------------------------
# Playing systemd.


class Notifications:
    """NOTIFY_SOCKET: a datagram socket that learns each sender's pid (SO_PASSCRED), as
    systemd does to apply NotifyAccess=."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.path)
        self.received: list = []  # (pid, {key: value}, monotonic µs when read)

    def next(self, timeout: float):
        self.sock.settimeout(timeout)
        data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = None
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", payload[:12])[0]
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        entry = (pid, fields, time.monotonic_ns() // 1000)
        self.received.append(entry)
        return entry

    def wait_for(self, key: str, main_pid: int, unit, timeout: float = 20.0) -> dict:
        """The next message from the main process that sets `key` (messages from other
        processes are ignored, as NotifyAccess=main makes systemd do)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise socket.timeout
                pid, fields, _ = self.next(left)
            except socket.timeout:
                raise AssertionError("no %s from pid %d within %ss; received %r; stderr:\n%s" % (
                    key, main_pid, timeout, self.received, unit.stderr()[-4000:])) from None
            if pid == main_pid and key in fields:
                return fields

    def close(self):
        self.sock.close()


class Unit:
    """The service started from ferrocorn.service with a listening socket held by the test."""

    def __init__(self, tmp_path, listener: socket.socket, notify_path: str, run: int):
        config = tmp_path / "ferrocorn.conf.py"
        config.write_text(example("ferrocorn.conf.py", {
            "myproject.wsgi:application": "deploy_app:app",
            '"/srv/myproject"': repr(str(APPS_DIR)),
        }))
        argv = shlex.split(value(SERVICE, "Service", "ExecStart"))
        argv = server_command() + [str(config) if a == CONFIG else a for a in argv[1:]]
        env = {}
        for assignment in values(SERVICE, "Service", "Environment"):
            for item in shlex.split(assignment):
                key, _, val = item.partition("=")
                env[key] = val
        env.update({"LISTEN_FDS": "1", "LISTEN_FDNAMES": "ferrocorn.socket",
                    "NOTIFY_SOCKET": notify_path})
        workdir = value(SERVICE, "Service", "WorkingDirectory")
        assert workdir == "/srv/myproject"
        runtime = tmp_path / ("run%d" % run)
        runtime.mkdir()
        self.stderr_path = tmp_path / ("stderr%d" % run)
        fd = listener.fileno()

        def as_fd3():
            os.dup2(fd, 3)
            os.set_inheritable(3, True)

        with open(self.stderr_path, "wb") as err, open(tmp_path / ("stdout%d" % run), "wb") as out:
            # LISTEN_PID must be the server's own pid: a shell that execs keeps its pid.
            self.proc = subprocess.Popen(
                ["/bin/sh", "-c", 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"', "sh"] + argv,
                cwd=str(APPS_DIR), env=base_env(runtime, env), stdin=subprocess.DEVNULL,
                stdout=out, stderr=err, preexec_fn=as_fd3, pass_fds=(fd, 3),
                start_new_session=True,
            )
        self.pid = self.proc.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(5)


@pytest.fixture
def systemd(tmp_path):
    """(listener, socket path, notifications, start()) with everything cleaned up."""
    path = tmp_path / os.path.basename(value(SOCKET, "Socket", "ListenStream"))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, int(value(SOCKET, "Socket", "SocketMode"), 8))
    listener.listen(128)
    notes = Notifications(tmp_path / "notify.sock")
    units = []

    def start():
        unit = Unit(tmp_path, listener, notes.path, len(units))
        units.append(unit)
        return unit

    yield listener, path, notes, start
    for unit in units:
        unit.stop()
    notes.close()
    listener.close()


def test_start_serve_stop_and_restart_on_the_same_socket(systemd):
    listener, path, notes, start = systemd
    unit = start()
    notes.wait_for("READY", unit.pid, unit)
    resp = http_get(str(path), "/env", headers=CLOSE)
    assert resp.status == 200, resp.raw[:300]

    os.kill(unit.pid, signal.SIGTERM)  # KillMode=mixed: the main process only
    stop_timeout = float(value(SERVICE, "Service", "TimeoutStopSec"))
    assert unit.proc.wait(stop_timeout) == 0, unit.stderr()[-4000:]
    # KillMode=mixed would KILL whatever is left of the group: nothing is.
    wait_until(lambda: group_gone(unit.pid), timeout=5, what="the workers to exit")
    # The socket is systemd's: still there, still listening. A client that connects while
    # the service is down waits in its queue, and the next start answers it.
    assert path.exists()
    waiting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with waiting:
        waiting.settimeout(20)
        waiting.connect(str(path))
        waiting.sendall(b"GET /healthz HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        again = start()
        notes.wait_for("READY", again.pid, again)
        answer = b""
        while chunk := waiting.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"ok\n"), answer


@pytest.mark.ferrocorn_only
def test_notify_reload(systemd):
    # Gunicorn sends READY=1 and nothing else, so under Type=notify-reload systemd would
    # wait for a RELOADING=1 that never comes: `systemctl reload` fails after its timeout.
    listener, path, notes, start = systemd
    unit = start()
    notes.wait_for("READY", unit.pid, unit)
    old_workers = wait_until(lambda: (lambda kids: kids if len(kids) == 2 else None)(
        children(unit.pid)), what="both workers")

    # systemd records the time, sends SIGHUP, and takes the reload as started only by a
    # RELOADING=1 whose MONOTONIC_USEC is not older than that time.
    sent = time.monotonic_ns() // 1000
    os.kill(unit.pid, signal.SIGHUP)
    reloading = notes.wait_for("RELOADING", unit.pid, unit)
    assert reloading["RELOADING"] == "1"
    stamp = int(reloading["MONOTONIC_USEC"])
    assert sent <= stamp <= time.monotonic_ns() // 1000 + 1_000_000, (sent, stamp)
    ready = notes.wait_for("READY", unit.pid, unit)
    assert ready["READY"] == "1"
    wait_until(lambda: children(unit.pid) and not (children(unit.pid) & old_workers),
               what="the workers to be replaced")
    assert http_get(str(path), "/healthz", headers=CLOSE).status == 200

    os.kill(unit.pid, signal.SIGTERM)
    notes.wait_for("STOPPING", unit.pid, unit)
    assert unit.proc.wait(float(value(SERVICE, "Service", "TimeoutStopSec"))) == 0
    # Every message came from the main process (NotifyAccess=main would drop the others).
    assert {pid for pid, _, _ in notes.received} == {unit.pid}, notes.received
