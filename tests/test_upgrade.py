"""USR2 binary upgrade under load: a new master starts beside the old one on the same
sockets, the old one is stopped with TERM, the new one is promoted and takes the pid file;
no request fails at any point."""

import os
import signal
import threading
import time

import requests

from conftest import pid_alive, read_pid, wait_until


class Load:
    """Requests in a loop on fresh connections, bounded in time, counting outcomes."""

    def __init__(self, url, limit=60.0):
        self.url, self.limit = url, limit
        self.ok, self.failed, self.errors = 0, 0, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        end = time.monotonic() + self.limit
        while not self.stop.is_set() and time.monotonic() < end:
            try:
                r = requests.get(self.url, timeout=10, headers={"Connection": "close"})
                if r.status_code == 200:
                    self.ok += 1
                else:
                    self.failed += 1
                    self.errors.append(r.status_code)
            except requests.RequestException as exc:
                self.failed += 1
                self.errors.append(repr(exc))

    def finish(self):
        self.stop.set()
        self.thread.join(15)


def test_usr2_then_term_old_master_loses_no_request(serve, tmp_path):
    pidfile = tmp_path / "app.pid"
    server = serve("-w", "2", "--pid", str(pidfile), "hello:app")
    old = server.master_pid
    assert read_pid(pidfile) == old
    load = Load(server.url)
    try:
        wait_until(lambda: load.ok > 20, what="load to flow")
        server.send_signal(signal.SIGUSR2)
        new = wait_until(lambda: read_pid(tmp_path / "app.pid.2"), what="the new master's pid file")
        assert new != old
        server.wait_for_log(r"Booting worker with pid", count=4, timeout=30)
        served_before = load.ok
        wait_until(lambda: load.ok > served_before + 20, what="load through both masters")
        server.send_signal(signal.SIGTERM)  # stop the old master
        assert server.wait_exit(30) == 0
        server.wait_for_log(r"Master has been promoted\.", timeout=15)
        wait_until(lambda: read_pid(pidfile) == new, what="the pid file to name the new master")
        assert not (tmp_path / "app.pid.2").exists()
        served_after = load.ok
        wait_until(lambda: load.ok > served_after + 20, what="load through the new master")
    finally:
        load.finish()
    assert load.failed == 0, load.errors[:5]
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
    load = Load(server.url)
    try:
        wait_until(lambda: load.ok > 10, what="load to flow")
        app.write_text("raise RuntimeError('broken release')\n")
        server.send_signal(signal.SIGUSR2)
        server.wait_for_log(r"Shutting down: Master\.2", timeout=30)
        server.wait_for_log(r"Reason: Worker failed to boot\.", timeout=30)
        served = load.ok
        wait_until(lambda: load.ok > served + 10, what="the old master to keep serving")
    finally:
        load.finish()
    assert load.failed == 0, load.errors[:5]
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
