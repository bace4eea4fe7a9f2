"""systemd integration: sd_notify messages and socket activation (LISTEN_FDS/LISTEN_PID)."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from conftest import (
    APPS_DIR, base_env, http_get, is_gunicorn, listening_socket, server_command, wait_until,
)


def _messages(sock, until, timeout=15.0):
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            break
        if until(got):
            return got
    raise AssertionError("sd_notify messages so far: %r" % got)


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    yield path, sock
    sock.close()


def test_ready_is_sent_once_listening(serve, notify_socket):
    path, sock = notify_socket
    server = serve("hello:app", env={"NOTIFY_SOCKET": path})
    msgs = _messages(sock, lambda m: any("READY=1" in x for x in m))
    assert msgs[0].startswith("READY=1")
    assert requests.get(server.url, timeout=10).status_code == 200


@pytest.mark.ferrocorn_only
def test_reload_and_stop_are_reported(serve, notify_socket):
    # Gunicorn only ever sends READY=1; ferrocorn also reports reloads and the stop.
    path, sock = notify_socket
    server = serve("hello:app", env={"NOTIFY_SOCKET": path})
    _messages(sock, lambda m: any("READY=1" in x for x in m))
    server.send_signal(signal.SIGHUP)
    msgs = _messages(sock, lambda m: any(x == "READY=1" for x in m))
    assert msgs[0].startswith("RELOADING=1\nMONOTONIC_USEC=")
    server.send_signal(signal.SIGTERM)
    msgs = _messages(sock, lambda m: any("STOPPING=1" in x for x in m))
    assert server.wait_exit(15) == 0


@pytest.mark.ferrocorn_only
def test_reload_ends_when_the_new_workers_serve(serve, notify_socket, tmp_path):
    # READY=1 after a HUP must mean the new code serves: it comes only after every new
    # worker finished booting (its post_worker_init hook, slowed down here, has returned).
    path, sock = notify_socket
    booted = tmp_path / "booted"
    booted.mkdir()
    conf = tmp_path / "slow_boot.conf.py"
    conf.write_text(
        "import os, time\n"
        "def post_worker_init(worker):\n"
        "    if os.path.exists(%r):\n"
        "        time.sleep(1)\n"
        "        open(os.path.join(%r, str(os.getpid())), 'w').close()\n"
        % (str(tmp_path / "slow"), str(booted))
    )
    server = serve("-c", conf, "-w", "2", "hello:app", env={"NOTIFY_SOCKET": path})
    _messages(sock, lambda m: any("READY=1" in x for x in m))
    wait_until(lambda: server.stderr_text().count("Booting worker") >= 2,
               what="both first workers forked")
    (tmp_path / "slow").write_text("")
    server.send_signal(signal.SIGHUP)
    _messages(sock, lambda m: any(x == "READY=1" for x in m))
    # Both replacements had booted when systemd was told the reload was over (a first
    # worker still booting when the marker appeared may have slept and written too).
    assert len(os.listdir(booted)) >= 2
    assert requests.get(server.url, timeout=10).status_code == 200


@contextlib.contextmanager
def activated(tmp_path, listener, args):
    """The server started as systemd starts it: the bound, listening socket at fd 3,
    LISTEN_FDS=1 and LISTEN_PID set to the server's own pid (the shell's pid survives
    `exec`). Yields (process, stderr path); TERMs the process group at the end."""
    fd = listener.fileno()

    def move_to_fd3():
        os.dup2(fd, 3)
        os.set_inheritable(3, True)

    env = base_env(tmp_path, {"LISTEN_FDS": "1"})
    cmd = " ".join("'%s'" % c for c in server_command() + list(args))
    stderr_path = tmp_path / "stderr"
    stderr = open(stderr_path, "wb")
    proc = subprocess.Popen(
        ["/bin/sh", "-c", 'LISTEN_PID=$$ exec %s' % cmd],
        cwd=str(APPS_DIR), env=env, stderr=stderr, stdout=subprocess.DEVNULL,
        preexec_fn=move_to_fd3, pass_fds=(fd, 3), start_new_session=True,
    )
    listener.close()
    try:
        yield proc, stderr_path
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        stderr.close()


def test_socket_activation(tmp_path):
    # No -b is given: the server must serve on the socket it was handed, not on the
    # default 127.0.0.1:8000.
    listener, port = listening_socket()
    with activated(tmp_path, listener, ["hello:app"]) as (proc, stderr_path):
        deadline = time.monotonic() + 20
        while True:
            try:
                resp = requests.get("http://127.0.0.1:%d/" % port, timeout=2)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, stderr_path.read_text()
                assert time.monotonic() < deadline, stderr_path.read_text()
                time.sleep(0.1)  # poll interval
        assert resp.status_code == 200
        assert "Listening at: http://127.0.0.1:%d" % port in stderr_path.read_text()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", 8000), timeout=0.5).close()


@pytest.mark.ferrocorn_only
def test_socket_activation_keeps_systemds_socket_when_bind_changes(tmp_path):
    # The socket unit owns the address: a HUP whose config names another bind must not
    # drop (or unlink) the socket systemd handed over. Gunicorn rebinds.
    path = tmp_path / "activated.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    other = tmp_path / "other.sock"
    conf = tmp_path / "conf.py"
    conf.write_text("bind = ['unix:%s']\n" % (tmp_path / "first.sock"))

    def served():
        try:
            return http_get(str(path), headers={"Connection": "close"}, timeout=5).status
        except OSError:
            return None

    with activated(tmp_path, listener, ["-c", conf, "hello:app"]) as (proc, stderr_path):
        wait_until(lambda: served() == 200, what="an answer on the activated socket")
        conf.write_text("bind = ['unix:%s']\n" % other)
        os.kill(proc.pid, signal.SIGHUP)
        wait_until(lambda: "socket activation; keeping them" in stderr_path.read_text(),
                   what="the warning about the changed bind")
        assert served() == 200
        assert path.exists()
        assert not other.exists()
    # Stopping does not remove systemd's socket file either.
    assert path.exists()
