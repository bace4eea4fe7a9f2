"""The dirty arbiter's process model, driven through the real command and real signals.

master -> dirty arbiter -> dirty workers: respawns after `kill -9` (of a dirty worker, of
the arbiter), no orphans and no HTTP listener held by a dirty process (Gunicorn gets both
wrong), TTIN/TTOU on the arbiter, HUP really reloading dirty code (Gunicorn retires the new
workers), a HUP under load losing no call, and TERM leaving nothing behind.
"""

import json
import os
import re
import signal
import socket
import time

import pytest

from conftest import children, http_get, is_gunicorn, pid_alive, socket_inodes, wait_until
from loadgen import LoadGen

APP = "dirty_proc_app:Probe"


def start(serve, tmp_path, *extra, workers=2, http_workers=1, env=None):
    probe = tmp_path / "probe"
    probe.mkdir(exist_ok=True)
    merged = {"DIRTY_PROBE_DIR": str(probe)}
    merged.update(env or {})
    server = serve(
        "-w", str(http_workers), "--dirty-app", APP, "--dirty-workers", str(workers),
        "--graceful-timeout", "10", *extra, "dirty_proc_app:app", env=merged,
    )
    wait_until(lambda: len(dirty_workers(server)) == workers, what="dirty workers")
    return server


def arbiter_pids(server) -> list:
    return [int(p) for p in re.findall(r"Spawned dirty arbiter \(pid: (\d+)\)", server.stderr_text())]


def arbiter_pid(server) -> int:
    pids = wait_until(lambda: arbiter_pids(server), what="the dirty arbiter")
    return pids[-1]


def dirty_workers(server) -> set:
    pids = arbiter_pids(server)
    return children(pids[-1]) if pids else set()


def whoami(server) -> dict:
    r = http_get(server.address, "/whoami")
    assert r.status == 200, r.raw
    return json.loads(r.body)


def answers(server):
    """A dirty call through an HTTP worker, or None while it fails."""
    try:
        r = http_get(server.address, "/whoami", timeout=5)
    except (OSError, AssertionError):
        return None
    return json.loads(r.body) if r.status == 200 else None


def listener_inodes(port: int) -> set:
    """Inodes of the TCP sockets listening on `port` (from /proc/net/tcp)."""
    found = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                found.add(int(inode))
    return found


def test_dirty_processes_form_a_tree_and_answer(serve, tmp_path):
    server = start(serve, tmp_path)
    arbiter = arbiter_pid(server)
    assert arbiter in children(server.master_pid)
    workers = dirty_workers(server)
    assert len(workers) == 2
    seen = {whoami(server)["pid"] for _ in range(6)}
    assert seen <= workers and seen
    assert all(whoami(server)["ppid"] == arbiter for _ in range(2))


@pytest.mark.ferrocorn_only
def test_dirty_processes_never_hold_the_http_listener(serve, tmp_path):
    # Gunicorn's dirty processes inherit the listening socket, so an orphan keeps the port.
    server = start(serve, tmp_path)
    listening = listener_inodes(server.port)
    assert listening
    assert listening & socket_inodes(server.master_pid)
    for pid in [arbiter_pid(server), *dirty_workers(server)]:
        assert not listening & socket_inodes(pid), pid


def test_killed_dirty_worker_is_replaced(serve, tmp_path):
    server = start(serve, tmp_path)
    before = dirty_workers(server)
    victim = sorted(before)[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: len(dirty_workers(server)) == 2 and victim not in dirty_workers(server),
        what="a replacement dirty worker",
    )
    wait_until(lambda: answers(server), what="dirty calls to work again")
    seen = {wait_until(lambda: answers(server))["pid"] for _ in range(6)}
    assert victim not in seen


@pytest.mark.ferrocorn_only
def test_killed_arbiter_takes_its_workers_and_comes_back(serve, tmp_path):
    # Gunicorn: the dirty workers outlive a killed arbiter, and request workers keep the
    # old socket path, so calls fail until they are restarted.
    server = start(serve, tmp_path)
    http_workers = server.worker_pids()
    old_arbiter = arbiter_pid(server)
    old_workers = dirty_workers(server)
    assert answers(server)
    os.kill(old_arbiter, signal.SIGKILL)
    wait_until(lambda: not any(pid_alive(p) for p in old_workers), timeout=10,
               what="the killed arbiter's dirty workers to exit")
    wait_until(lambda: len(arbiter_pids(server)) == 2, what="a new dirty arbiter")
    wait_until(lambda: len(dirty_workers(server)) == 2, what="its dirty workers")
    got = wait_until(lambda: answers(server), what="dirty calls to work again")
    assert got["ppid"] == arbiter_pids(server)[-1]
    # The same request workers found the new arbiter.
    assert server.worker_pids() == http_workers


@pytest.mark.ferrocorn_only
def test_killed_master_leaves_no_dirty_process_and_frees_the_port(serve, tmp_path):
    server = start(serve, tmp_path)
    port = server.port
    dirty = [arbiter_pid(server), *dirty_workers(server)]
    os.kill(server.master_pid, signal.SIGKILL)
    wait_until(lambda: not any(pid_alive(p) for p in dirty), timeout=15,
               what="every dirty process to exit")

    def port_free():
        s = socket.socket()
        # As a restarted server would bind: connections of earlier requests may still be
        # in TIME_WAIT on the port, which is not what this test is about.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    wait_until(port_free, timeout=15, what="the port to be free")


def test_ttin_and_ttou_resize_the_dirty_pool(serve, tmp_path):
    server = start(serve, tmp_path, workers=2)
    arbiter = arbiter_pid(server)
    os.kill(arbiter, signal.SIGTTIN)
    wait_until(lambda: len(dirty_workers(server)) == 3, what="a third dirty worker")
    os.kill(arbiter, signal.SIGTTOU)
    wait_until(lambda: len(dirty_workers(server)) == 2, what="back to two dirty workers")
    assert answers(server)


def test_ttou_stops_at_what_the_app_specs_require(serve, tmp_path):
    probe = tmp_path / "probe"
    probe.mkdir()
    server = serve(
        "-w", "1", "--dirty-app", APP + ":2", "--dirty-workers", "2",
        "dirty_proc_app:app", env={"DIRTY_PROBE_DIR": str(probe)},
    )
    wait_until(lambda: len(dirty_workers(server)) == 2, what="dirty workers")
    os.kill(arbiter_pid(server), signal.SIGTTOU)
    server.wait_for_log(r"SIGTTOU: Cannot decrease below 2 workers")
    assert len(dirty_workers(server)) == 2


@pytest.mark.ferrocorn_only
def test_hup_reloads_every_dirty_worker(serve, tmp_path):
    # Gunicorn starts new dirty workers on HUP, then stops the new ones, keeping old code.
    server = start(serve, tmp_path)
    assert {whoami(server)["version"] for _ in range(4)} == {"v1"}
    old = dirty_workers(server)
    (tmp_path / "probe" / "version").write_text("v2")
    server.send_signal(signal.SIGHUP)
    wait_until(lambda: not (old & dirty_workers(server)) and len(dirty_workers(server)) == 2,
               timeout=20, what="every old dirty worker to be replaced")
    versions = {wait_until(lambda: answers(server))["version"] for _ in range(8)}
    assert versions == {"v2"}
    # The arbiter itself stays (the settings did not change).
    assert len(arbiter_pids(server)) == 1


@pytest.mark.ferrocorn_only
def test_hup_with_new_dirty_settings_replaces_the_arbiter(serve, tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text("dirty_workers = 1\n")
    probe = tmp_path / "probe"
    probe.mkdir()
    server = serve(
        "-c", str(conf), "-w", "1", "--dirty-app", APP, "dirty_proc_app:app",
        env={"DIRTY_PROBE_DIR": str(probe)},
    )
    wait_until(lambda: len(dirty_workers(server)) == 1, what="one dirty worker")
    conf.write_text("dirty_workers = 3\n")
    server.send_signal(signal.SIGHUP)
    wait_until(lambda: len(arbiter_pids(server)) == 2, what="a new dirty arbiter")
    wait_until(lambda: len(dirty_workers(server)) == 3, what="three dirty workers")
    assert wait_until(lambda: answers(server))


@pytest.mark.ferrocorn_only
def test_hup_under_load_loses_no_dirty_call(serve, tmp_path):
    server = start(serve, tmp_path, http_workers=2)
    old = dirty_workers(server)
    with LoadGen(server.address, "/nap", threads=4, limit=40) as load:
        load.wait_ok(10)
        load.mark("HUP")
        server.send_signal(signal.SIGHUP)
        wait_until(lambda: not (old & dirty_workers(server)) and len(dirty_workers(server)) == 2,
                   timeout=25, what="the dirty workers to be replaced")
        load.wait_ok(10, what="calls after the reload")
    load.assert_lossless()


def test_term_stops_every_dirty_process(serve, tmp_path):
    server = start(serve, tmp_path)
    dirty = [arbiter_pid(server), *dirty_workers(server)]
    socket_path = re.findall(r"Spawned dirty arbiter \(pid: \d+\) at (\S+)", server.stderr_text())[-1]
    server.send_signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0
    assert not any(pid_alive(p) for p in dirty)
    if not is_gunicorn():
        assert not os.path.exists(os.path.dirname(socket_path))
