"""Dirty arbiters seen from the apps (issue 18, part 3): HTTP apps on the sync, gthread,
asgi and gevent workers call dirty apps (tests/apps/dirty_tasks.py) through the client
API over real HTTP requests (tests/apps/dirty_web.py, dirty_web_asgi.py).

Covered: execute and stream (generators and async generators) from each worker type,
app errors with the remote traceback, unknown apps and private actions, dirty_timeout
(a call past it fails with DirtyTimeoutError; 0 means no limit and an idle pool uses no
CPU), the stash shared by every process, the four dirty hooks and where they run, and
that the master never imports a dirty app module. The process model (signals, kills,
respawns, HUP) is in test_dirty_process.py.

Against Gunicorn 27.0.1 (``FERROCORN_CMD=gunicorn``) everything passes except the cases
marked ``ferrocorn_only``, which check the breakages ferrocorn fixes (docs/differences.md).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from urllib.parse import quote
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import is_gunicorn, pid_alive, wait_until
from loadgen import LoadGen

TASKS = "dirty_tasks:Tasks"


def dirty_args(workers=2, timeout=30, *extra):
    return [
        "--dirty-app",
        TASKS,
        "--dirty-workers",
        str(workers),
        "--dirty-timeout",
        str(timeout),
        *extra,
    ]


def get(server, route, *q, timeout=30):
    r = requests.get(server.url + route, params={"q": json.dumps(list(q))}, timeout=timeout)
    assert r.status_code == 200, r.text
    return r.json(), int(r.headers["X-Worker-Pid"])


def call(server, *q, timeout=30):
    return get(server, "/call", *q, timeout=timeout)[0]


def serve_dirty(serve, *args, **kw):
    """A server whose dirty workers all answer (Gunicorn starts its HTTP workers without
    waiting for the arbiter, and refuses calls while a dirty worker's socket is not up)."""
    server = serve(*args, **kw)
    expect = int(args[list(args).index("--dirty-workers") + 1])
    wait_until(lambda: call(server, TASKS, "add", 0, 0) == {"result": 0}, what="the dirty pool")
    dirty_pids(server, expect)
    return server


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def dirty_pids(server, expect=2):
    """Dirty worker pids (and their arbiter's) seen by calls, until ``expect`` workers
    have answered (they may still be booting)."""
    workers, arbiters = set(), set()
    deadline = time.monotonic() + 20
    while len(workers) < expect and time.monotonic() < deadline:
        info = call(server, TASKS, "whoami").get("result")
        if info:  # Gunicorn: an error while a worker's socket is not up yet
            workers.add(info["pid"])
            arbiters.add(info["ppid"])
    return workers, arbiters


# ---- calls from each worker type -------------------------------------------------------------


def test_execute_from_sync_worker(serve):
    server = serve_dirty(serve, "dirty_web:app", *dirty_args())
    assert call(server, TASKS, "add", 2, 40) == {"result": 42}
    echoed = call(server, TASKS, "echo", 1, "two", [3.5, None], {"k": b"x".hex()})["result"]
    assert echoed == {"args": [1, "two", [3.5, None], {"k": "78"}], "kwargs": {}}
    workers, arbiters = dirty_pids(server)
    # Both dirty workers serve, and neither is the master nor an HTTP worker.
    assert len(workers) == 2 and len(arbiters) == 1
    assert not workers & ({server.master_pid} | set(server.worker_pids()))
    assert arbiters != {server.master_pid}


def test_execute_from_gthread_threads_concurrently(serve):
    server = serve_dirty(
        serve,
        "dirty_web:app",
        "-k",
        "gthread",
        "--threads",
        "8",
        *dirty_args(2, 30, "--dirty-threads", "4"),
    )
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: call(server, TASKS, "add", i, 1000)["result"], range(64)))
    # Every thread's thread-local client got its own answers back, none crossed.
    assert results == [i + 1000 for i in range(64)]


def test_execute_and_stream_from_asgi_worker(serve):
    server = serve_dirty(serve, "dirty_web_asgi:app", "-k", "asgi", *dirty_args())
    assert call(server, TASKS, "add", 1, 2) == {"result": 3}
    chunks, _ = get(server, "/stream", TASKS, "countdown", 3)
    assert chunks == {"chunks": ["tick 3", "tick 2", "tick 1"]}
    err = call(server, TASKS, "boom", "async side")
    assert err["error"] == "DirtyAppError" and "dirty failure: async side" in err["traceback"]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: call(server, TASKS, "add", i, i)["result"], range(24)))
    assert results == [2 * i for i in range(24)]


@pytest.mark.ferrocorn_only
def test_async_client_shares_one_connection(serve):
    # Gunicorn makes a client per asyncio context, so one connection per ASGI request,
    # never closed: its arbiter holds a descriptor per request served.
    server = serve_dirty(serve, "dirty_web_asgi:app", "-k", "asgi", *dirty_args(1))
    arbiter = call(server, TASKS, "whoami")["result"]["ppid"]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: call(server, TASKS, "add", i, 1)["result"], range(150)))
    assert results == [i + 1 for i in range(150)]
    assert len(os.listdir("/proc/%d/fd" % arbiter)) < 30


def test_execute_from_gevent_worker(serve):
    server = serve_dirty(
        serve, "dirty_web:app", "-k", "gevent", "--worker-connections", "50", *dirty_args()
    )
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda i: call(server, TASKS, "add", i, -1)["result"], range(30)))
    assert results == [i - 1 for i in range(30)]
    chunks, _ = get(server, "/stream", TASKS, "countdown", 2)
    assert chunks == {"chunks": ["tick 2", "tick 1"]}


@pytest.mark.ferrocorn_only
def test_dirty_threads_run_calls_at_once_in_one_worker(serve):
    # Gunicorn sends a worker one call at a time, whatever dirty_threads says.
    server = serve_dirty(
        serve,
        "dirty_web:app",
        "-k",
        "gthread",
        "--threads",
        "4",
        *dirty_args(1, 30, "--dirty-threads", "3"),
    )
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: call(server, TASKS, "overlap", 3)["result"], range(3)))
    assert results == [True, True, True]


def test_workers_class_attribute_limits_an_app(serve):
    server = serve_dirty(
        serve, "dirty_web:app", "--dirty-app", "dirty_tasks:Single", *dirty_args(2)
    )
    workers, _ = dirty_pids(server)

    def single_pid():
        # Gunicorn may answer an error while the worker that loads it is starting.
        out = call(server, "dirty_tasks:Single", "whoami")
        return out.get("result", {}).get("pid")

    single = {wait_until(single_pid, what="the Single app") for _ in range(8)}
    assert len(workers) == 2 and len(single) == 1 and single <= workers


@pytest.mark.ferrocorn_only
def test_control_status_and_manage(serve):
    from ferrocorn.dirty import control

    server = serve_dirty(
        serve, "dirty_web:app", "--dirty-app", "dirty_tasks:Single", *dirty_args(2)
    )
    path = re.search(r"Spawned dirty arbiter \(pid: \d+\) at (\S+)", server.stderr_text()).group(1)
    workers, (arbiter,) = dirty_pids(server)
    status = control.status(path)
    assert status["enabled"] is True and status["pid"] == arbiter
    assert {w["pid"] for w in status["workers"]} == workers
    apps = {a["import_path"]: a for a in status["apps"]}
    assert apps[TASKS]["current_workers"] == 2 and apps[TASKS]["worker_count"] is None
    assert (
        apps["dirty_tasks:Single"]["worker_count"] == 1
        and apps["dirty_tasks:Single"]["current_workers"] == 1
    )
    added = control.manage(path, "add", 1)
    assert added["success"] is True and added["spawned"] == 1 and added["target_workers"] == 3
    wait_until(lambda: len(control.status(path)["workers"]) == 3, what="a third dirty worker")
    removed = control.manage(path, "remove", 5)
    # Floored at one worker, and the one kept still serves both apps.
    assert removed["removed"] == 2 and removed["target_workers"] == 1
    assert call(server, "dirty_tasks:Single", "whoami")["result"]["pid"] in workers | {
        w["pid"] for w in status["workers"]
    }
    assert call(server, TASKS, "add", 1, 1) == {"result": 2}
    assert control.manage(path, "bogus", 1) == {
        "success": False,
        "error": "Unknown dirty operation: bogus",
    }


# ---- streaming, errors -----------------------------------------------------------------------


def test_stream_generators(serve):
    server = serve_dirty(serve, "dirty_web:app", *dirty_args())
    assert get(server, "/stream", TASKS, "countdown", 4)[0] == {
        "chunks": ["tick 4", "tick 3", "tick 2", "tick 1"]
    }
    assert get(server, "/stream", TASKS, "countdown", 0)[0] == {"chunks": []}
    assert get(server, "/stream", TASKS, "acountdown", 3)[0] == {"chunks": [0, 1, 2]}
    # The connection is reusable after streams: a plain call still gets its own answer.
    assert call(server, TASKS, "add", 5, 5) == {"result": 10}


@pytest.mark.ferrocorn_only
def test_dropped_stream_stops_the_generator(serve, tmp_path):
    server = serve_dirty(serve, "dirty_web:app", *dirty_args(1))
    ticks = tmp_path / "ticks"
    assert get(server, "/stream_head", TASKS, "ticker", str(ticks))[0] == {"chunks": [1, 2, 3]}

    def settled():
        before = ticks.stat().st_size
        time.sleep(0.5)
        return ticks.stat().st_size == before

    # Stopped (no growth over a window), and stays stopped: a generator left running
    # would tick 50 times a second. How soon it stopped depends on the box's load.
    wait_until(settled, timeout=30, what="the abandoned generator to stop")
    assert settled()
    assert call(server, TASKS, "add", 1, 1) == {"result": 2}


def test_app_error_carries_remote_traceback(serve):
    server = serve_dirty(serve, "dirty_web:app", *dirty_args())
    err = call(server, TASKS, "boom", "disk on fire")
    assert err["error"] == "DirtyAppError"
    assert err["message"] == "dirty failure: disk on fire"
    tb = err["traceback"]
    assert "Traceback (most recent call last)" in tb
    assert re.search(r'dirty_tasks\.py", line \d+, in boom', tb), tb
    assert "RuntimeError: dirty failure: disk on fire" in tb
    # The dirty worker survives its app's exception.
    assert call(server, TASKS, "add", 1, 1) == {"result": 2}


def test_private_action_refused(serve):
    server = serve_dirty(serve, "dirty_web:app", *dirty_args())
    err = call(server, TASKS, "_private")
    assert err["error"] == "DirtyAppError"
    assert "Unknown action: _private" in err["message"]
    assert "should never run" not in json.dumps(err)
    err = call(server, TASKS, "no_such_action")
    assert err["error"] == "DirtyAppError" and "Unknown action: no_such_action" in err["message"]


@pytest.mark.ferrocorn_only
def test_unknown_app_is_not_found(serve):
    # Gunicorn answers DirtyNoWorkersAvailableError for an app it was never given.
    server = serve_dirty(serve, "dirty_web:app", *dirty_args())
    err = call(server, "dirty_tasks:Missing", "add", 1, 2)
    assert err["error"] == "DirtyAppNotFoundError"
    assert err["message"] == "Dirty app not found: dirty_tasks:Missing"
    assert call(server, TASKS, "add", 1, 2) == {"result": 3}


@pytest.mark.ferrocorn_only
def test_app_that_cannot_boot(serve):
    # Every dirty worker fails to import the module: calls fail fast, HTTP keeps serving.
    server = serve("dirty_web:app", "--dirty-app", "dirty_broken:App", "--dirty-workers", "1")
    server.wait_for_log(r"Dirty worker failed to boot \(pid:\d+\)")
    err = call(server, "dirty_broken:App", "anything")
    assert err == {
        "error": "DirtyNoWorkersAvailableError",
        "message": "No workers available for app: dirty_broken:App",
        "traceback": None,
    }
    assert "this dirty app module is broken on purpose" in server.stderr_text()
    assert get(server, "/")[0] == {"result": "ok"}


@pytest.mark.ferrocorn_only
def test_unencodable_arguments_fail_in_the_caller(serve):
    # Gunicorn reports the encoding failure as a DirtyConnectionError.
    server = serve_dirty(serve, "dirty_web:app", *dirty_args())
    err = call(server, TASKS, "add", 2**70, 1)
    assert err["error"] == "DirtyProtocolError"
    assert call(server, TASKS, "add", 2**40, 1) == {"result": 2**40 + 1}


# ---- dirty_timeout ---------------------------------------------------------------------------


def test_call_past_dirty_timeout_fails(serve):
    server = serve_dirty(serve, "dirty_web:app", *dirty_args(1, 2))
    err = call(server, TASKS, "sleep", 6)
    # Gunicorn's worker and arbiter race to report it; when the worker wins, its
    # DirtyTimeoutError arrives wrapped in a DirtyAppError.
    assert err["error"] == "DirtyTimeoutError" or (
        is_gunicorn() and "timed out" in err["message"]
    ), err


def test_worker_with_a_blocked_loop_is_killed(serve):
    server = serve_dirty(serve, "dirty_web:app", *dirty_args(1, 2))
    before = call(server, TASKS, "whoami")["result"]["pid"]
    err, _ = get(server, "/stream", TASKS, "block_loop", 30)
    assert err["error"] == "DirtyTimeoutError", err
    server.wait_for_log(r"DIRTY WORKER TIMEOUT \(pid:%d\)" % before)
    wait_until(lambda: not pid_alive(before), timeout=15, what="the stuck dirty worker to die")
    after = wait_until(lambda: call(server, TASKS, "whoami").get("result"), what="a new worker")
    assert after["pid"] != before


@pytest.mark.ferrocorn_only
def test_timed_out_worker_is_replaced(serve):
    server = serve_dirty(serve, "dirty_web:app", *dirty_args(1, 2))
    before = call(server, TASKS, "whoami")["result"]["pid"]
    err = call(server, TASKS, "sleep", 30)
    assert err["error"] == "DirtyTimeoutError"
    assert "timed out" in err["message"]
    # The worker whose thread is still stuck in sleep(30) is stopped and replaced.
    wait_until(lambda: not pid_alive(before), timeout=10, what="the timed-out dirty worker to exit")
    after = call(server, TASKS, "whoami")["result"]
    assert after["pid"] != before and after["calls"] == 0
    server.wait_for_log(r"Dirty worker \(pid:%d\) timed out a call; replacing it" % before)


@pytest.mark.ferrocorn_only
def test_dirty_timeout_zero_means_no_limit(serve):
    server = serve_dirty(serve, "dirty_web:app", *dirty_args(1, 0))
    assert call(server, TASKS, "sleep", 3, timeout=60) == {"result": 3}
    info = call(server, TASKS, "whoami")["result"]
    worker, arbiter = info["pid"], info["ppid"]
    before, t0 = (cpu_ticks(worker), cpu_ticks(arbiter)), time.monotonic()
    # An idle window of at least 2 s (longer on a slow box: the bound scales with it).
    wait_until(lambda: time.monotonic() - t0 >= 2, timeout=30, what="an idle window")
    after, elapsed = (cpu_ticks(worker), cpu_ticks(arbiter)), time.monotonic() - t0
    # Idle: no busy loop (Gunicorn spins at 100% of a CPU). 1 tick = 10 ms; allow 10%.
    allowed = 5 + 0.1 * elapsed * 100
    assert after[0] - before[0] <= allowed, (before, after, elapsed)
    assert after[1] - before[1] <= allowed, (before, after, elapsed)
    assert get(server, "/timeout")[0] == {"result": None}


@pytest.mark.ferrocorn_only
def test_client_timeout_follows_dirty_timeout(serve):
    server = serve_dirty(serve, "dirty_web:app", *dirty_args(1, 7))
    # A call may wait dirty_timeout for a worker and run dirty_timeout: the client waits
    # both, plus a margin, so the server's DirtyTimeoutError always arrives first.
    assert get(server, "/timeout")[0] == {"result": 19.0}


# ---- stash -----------------------------------------------------------------------------------


def test_stash_shared_between_processes(serve):
    server = serve_dirty(serve, "dirty_web:app", "-w", "2", *dirty_args())
    stash = lambda *q: get(server, "/stash", *q)[0]["result"]  # noqa: E731
    stash("put", "sessions", "user:1", {"name": "Ada", "roles": ["admin"]})
    stash("put", "sessions", "user:2", "Bob")
    stash("put", "other", "k", 1)
    # The dirty worker (another process) reads what the HTTP worker stored.
    assert call(server, TASKS, "read_stash", "sessions", "user:1")["result"] == {
        "name": "Ada",
        "roles": ["admin"],
    }
    assert stash("get", "sessions", "user:2") == "Bob"
    assert sorted(stash("keys", "sessions")) == ["user:1", "user:2"]
    assert stash("keys", "sessions", "user:1*") == ["user:1"]
    assert stash("exists", "sessions", "user:2") is True
    assert stash("exists", "sessions") is True
    assert stash("exists", "nope") is False
    assert stash("info", "sessions") == {"size": 2, "table": "sessions"}
    assert stash("delete", "sessions", "user:2") is True
    assert stash("delete", "sessions", "user:2") is False
    assert sorted(stash("tables")) == ["other", "sessions"]
    stash("clear", "sessions")
    assert stash("keys", "sessions") == []
    stash("delete_table", "other")
    stash("ensure", "fresh")
    assert sorted(stash("tables")) == ["fresh", "sessions"]
    ops = call(server, TASKS, "table_ops", "dicty")["result"]
    assert ops == {
        "a": 1,
        "b": [2, "two"],
        "has_a": True,
        "len": 2,
        "keys": ["a", "b"],
        "after_del": ["b"],
        "items": [],
    }
    stash("delete_table", "dicty")
    # Every HTTP worker sees the same tables: ask until both have answered.
    seen = {}
    deadline = time.monotonic() + 20
    while len(seen) < 2 and time.monotonic() < deadline:
        out, pid = get(server, "/stash", "tables")
        seen[pid] = sorted(out["result"])
    assert len(seen) == 2 and all(v == ["fresh", "sessions"] for v in seen.values())


@pytest.mark.ferrocorn_only
def test_stash_missing_entries(serve):
    # Gunicorn's get() raises StashError for a missing key instead of returning the default.
    server = serve_dirty(serve, "dirty_web:app", *dirty_args(1))
    stash = lambda *q: get(server, "/stash", *q)[0]  # noqa: E731
    assert stash("get", "t", "missing", "fallback") == {"result": "fallback"}
    assert stash("get", "t", "missing") == {"result": None}
    err = stash("info", "no_table")
    assert (
        err["error"] == "StashTableNotFoundError"
        and err["message"] == "Stash table not found: no_table"
    )


# ---- reconnection ---------------------------------------------------------------------------


@pytest.mark.ferrocorn_only
def test_new_dirty_settings_on_hup_lose_no_call(serve, tmp_path):
    # The HUP hands the socket path to a new arbiter while the old one stops: calls the old
    # one refuses unrun are sent again to the new one, idle connections reconnect.
    conf = tmp_path / "conf.py"
    conf.write_text("dirty_timeout = 30\n")
    server = serve_dirty(serve, "-c", str(conf), "-w", "2", "dirty_web:app", *dirty_args(2)[:4])
    arbiters = lambda: re.findall(
        r"Spawned dirty arbiter \(pid: (\d+)\)", server.stderr_text()
    )  # noqa: E731
    with LoadGen(
        server.address, "/call?q=" + quote(json.dumps([TASKS, "sleep", 0.05])), threads=4, limit=40
    ) as load:
        load.wait_ok(10)
        conf.write_text("dirty_timeout = 31\n")
        load.mark("HUP")
        server.send_signal(signal.SIGHUP)
        wait_until(lambda: len(arbiters()) == 2, what="the new dirty arbiter")
        old = int(arbiters()[0])
        wait_until(lambda: not pid_alive(old), timeout=20, what="the old arbiter to exit")
        load.wait_ok(20, what="calls after the reload")
    load.assert_lossless()
    bodies = [json.loads(b) for b in load.bodies()]
    assert bodies and all(b == {"result": 0.05} for b in bodies), bodies[:5]


@pytest.mark.ferrocorn_only
def test_stopping_arbiter_hands_waiting_calls_back(serve):
    from ferrocorn.dirty import control, protocol
    from ferrocorn.dirty.client import DirtyClient

    server = serve_dirty(serve, "dirty_web:app", *dirty_args(1))
    path = re.search(r"Spawned dirty arbiter \(pid: \d+\) at (\S+)", server.stderr_text()).group(1)
    raw_status = lambda: control._ask(path, protocol.MSG_STATUS, None, 5)  # noqa: E731
    arbiter = raw_status()["arbiter_pid"]
    with ThreadPoolExecutor(2) as pool:
        busy = pool.submit(DirtyClient(path, timeout=30).execute, TASKS, "sleep", 2)
        wait_until(lambda: raw_status()["workers"][0]["busy"] == 1, what="the worker to be busy")
        queued = pool.submit(DirtyClient(path, timeout=30).execute, TASKS, "add", 1, 2)
        wait_until(lambda: raw_status()["waiting_calls"] == 1, what="a call to wait")
        os.kill(arbiter, signal.SIGTERM)
        # The call in flight finishes in the stopping arbiter; the waiting one is refused
        # unrun and sent again to the arbiter the master starts next.
        assert busy.result(timeout=30) == 2
        assert queued.result(timeout=30) == 3
    assert raw_status()["arbiter_pid"] != arbiter


# ---- hooks and imports -----------------------------------------------------------------------

HOOKS = """
import os

def _note(name, *objs):
    with open(%(path)r, "a") as f:
        pids = ",".join(str(getattr(o, "pid", "-")) for o in objs)
        f.write("%%s %%d %%s\\n" %% (name, os.getpid(), pids))

def on_dirty_starting(arbiter):
    _note("on_dirty_starting", arbiter)

def dirty_post_fork(arbiter, worker):
    _note("dirty_post_fork", arbiter, worker)

def dirty_worker_init(worker):
    _note("dirty_worker_init", worker)
    assert worker.apps, "dirty_worker_init runs after the apps are loaded"

def dirty_worker_exit(arbiter, worker):
    _note("dirty_worker_exit", arbiter, worker)
"""


def hook_calls(path):
    if not path.exists():
        return []
    return [line.split(" ") for line in path.read_text().splitlines()]


def test_dirty_hooks_run_where_gunicorn_runs_them(serve, tmp_path):
    notes = tmp_path / "hooks.txt"
    conf = tmp_path / "conf.py"
    conf.write_text(HOOKS % {"path": str(notes)})
    server = serve_dirty(serve, "-c", str(conf), "dirty_web:app", *dirty_args())
    workers, arbiters = dirty_pids(server)
    (arbiter,) = arbiters
    wait_until(lambda: len([c for c in hook_calls(notes) if c[0] == "dirty_worker_init"]) >= 2)
    calls = hook_calls(notes)
    starting = [c for c in calls if c[0] == "on_dirty_starting"]
    assert starting == [["on_dirty_starting", str(arbiter), str(arbiter)]]
    forks = [c for c in calls if c[0] == "dirty_post_fork"]
    # In the arbiter (the parent side, as Gunicorn does), with the new worker's pid.
    assert {c[1] for c in forks} == {str(arbiter)}
    assert {c[2].split(",")[1] for c in forks} == {str(p) for p in workers}
    inits = [c for c in calls if c[0] == "dirty_worker_init"]
    assert {(c[1], c[2]) for c in inits} == {(str(p), str(p)) for p in workers}
    server.stop()
    calls = hook_calls(notes)
    exits = [c for c in calls if c[0] == "dirty_worker_exit"]
    assert {c[1] for c in exits} == {str(arbiter)}
    assert {c[2].split(",")[1] for c in exits} == {str(p) for p in workers}


@pytest.mark.ferrocorn_only
def test_master_never_imports_dirty_apps(serve, tmp_path):
    imports = tmp_path / "imports.txt"
    server = serve_dirty(
        serve, "dirty_web:app", *dirty_args(2), env={"DIRTY_IMPORT_LOG": str(imports)}
    )
    workers, arbiters = dirty_pids(server)
    importers = {int(x) for x in imports.read_text().split()}
    # Only dirty workers import the module: not the master, not the arbiter (so a HUP
    # loads new code), not the HTTP workers.
    assert importers == workers
    assert server.master_pid not in importers and not arbiters & importers


@pytest.mark.ferrocorn_only
def test_wire_format_is_gunicorns():
    from ferrocorn.dirty import protocol as P
    from ferrocorn.dirty.errors import DirtyProtocolError

    frame = P.frame(P.MSG_REQUEST, 7, {"app_path": "m:C", "args": [True, None, -2, 1.5, b"\x00"]})
    # Header: "GD", version 1, type 1, payload length, request id 7.
    assert frame[:16] == b"GD\x01\x01" + (len(frame) - 16).to_bytes(4, "big") + (7).to_bytes(
        8, "big"
    )
    assert frame[16:] == (
        b"\x21\x00\x00\x00\x02"
        b"\x11\x00\x00\x00\x08app_path\x11\x00\x00\x00\x03m:C"
        b"\x11\x00\x00\x00\x04args\x20\x00\x00\x00\x05"
        b"\x01\x01\x00\x05\xff\xff\xff\xff\xff\xff\xff\xfe\x06?\xf8\x00\x00\x00\x00\x00\x00"
        b"\x10\x00\x00\x00\x01\x00"
    )
    assert P.decode(frame[16:]) == {"app_path": "m:C", "args": [True, None, -2, 1.5, b"\x00"]}
    for bad in (
        b"\x11\x00\x00\x00\x05ab",
        b"\x00\x00",
        b"\x21\x00\x00\x00\x01\x05" + bytes(8) + b"\x00",
        b"\x7f",
    ):
        with pytest.raises(DirtyProtocolError):
            P.decode(bad)
    with pytest.raises(DirtyProtocolError):
        P.parse_header(b"XX\x01\x01" + bytes(12))
    with pytest.raises(DirtyProtocolError):
        P.encode({1, 2})
