"""-D/--daemon with --pid: the command returns at once, the detached master serves, its pid
is in the pid file, and TERM to that pid stops it and removes the file. WINCH to a daemon
master stops its workers (the old master's half of a binary upgrade)."""

import os
import signal
import time

import pytest
import requests

from conftest import listening_addresses, pid_alive, read_pid, wait_until


@pytest.fixture
def daemon(run, tmp_path):
    started = []

    def start(*args):
        pidfile = tmp_path / "ferrocorn.pid"
        log = tmp_path / "error.log"
        result = run("-D", "--pid", str(pidfile), "--error-logfile", str(log),
                     "-b", "127.0.0.1:0", *args, timeout=20)
        assert result.returncode == 0, result.stderr
        pid = wait_until(lambda: read_pid(pidfile), what="the pid file")
        started.append(pid)
        # The port the daemon got, from the "Listening at:" line of its error log.
        ((host, port),) = wait_until(lambda: listening_addresses(_text(log)),
                                     what="the daemon's Listening at line")
        url = "http://%s:%d/" % (host, port)
        wait_until(lambda: _try_get(url), what="the daemon to answer")
        return pid, url, pidfile, log, result

    yield start
    for pid in started:
        if pid_alive(pid):
            os.kill(pid, signal.SIGQUIT)
            wait_until(lambda: not pid_alive(pid), timeout=10, what="the daemon to stop")


def _text(path):
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _try_get(url):
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_daemon_detaches_writes_the_pidfile_and_stops_on_term(daemon):
    pid, url, pidfile, log, result = daemon("hello:app")
    assert result.elapsed < 10  # the command returned; the server lives on
    assert os.getsid(pid) != os.getsid(0)  # its own session, no controlling terminal
    assert os.getsid(pid) != pid  # not a session leader (double fork)
    assert requests.get(url, timeout=5).text == "Hello, World!\n"
    assert "Listening at" in log.read_text()
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not pid_alive(pid), what="the daemon to exit")
    assert not pidfile.exists()


def test_winch_stops_the_workers_of_a_daemon_master(daemon):
    pid, url, pidfile, log, _ = daemon("-w", "2", "hello:app")
    wait_until(lambda: log.read_text().count("Booting worker") >= 2, what="two workers")
    os.kill(pid, signal.SIGWINCH)
    wait_until(lambda: "graceful stop of workers" in log.read_text(), what="the WINCH log line")
    wait_until(lambda: log.read_text().count("Worker exiting") >= 2, what="the workers to exit")
    assert pid_alive(pid)
    # Not a wait for an event: the window in which a master that wrongly replaced its
    # workers would have booted new ones.
    time.sleep(1.5)
    assert log.read_text().count("Booting worker") == 2


def test_pidfile_of_a_live_server_refuses_a_second_start(run, tmp_path, serve):
    pidfile = tmp_path / "app.pid"
    server = serve("--pid", str(pidfile), "hello:app")
    assert read_pid(pidfile) == server.master_pid
    second = run("--pid", str(pidfile), "-b", "127.0.0.1:0", "hello:app", timeout=20)
    assert second.returncode != 0
    assert "Already running on PID %d" % server.master_pid in second.stderr
    assert read_pid(pidfile) == server.master_pid  # untouched
