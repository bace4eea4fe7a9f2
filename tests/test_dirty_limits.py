"""Dirty arbiters under pressure and misuse: a stream whose reader stalls (backpressure
bounds the arbiter's and the worker's memory), an async client whose arbiter is replaced
by a HUP while its calls run, nesting too deep for the wire format, an app that cannot
boot (spawns back off), `--user`/`--group` (request workers reach the arbiter; dirty
workers still die with it), and a SIGKILLed master's socket directory.

The test process talks to the arbiter's socket itself with ferrocorn's client (it runs as
root, so it can reach the master's private socket directory). All ferrocorn-only: these
are the cases where ferrocorn does better than Gunicorn (docs/differences.md).
"""

import asyncio
import grp
import os
import pwd
import re
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import children, pid_alive, wait_until

# Every case is ferrocorn-only; the Gunicorn run has no ferrocorn package to import.
dirty_client = pytest.importorskip("ferrocorn.dirty.client")
P = pytest.importorskip("ferrocorn.dirty.protocol")
DirtyProtocolError = pytest.importorskip("ferrocorn.dirty.errors").DirtyProtocolError

pytestmark = pytest.mark.ferrocorn_only

TASKS = "dirty_tasks:Tasks"
MIB = 1 << 20


def start(serve, *extra, workers=1, app="dirty_web:app", **kw):
    server = serve(
        "-w", "1", "--dirty-app", TASKS, "--dirty-workers", str(workers), *extra, app, **kw
    )
    server.wait_for_log(r"Spawned dirty arbiter \(pid: \d+\) at \S+")
    return server


def arbiter(server, index=-1):
    found = re.findall(r"Spawned dirty arbiter \(pid: (\d+)\) at (\S+)", server.stderr_text())
    pid, path = found[index]
    return int(pid), path


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def ready_client(path):
    c = dirty_client.DirtyClient(path, timeout=30)
    wait_until(lambda: c.execute(TASKS, "add", 1, 1) == 2, what="a dirty worker")
    return c


def test_stalled_stream_reader_bounds_memory_then_gets_every_chunk(serve, tmp_path):
    server = start(serve)
    arb, path = arbiter(server)
    c = ready_client(path)
    (worker,) = children(arb)
    before = {pid: rss_kib(pid) for pid in (arb, worker)}
    progress = tmp_path / "progress"
    n = 400
    it = c.stream(TASKS, "blobs", n, MIB, str(progress))
    assert next(it) == b"\x00" * MIB
    # The reader stalls: the worker must stop producing soon after (a few chunks in the
    # socket buffers), instead of running ahead to all n chunks in memory.
    made = []

    def settled():
        made.append(progress.stat().st_size if progress.exists() else 0)
        return len(made) >= 4 and made[-1] == made[-4]

    wait_until(lambda: settled() or time.sleep(0.25), timeout=30, what="the stream to stall")
    assert made[-1] < n // 4, made
    for pid in (arb, worker):
        grown = rss_kib(pid) - before[pid]
        assert grown < 200 * 1024, (pid, grown)
    # The reader resumes and gets every chunk, in order.
    for i in range(1, n):
        assert next(it) == bytes([i % 256]) * MIB
    with pytest.raises(StopIteration):
        next(it)
    assert progress.stat().st_size == n
    c.close()


def test_async_calls_survive_a_hup_that_replaces_the_arbiter(serve, tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text("dirty_timeout = 30\ndirty_threads = 4\n")
    server = start(serve, "-c", str(conf))
    old, path = arbiter(server)
    ready_client(path).close()

    async def scenario():
        c = dirty_client.DirtyClient(path, timeout=60)
        a = asyncio.ensure_future(c.execute_async(TASKS, "sleep", 4))
        # The call is in the old arbiter's worker before the HUP.
        await asyncio.sleep(0)
        assert await c.execute_async(TASKS, "whoami")
        conf.write_text("dirty_timeout = 31\ndirty_threads = 4\n")
        server.send_signal(signal.SIGHUP)
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: server.wait_for_log(r"Dirty arbiter: SIGTERM received")
        )
        assert not a.done()
        # Refused unrun by the stopping arbiter, sent again to the new one; the call
        # running in the old one still gets its reply on the shared connection.
        b = await c.execute_async(TASKS, "whoami")
        assert await a == 4
        await c.close_async()
        return b

    b = asyncio.run(scenario())
    new, _ = arbiter(server)
    assert new != old and b["ppid"] == new


def test_data_nested_too_deeply_is_refused_with_a_reply(serve):
    server = start(serve)
    _, path = arbiter(server)
    c = ready_client(path)
    # A REQUEST and a STASH frame 100000 lists deep, written by hand (the encoder refuses).
    deep = b"\x20\x00\x00\x00\x01" * 100000 + b"\x00"
    payload = b"\x21\x00\x00\x00\x02" + P.encode("app_path") + P.encode(TASKS)
    payload += P.encode("args") + deep
    for msg_type in (P.MSG_REQUEST, P.MSG_STASH):
        with c._lock:
            c._send(P.raw_frame(msg_type, 77, payload), time.monotonic() + 30)
            kind, reply = c._recv(c._sock, 77, time.monotonic() + 30)
        assert kind == P.MSG_ERROR
        assert reply["error"]["error_type"] == "DirtyProtocolError"
        assert "nested too deeply" in reply["error"]["message"]
    # The connection still serves, and a self-referencing result is an error too.
    assert c.execute(TASKS, "add", 2, 3) == 5
    with pytest.raises(DirtyProtocolError, match="nested too deeply"):
        c.execute(TASKS, "selfref")
    assert c.execute(TASKS, "add", 2, 3) == 5
    c.close()


def test_data_nested_500_levels_deep_goes_through(serve):
    server = start(serve)
    _, path = arbiter(server)
    c = ready_client(path)
    deep = [1]
    for _ in range(496):  # 497 lists; the reply wraps them in a dict, a dict and a list
        deep = [deep]
    assert c.execute(TASKS, "echo", deep)["args"] == [deep]
    with pytest.raises(DirtyProtocolError, match="nested too deeply"):
        c.execute(TASKS, "echo", [[[[deep]]]])
    c.close()


def test_app_that_cannot_boot_is_retried_with_backoff(serve):
    server = serve("-w", "1", "--dirty-app", "dirty_broken:App", "--dirty-workers", "1",
                   "dirty_web:app")
    server.wait_for_log(r"failed to boot 3 time\(s\) in a row; next worker for it in 4s",
                        timeout=30)
    # 1 s, 2 s, 4 s: a handful of forks, not hundreds.
    text = server.stderr_text()
    assert text.count("Dirty worker failed to boot") <= 4
    assert "next worker for it in 1s" in text and "next worker for it in 2s" in text
    assert requests.get(server.url + "/", timeout=10).status_code == 200


def test_killed_master_leaves_no_socket_directory(serve):
    server = start(serve)
    arb, path = arbiter(server)
    wait_until(lambda: children(arb), what="a dirty worker")
    os.kill(server.master_pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(arb), timeout=15, what="the arbiter to exit")
    wait_until(lambda: not os.path.exists(os.path.dirname(path)), timeout=5,
               what="the socket directory to be removed")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_user_and_group_workers_reach_the_arbiter_and_die_with_it(serve):
    # Writable by the dirty worker once it is nobody (pytest's tmp tree is root's, 0700).
    with tempfile.TemporaryDirectory(prefix="dirty-nobody-") as shared:
        os.chmod(shared, 0o777)
        _user_and_group(serve, Path(shared) / "holding")


def _user_and_group(serve, marker):
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid).gr_name
    # --preload: the stdlib (under root's 0700 home here) is imported before the workers
    # become nobody.
    server = start(serve, "-u", "nobody", "-g", group, "--preload", workers=1)
    arb, path = arbiter(server)
    # The arbiter hands the directory over when it binds, before it says it listens.
    server.wait_for_log(r"Dirty arbiter listening on")
    st = os.stat(os.path.dirname(path))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (nobody.pw_uid, nobody.pw_gid, 0o700)
    r = requests.get(server.url + "/call", params={"q": '["%s", "whoami"]' % TASKS}, timeout=30)
    who = r.json()["result"]
    assert who["ppid"] == arb
    worker = who["pid"]
    assert os.stat("/proc/%d" % worker).st_uid == nobody.pw_uid
    # The worker's event loop is blocked in app code (it cannot see its link close): only
    # the parent-death signal, armed again after the credential change, ends it.
    blocked = threading.Thread(
        target=lambda: requests.get(
            server.url + "/stream",
            params={"q": '["%s", "hold_loop", "%s", 60]' % (TASKS, marker)},
            timeout=90,
        ),
        daemon=True,
    )
    blocked.start()
    wait_until(marker.exists, timeout=10, what="the call to run")
    os.kill(arb, signal.SIGKILL)
    wait_until(lambda: not pid_alive(worker), timeout=10, what="the dirty worker to die")



def test_a_timeout_given_to_get_dirty_client_applies_only_when_it_is_made():
    dirty_client.set_dirty_socket_path("/nonexistent/arbiter.sock")
    try:
        first = dirty_client.get_dirty_client(timeout=5)
        again = dirty_client.get_dirty_client(timeout=99)
        assert again is first and first.timeout == 5

        async def in_a_loop():
            a = await dirty_client.get_dirty_client_async(timeout=7)
            b = await dirty_client.get_dirty_client_async(timeout=99)
            return a is b, b.timeout

        assert asyncio.run(in_a_loop()) == (True, 7)
    finally:
        dirty_client.close_dirty_client()
        dirty_client.set_dirty_socket_path(None)


def test_dirty_add_is_capped():
    from ferrocorn.dirty import control

    class Pool:  # the arbiter as arbiter_manage sees it, already at the cap
        num_workers = control.MAX_DIRTY_WORKERS

        def current_workers(self):
            return []

        def learning(self, current):
            return False

        def apps_for_new_worker(self, current):
            return [TASKS]

        def spawn_worker(self, apps):
            raise AssertionError("spawned past the cap")

        class log:
            info = staticmethod(lambda *a: None)

    result = control.arbiter_manage(Pool(), {"op": P.MANAGE_OP_ADD, "count": 100000})
    assert result["spawned"] == 0
    assert result["reason"] == "At most 1024 dirty workers can run"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_a_socket_the_worker_may_not_reach_fails_at_once(serve):
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid).gr_name
    with tempfile.TemporaryDirectory(prefix="dirty-private-") as private:  # root's, 0700
        path = os.path.join(private, "arbiter.sock")
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
        listener.listen(1)
        try:
            # No dirty apps: the request worker's client uses the path it is given.
            server = serve("-u", "nobody", "-g", group, "--preload", "-w", "1",
                           "-e", "GUNICORN_DIRTY_SOCKET=" + path, "dirty_web:app")
            started = time.monotonic()
            r = requests.get(server.url + "/call", params={"q": '["%s", "add", 1, 2]' % TASKS},
                             timeout=60)
            elapsed = time.monotonic() - started
        finally:
            listener.close()
    err = r.json()
    assert err["error"] == "DirtyConnectionError", err
    assert "Permission denied" in err["message"] and path in err["message"], err
    # Not the 30 s connect window of a missing or restarting arbiter.
    assert elapsed < 20, elapsed
