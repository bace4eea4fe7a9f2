"""The control-socket client against a stand-in server (ctl_support.FakeControlServer):
replies a real server does not give on demand (dirty-arbiter tables, malformed replies,
silence, a closed connection) and Ctrl-C while the client waits.

As in test_ferrocornc.py, the client is `gunicornc` in the suite's Gunicorn mode and
`ferrocornc` otherwise; the tables and exit statuses must be the same for both, and what
ferrocornc does better is marked ferrocorn_only.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time

import pytest

from conftest import wait_until
from ctl_support import (
    PROMPT,
    FakeControlServer,
    client_command,
    client_env,
    ctl,
    frame,
    run_client,
)


CANNED = {
    "show workers": {
        "workers": [
            {"pid": 4101, "age": 1, "booted": True, "aborted": False, "last_heartbeat": 0.42},
            {"pid": 4102, "age": 2, "booted": False, "aborted": False, "last_heartbeat": None},
        ],
        "count": 2,
    },
    "show stats": {
        "uptime": 3725.4, "pid": 4100, "workers_current": 2, "workers_target": 3,
        "workers_spawned": 5, "workers_killed": 2, "reloads": 1, "dirty_arbiter_pid": 4200,
    },
    "show listeners": {
        "listeners": [
            {"address": "http://127.0.0.1:8000", "fd": 3, "type": "tcp"},
            {"address": "unix:/run/app.sock", "fd": 4, "type": "unix"},
        ],
        "count": 2,
    },
    "show config": {"workers": 3, "bind": ["127.0.0.1:8000", "unix:/run/app.sock"],
                    "daemon": False, "pidfile": None, "timeout": 30},
    "show dirty": {
        "enabled": True,
        "pid": 4200,
        "workers": [
            {"pid": 4201, "age": 1, "apps": ["mlapp.models:Classifier", "mlapp.models:Embedder"],
             "booted": True, "last_heartbeat": 1.5},
            {"pid": 4202, "age": 2, "apps": [], "booted": True, "last_heartbeat": None},
        ],
        "apps": [
            {"import_path": "mlapp.models:Classifier", "worker_count": None,
             "current_workers": 1, "worker_pids": [4201]},
            {"import_path": "a.very.long.package.name.models:Embedder", "worker_count": 2,
             "current_workers": 1, "worker_pids": [4201]},
        ],
    },
    "show all": {
        "arbiter": {"pid": 4100, "type": "arbiter", "role": "master"},
        "web_workers": [
            {"pid": 4101, "type": "web", "age": 1, "booted": True, "last_heartbeat": 0.42},
        ],
        "web_worker_count": 1,
        "dirty_arbiter": {"pid": 4200, "type": "dirty_arbiter", "role": "dirty master"},
        "dirty_workers": [
            {"pid": 4201, "age": 1, "apps": ["mlapp.models:Classifier", "mlapp.models:Embedder"]},
            {"pid": 4202, "age": 2, "apps": []},
        ],
        "dirty_worker_count": 2,
    },
    "help": {"commands": {"show workers": "List workers", "reload": "Reload (HUP)",
                          "worker kill <PID>": "Stop one worker"}},
    "worker add 2": {"added": 2, "previous": 1, "total": 3},
    "reload": {},
}

EXPECTED = {
    "show workers": """\
PID        AGE    BOOTED   LAST_BEAT
----------------------------------------
4101       1      yes      0.42s ago
4102       2      no       n/a

Total: 2 workers
""",
    "show stats": """\
Uptime:           1h 2m 5s
PID:              4100
Workers current:  2
Workers target:   3
Workers spawned:  5
Workers killed:   2
Reloads:          1
Dirty arbiter:    4200
""",
    "show listeners": """\
ADDRESS                                  TYPE     FD
-------------------------------------------------------
http://127.0.0.1:8000                    tcp      3
unix:/run/app.sock                       unix     4

Total: 2 listeners
""",
    "show config": """\
bind: 127.0.0.1:8000, unix:/run/app.sock
daemon: False
pidfile: None
timeout: 30
workers: 3
""",
    "show dirty": """\
Dirty arbiter PID: 4200

DIRTY WORKERS:
PID        AGE    APPS                           LAST_BEAT
------------------------------------------------------------
4201       1      mlapp.models:Classifier, mlapp 1.5s ago
4202       2                                     n/a

DIRTY APPS:
APP                            WORKERS    LIMIT
--------------------------------------------------
mlapp.models:Classifier        1          none
a.very.long.package.name.model 1          2
""",
    "show all": """\
ARBITER (master)
  PID: 4100

WEB WORKERS (1)
  PID        AGE    BOOTED   LAST_BEAT
  --------------------------------------
  4101       1      yes      0.42s ago

DIRTY ARBITER
  PID: 4200

DIRTY WORKERS (2)
  PID        AGE    APPS
  --------------------------------------------------
  4201       1      Classifier
                    Embedder
  4202       2      (no apps)
""",
    "help": """\
Available commands:

  reload              Reload (HUP)
  show workers        List workers
  worker kill <PID>   Stop one worker
""",
    "worker add 2": '{\n  "added": 2,\n  "previous": 1,\n  "total": 3\n}\n',
    "reload": "OK\n",
}


@pytest.fixture
def canned_server(tmp_path):
    def respond(conn, request, index):
        data = CANNED[request["command"]]
        conn.sendall(frame({"id": request["id"], "status": "ok", "data": data}))

    server = FakeControlServer(tmp_path / "fake.ctl", respond)
    yield server
    server.close()


def test_tables_of_every_reply_shape(canned_server, tmp_path):
    for command, expected in EXPECTED.items():
        result = ctl(tmp_path, canned_server.path, command)
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected, command
    # The request carries the whole command line; args stay empty.
    assert canned_server.requests[-2] == {"id": 1, "command": "worker add 2", "args": []}


def _interruptible():
    """In the client's child process: SIGINT as a terminal gives it. A suite started in the
    background by a non-interactive shell inherits SIGINT ignored, and Python then installs
    no KeyboardInterrupt handler at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_while_waiting_for_a_reply_exits_130(tmp_path):
    silent = FakeControlServer(tmp_path / "silent.ctl", lambda conn, request, index: None)
    try:
        proc = subprocess.Popen(
            client_command() + ["-s", silent.path, "-c", "show stats"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=client_env(tmp_path), text=True, preexec_fn=_interruptible,
        )
        assert silent.request_seen.wait(20), "the client never sent its request"
        _wait_blocked(proc.pid)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 130
        assert out == ""
    finally:
        silent.close()


def test_ctrl_c_at_the_prompt_exits_130(canned_server, tmp_path):
    proc = subprocess.Popen(
        client_command() + ["-s", canned_server.path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=client_env(tmp_path), preexec_fn=_interruptible,
    )
    try:
        _read_until(proc.stdout, PROMPT.encode())
        _wait_blocked(proc.pid)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 130
    finally:
        proc.kill()
        proc.communicate()


def test_prompt_ends_with_1_when_the_server_is_gone(tmp_path):
    def respond(conn, request, index):
        conn.sendall(frame({"id": request["id"], "status": "ok", "data": {}}))
        return False

    server = FakeControlServer(tmp_path / "gone.ctl", respond)
    proc = subprocess.Popen(
        client_command() + ["-s", server.path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=client_env(tmp_path),
    )
    try:
        proc.stdin.write(b"reload\n")
        proc.stdin.flush()
        assert server.connection_closed.wait(20)
        server.close()  # the socket file goes too, as when a server stops
        out, _ = proc.communicate(b"reload\nhelp\n", timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 1
    session = out.decode().split(PROMPT)
    assert session[1] == "OK\n\n"
    assert session[2].startswith("Error: ")
    assert len(session) == 3  # nothing read after the server went away


def _wait_blocked(pid: int):
    """Wait until the process sleeps in a system call. A SIGINT that lands just before a
    blocking read is only acted on when the read returns (CPython runs Python-level handlers
    between bytecodes), which would make the tests race; a person's Ctrl-C never does."""

    def sleeping():
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "S"

    wait_until(sleeping, what="pid %d to block" % pid)


def _read_until(stream, marker: bytes, timeout: float = 20.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, "never saw %r, only %r" % (marker, seen)
        ready, _, _ = select.select([stream], [], [], left)
        if ready:
            chunk = os.read(stream.fileno(), 4096)
            assert chunk, "EOF before %r; got %r" % (marker, seen)
            seen += chunk
    return seen


# ---------------------------------------------------------------------------
# ferrocornc only: where gunicornc crashes, hangs or says too little.

BAD_REPLIES = {
    # name: (raw bytes for a request id of 1, text expected on stderr)
    "not json": (frame(b"<html>"), "not UTF-8 JSON"),
    "not utf-8": (frame(b'{"id": 1, "status": "ok", "data": "\xff"}'), "not UTF-8 JSON"),
    "a json list": (frame([1, 2]), "a JSON list, not an object"),
    "no status": (frame({"id": 1, "data": {}}), "neither 'ok' nor 'error'"),
    "another id": (frame({"id": 7, "status": "ok", "data": {}}), "for request 7, not 1"),
    "error without message": (frame({"id": 1, "status": "error"}), "without saying what"),
    "oversized": (b"\x7f\xff\xff\xff", "is %s a control socket?"),
    "cut short": (frame({"id": 1, "status": "ok", "data": {}})[:-3], "in the middle of a reply"),
    "nothing": (b"", "closed the connection without replying"),
}


@pytest.mark.ferrocorn_only
@pytest.mark.parametrize("name", sorted(BAD_REPLIES))
def test_malformed_reply_is_an_error_not_a_traceback(tmp_path, name):
    raw, message = BAD_REPLIES[name]

    def respond(conn, request, index):
        conn.sendall(raw)
        return False

    server = FakeControlServer(tmp_path / "bad.ctl", respond)
    try:
        result = ctl(tmp_path, server.path, "show workers")
    finally:
        server.close()
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1
    assert (message % server.path if "%s" in message else message) in result.stderr


ODD_DATA = {
    # command: data of the wrong shape, which is shown rather than crashed on
    "show workers": {"workers": [{"pid": None, "age": None}, "junk"], "count": None},
    "show stats": {"uptime": "soon", "pid": None},
    "show dirty": {"enabled": True, "pid": 1, "workers": [{"apps": [None, 3]}],
                   "apps": [{"import_path": None, "current_workers": None}]},
    "show all": {"arbiter": None, "web_workers": [None], "dirty_arbiter": "yes",
                 "dirty_workers": [{"apps": "one"}]},
    "show listeners": {"listeners": [{"fd": None}, 5]},
    "help": {"commands": ["show workers"]},
}


@pytest.mark.ferrocorn_only
def test_odd_data_is_shown_not_crashed_on(tmp_path):
    def respond(conn, request, index):
        data = ODD_DATA.get(request["command"])
        conn.sendall(frame({"id": request["id"], "status": "ok", "data": data}))

    server = FakeControlServer(tmp_path / "odd.ctl", respond)
    try:
        for command in list(ODD_DATA) + ["show config"]:
            result = ctl(tmp_path, server.path, command)
            assert result.returncode == 0, (command, result.stderr)
            assert result.stderr == "" and result.stdout.strip(), command
        workers = ctl(tmp_path, server.path, "show workers").stdout.splitlines()
        assert workers[2:] == ["None       None   no       n/a", "?          ?      no       n/a",
                               "", "Total: None workers"]
        assert ctl(tmp_path, server.path, "show stats").stdout.startswith(
            "Uptime:           unknown\nPID:              None\n")
        # A help reply without a table to make is printed as its JSON.
        assert json.loads(ctl(tmp_path, server.path, "help").stdout) == ODD_DATA["help"]
        # data null on a show command: JSON null, not a traceback.
        assert ctl(tmp_path, server.path, "show config").stdout == "null\n"
    finally:
        server.close()


@pytest.mark.ferrocorn_only
def test_timeout_flag_bounds_the_wait_for_a_reply(tmp_path):
    silent = FakeControlServer(tmp_path / "silent.ctl", lambda conn, request, index: None)
    try:
        result = ctl(tmp_path, silent.path, "show stats", "-t", "0.5", timeout=20)
        assert result.returncode == 1
        assert result.stderr == "Error: no reply from %s within 0.5 s (-t sets the limit)\n" % (
            silent.path)
        bad = run_client(tmp_path, "-s", silent.path, "-t", "0", "-c", "help")
        assert bad.returncode == 2 and "-t/--timeout" in bad.stderr
    finally:
        silent.close()


@pytest.mark.ferrocorn_only
def test_bad_quoting_is_an_error_not_a_traceback(canned_server, tmp_path):
    result = ctl(tmp_path, canned_server.path, "show 'workers")
    assert result.returncode == 1
    assert result.stderr == "Error: cannot parse the command: No closing quotation\n"
    assert canned_server.requests == []
    session = run_client(tmp_path, "-s", canned_server.path, input="show 'x\nreload\n")
    assert session.returncode == 0
    assert "Error: cannot parse the command: No closing quotation\n" in session.stdout
    assert PROMPT + "OK\n" in session.stdout


@pytest.mark.ferrocorn_only
def test_interactive_reconnects_after_the_server_closed_an_idle_connection(tmp_path):
    def respond(conn, request, index):
        conn.sendall(frame({"id": request["id"], "status": "ok", "data": {}}))
        return False  # as a server's idle timeout would, once the reply is out

    server = FakeControlServer(tmp_path / "idle.ctl", respond)
    proc = subprocess.Popen(
        client_command() + ["-s", server.path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=client_env(tmp_path),
    )
    try:
        proc.stdin.write(b"reload\n")
        proc.stdin.flush()
        assert server.connection_closed.wait(20)
        proc.stdin.write(b"reload\nquit\n")
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        server.close()
    assert proc.returncode == 0, err
    assert out.decode().count(PROMPT + "OK\n") == 2
    assert b"Error" not in out + err
    assert server.connections == 2


@pytest.mark.ferrocorn_only
def test_interactive_error_reply_keeps_the_connection(tmp_path):
    def respond(conn, request, index):
        if request["command"] == "frob":
            conn.sendall(frame({"id": request["id"], "status": "error", "error": "no frob"}))
        else:
            conn.sendall(frame({"id": request["id"], "status": "ok", "data": {}}))

    server = FakeControlServer(tmp_path / "keep.ctl", respond)
    try:
        session = run_client(tmp_path, "-s", server.path, input="frob\nreload\nquit\n")
    finally:
        server.close()
    assert session.returncode == 0
    assert PROMPT + "Error: no frob\n" in session.stdout and PROMPT + "OK\n" in session.stdout
    assert server.connections == 1  # gunicornc reconnects after every error reply


@pytest.mark.ferrocorn_only
def test_closed_stdout_is_not_a_traceback(canned_server, tmp_path):
    for args in (("-s", canned_server.path, "-c", "help"), ("-v",)):
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            result = run_client(tmp_path, *args, stdout=write_end)
        finally:
            os.close(write_end)
        assert result.returncode == 1, args
        assert result.stderr == "", args


