"""USR2 binary upgrade under load: a new master starts beside the old one on the same
sockets, the old one is stopped with TERM, the new one is promoted and takes the pid file;
no request fails at any point."""

import os
import signal

import requests

from conftest import pid_alive, read_pid, wait_until
from loadgen import LoadGen


def test_usr2_then_term_old_master_loses_no_request(serve, tmp_path):
    pidfile = tmp_path / "app.pid"
    server = serve("-w", "2", "--pid", str(pidfile), "hello:app")
    old = server.master_pid
    assert read_pid(pidfile) == old
    load = LoadGen(server.address, threads=2, limit=60)
    try:
        load.wait_ok(20)
        load.mark("USR2")
        server.send_signal(signal.SIGUSR2)
        new = wait_until(lambda: read_pid(tmp_path / "app.pid.2"), what="the new master's pid file")
        assert new != old
        server.wait_for_log(r"Booting worker with pid", count=4, timeout=30)
        load.wait_ok(20, what="load through both masters")
        load.mark("TERM old")
        server.send_signal(signal.SIGTERM)  # stop the old master
        assert server.wait_exit(30) == 0
        server.wait_for_log(r"Master has been promoted\.", timeout=15)
        wait_until(lambda: read_pid(pidfile) == new, what="the pid file to name the new master")
        assert not (tmp_path / "app.pid.2").exists()
        load.wait_ok(20, what="load through the new master")
    finally:
        load.stop()
    load.assert_lossless()
    assert pid_alive(new)
    os.kill(new, signal.SIGTERM)
    wait_until(lambda: not pid_alive(new), what="the new master to stop")


def test_a_new_master_that_fails_to_boot_leaves_the_old_one_serving(serve, tmp_path):
    app = tmp_path / "upgr_app.py"
    app.write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Length', '2')])\n"
        "    return [b'v1']\n"
    )
    server = serve("upgr_app:app", cwd=tmp_path)
    load = LoadGen(server.address, threads=2, limit=60)
    try:
        load.wait_ok(10)
        app.write_text("raise RuntimeError('broken release')\n")
        server.send_signal(signal.SIGUSR2)
        server.wait_for_log(r"Shutting down: Master\.2", timeout=30)
        server.wait_for_log(r"Reason: Worker failed to boot\.", timeout=30)
        load.wait_ok(10, what="the old master to keep serving")
    finally:
        load.stop()
    load.assert_lossless()
    assert requests.get(server.url, timeout=10).text == "v1"
    # The failed child was reaped: another upgrade may be tried.
    app.write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Length', '2')])\n"
        "    return [b'v2']\n"
    )
    server.send_signal(signal.SIGUSR2)
    server.wait_for_log(r"Booting worker with pid", count=2, timeout=30)
    assert "USR2 signal ignored" not in server.stderr_text()
