"""The master's side of the dirty arbiter under stress: a stuck arbiter does not hold the
master's loop through the control socket, a HUP that turns dirty apps off lets the old
arbiter finish its calls while the master goes on, and signals reaching an arbiter that is
still starting do not kill it.
"""

import os
import re
import signal
import threading

import pytest

from conftest import http_get, pid_alive, wait_until
from control_support import ControlClient, wait_answering
from test_dirty_process import APP, answers, arbiter_pid, arbiter_pids, dirty_workers

pytestmark = pytest.mark.ferrocorn_only


def test_stuck_arbiter_costs_the_control_socket_one_timeout(serve, tmp_path):
    probe = tmp_path / "probe"
    probe.mkdir()
    path = tmp_path / "c.ctl"
    server = serve(
        "-w", "1", "--dirty-app", APP, "--dirty-workers", "1", "--control-socket", str(path),
        "dirty_proc_app:app", env={"DIRTY_PROBE_DIR": str(probe)},
    )
    wait_until(lambda: len(dirty_workers(server)) == 1, what="a dirty worker")
    wait_answering(path)
    arbiter = arbiter_pid(server)
    os.kill(arbiter, signal.SIGSTOP)
    try:
        with ControlClient(path, timeout=30) as c:
            first = c.call("show dirty")
            assert first["status"] == "error", first
            assert first["error"].startswith("Command failed: "), first
            # The next ones are not asked: they say so instead of waiting again.
            for command in ("show dirty", "dirty add 1"):
                reply = c.call(command)
                text = reply.get("error") or reply["data"].get("error")
                assert "not asked again" in text, reply
            everything = c.call("show all")["data"]
            assert everything["dirty_arbiter"]["pid"] == arbiter
            assert everything["dirty_workers"] == []
        # The master kept serving meanwhile.
        assert http_get(server.address, "/").status == 200
    finally:
        os.kill(arbiter, signal.SIGCONT)


def test_hup_turning_dirty_apps_off_lets_the_old_arbiter_finish(serve, tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text("dirty_workers = 1\ndirty_graceful_timeout = 20\n")
    probe = tmp_path / "probe"
    probe.mkdir()
    server = serve(
        "-c", str(conf), "-w", "1", "--threads", "4", "--dirty-app", APP,
        "dirty_proc_app:app", env={"DIRTY_PROBE_DIR": str(probe)},
    )
    wait_until(lambda: len(dirty_workers(server)) == 1, what="a dirty worker")
    old = [arbiter_pid(server), *dirty_workers(server)]
    socket_dir = os.path.dirname(
        re.findall(r"Spawned dirty arbiter \(pid: \d+\) at (\S+)", server.stderr_text())[-1]
    )
    results = []

    def long_call():
        results.append(http_get(server.address, "/nap8", timeout=40))

    caller = threading.Thread(target=long_call)
    caller.start()
    wait_until(lambda: "nap8 started" in probe_text(probe), what="the long call to start")
    conf.write_text("dirty_workers = 0\ndirty_graceful_timeout = 20\n")
    server.send_signal(signal.SIGHUP)
    # The master is not waiting for the old arbiter: new HTTP workers come up at once.
    wait_until(lambda: len(server.worker_pids()) >= 2, what="the reloaded HTTP worker")
    assert caller.is_alive(), "the old arbiter's call ended before the master went on"
    caller.join(40)
    assert results and results[0].status == 200, results and results[0].raw
    wait_until(lambda: not any(pid_alive(p) for p in old), what="the old dirty processes to go")
    wait_until(lambda: not os.path.exists(socket_dir), what="the socket directory to go")
    assert len(arbiter_pids(server)) == 1
    assert http_get(server.address, "/").status == 200


def probe_text(probe) -> str:
    path = probe / "events"
    return path.read_text() if path.exists() else ""


def test_signals_reaching_a_starting_arbiter_do_not_kill_it(serve, tmp_path):
    conf = tmp_path / "conf.py"
    started = tmp_path / "started"
    release = tmp_path / "release"
    conf.write_text(
        "import os, time\n"
        "def on_dirty_starting(arbiter):\n"
        "    open(%r, 'w').close()\n"
        "    while not os.path.exists(%r):\n"
        "        time.sleep(0.02)\n" % (str(started), str(release))
    )
    probe = tmp_path / "probe"
    probe.mkdir()
    server = serve(
        "-c", str(conf), "-w", "1", "--dirty-app", APP, "--dirty-workers", "1",
        "dirty_proc_app:app", env={"DIRTY_PROBE_DIR": str(probe)},
    )
    wait_until(started.exists, what="the arbiter's on_dirty_starting hook")
    arbiter = arbiter_pid(server)
    server.send_signal(signal.SIGUSR1)  # forwarded to the arbiter (logrotate does this)
    server.send_signal(signal.SIGHUP)  # forwarded too
    os.kill(arbiter, signal.SIGTTIN)
    server.wait_for_log(r"Handling signal: hup")
    release.touch()
    wait_until(lambda: answers(server), what="dirty calls to work")
    # What arrived early was held, not lost: the TTIN grew the pool once the loop ran.
    server.wait_for_log(r"SIGTTIN: Increasing dirty workers to 2")
    wait_until(lambda: len(dirty_workers(server)) == 2, what="the second dirty worker")
    assert pid_alive(arbiter)
    assert arbiter_pids(server) == [arbiter]
    assert "killed by signal" not in server.stderr_text()
