"""Server hooks from a config file, and the CPython fork protocol in workers.

Each hook appends one JSON line to a file named by HOOK_LOG, so the test sees the calls
in the order the server made them, with the attributes the hook could read.
"""

import json
import signal
import textwrap

import pytest
import requests

import os

from conftest import is_gunicorn, pid_alive, read_pid, wait_until

HOOKS_CONF = textwrap.dedent(
    """
    import json, os

    def _rec(name, **fields):
        fields["hook"] = name
        fields["in_pid"] = os.getpid()
        with open(os.environ["HOOK_LOG"], "a") as f:
            f.write(json.dumps(fields) + "\\n")

    def on_starting(server):
        _rec("on_starting", pid=server.pid, workers=server.cfg.workers)

    def when_ready(server):
        _rec("when_ready", pid=server.pid)
        server.log.info("when_ready says hello")

    def nworkers_changed(server, new_value, old_value):
        _rec("nworkers_changed", new=new_value, old=old_value)

    def pre_fork(server, worker):
        _rec("pre_fork", worker_pid=str(worker.pid), age=worker.age)

    def post_fork(server, worker):
        _rec("post_fork", worker_pid=worker.pid, age=worker.age)

    def post_worker_init(worker):
        _rec("post_worker_init", worker_pid=worker.pid, booted=worker.booted)

    def pre_request(worker, req):
        _rec("pre_request", method=req.method, path=req.path, query=req.query)

    def post_request(worker, req, environ, resp):
        _rec("post_request", path=req.path, status=resp.status, sent=resp.sent,
             path_info=environ["PATH_INFO"])

    def worker_int(worker):
        _rec("worker_int", worker_pid=worker.pid)

    def worker_exit(server, worker):
        _rec("worker_exit", worker_pid=worker.pid)

    def child_exit(server, worker):
        _rec("child_exit", worker_pid=worker.pid)

    def on_exit(server):
        _rec("on_exit", pid=server.pid)

    def on_reload(server):
        _rec("on_reload", pid=server.pid, workers=server.cfg.workers)

    def worker_abort(worker):
        _rec("worker_abort", worker_pid=worker.pid)

    def pre_exec(server):
        _rec("pre_exec", master=server.pid)
    """
)


def _calls(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_hooks_are_called_with_their_arguments(serve, tmp_path):
    conf = tmp_path / "hooks.conf.py"
    conf.write_text(HOOKS_CONF)
    log = tmp_path / "hooks.jsonl"
    server = serve("-c", str(conf), "hello:app", env={"HOOK_LOG": str(log)})
    master = server.master_pid

    resp = requests.get(server.url + "/some/path?x=1", timeout=10)
    assert resp.status_code == 200
    server.wait_for_log(r"when_ready says hello")
    worker = server.worker_pids()[0]

    server.send_signal(signal.SIGTERM)
    assert server.wait_exit(15) == 0
    calls = _calls(log)
    names = [c["hook"] for c in calls]

    # Master-side hooks run in the master, in Gunicorn's order.
    assert names.index("on_starting") < names.index("when_ready") < names.index("pre_fork")
    assert all(c["in_pid"] == master for c in calls
               if c["hook"] in ("on_starting", "when_ready", "pre_fork", "child_exit", "on_exit"))
    assert calls[names.index("on_starting")]["workers"] == 1
    assert calls[names.index("pre_fork")]["worker_pid"] == "[booting]"
    nchanged = calls[names.index("nworkers_changed")]
    assert (nchanged["new"], nchanged["old"]) == (1, None)

    # Worker-side hooks run in the worker.
    for name in ("post_fork", "post_worker_init", "pre_request", "post_request", "worker_exit"):
        assert calls[names.index(name)]["in_pid"] == worker, name
    assert calls[names.index("post_fork")]["worker_pid"] == worker
    assert calls[names.index("post_worker_init")]["booted"] is False
    # The fixture's readiness probe is the first request; find ours by its path.
    pre = next(c for c in calls if c["hook"] == "pre_request" and c["path"] == "/some/path")
    assert (pre["method"], pre["query"]) == ("GET", "x=1")
    post = next(c for c in calls if c["hook"] == "post_request" and c["path"] == "/some/path")
    assert post["status"] == "200 OK"
    assert post["sent"] == len(b"Hello, World!\n")
    assert post["path_info"] == "/some/path"

    # The stop sequence: the worker leaves, the master reaps it, then exits.
    assert names.index("worker_exit") < names.index("on_exit")
    assert names[-1] == "on_exit"
    if not is_gunicorn():
        # Gunicorn only calls child_exit for workers reaped outside of halt();
        # ferrocorn reaps them in stop() as well and reports each one.
        assert "child_exit" in names


def test_worker_int_runs_on_quit(serve, tmp_path):
    conf = tmp_path / "hooks.conf.py"
    conf.write_text(HOOKS_CONF)
    log = tmp_path / "hooks.jsonl"
    server = serve("-c", str(conf), "hello:app", env={"HOOK_LOG": str(log)})
    worker = server.worker_pids()[0]
    server.send_signal(signal.SIGQUIT)
    server.wait_exit(15)
    calls = _calls(log)
    assert {"hook": "worker_int", "worker_pid": worker, "in_pid": worker} in calls


def _hooked(serve, tmp_path, *args, **kw):
    conf = tmp_path / "hooks.conf.py"
    conf.write_text(HOOKS_CONF)
    log = tmp_path / "hooks.jsonl"
    env = dict(kw.pop("env", {}), HOOK_LOG=str(log))
    return serve("-c", str(conf), *args, env=env, **kw), log


def test_on_reload_and_nworkers_changed_run_in_the_master_on_hup_ttin_ttou(serve, tmp_path):
    server, log = _hooked(serve, tmp_path, "hello:app")
    master = server.master_pid
    server.send_signal(signal.SIGTTIN)
    server.wait_for_log(r"Booting worker with pid", count=2)
    server.send_signal(signal.SIGTTOU)
    server.wait_for_log(r"Handling signal: ttou")
    server.send_signal(signal.SIGHUP)
    server.wait_for_log(r"Booting worker with pid", count=3)
    wait_until(lambda: any(c["hook"] == "on_reload" for c in _calls(log)), what="on_reload")
    calls = _calls(log)
    changes = [(c["new"], c["old"]) for c in calls if c["hook"] == "nworkers_changed"]
    # Start (old None), TTIN, TTOU, then HUP re-applies the configured count.
    assert changes[:3] == [(1, None), (2, 1), (1, 2)], changes
    (reload,) = [c for c in calls if c["hook"] == "on_reload"]
    assert (reload["in_pid"], reload["pid"], reload["workers"]) == (master, master, 1)


def test_worker_abort_runs_in_the_timed_out_worker(serve, tmp_path):
    server, log = _hooked(serve, tmp_path, "--timeout", "2", "slow:app")
    (stuck,) = server.worker_pids()
    import threading
    threading.Thread(
        target=lambda: requests.get(server.url + "/?s=20", timeout=30), daemon=True
    ).start()
    server.wait_for_log(r"WORKER TIMEOUT \(pid:%d\)" % stuck, timeout=20)
    wait_until(lambda: any(c["hook"] == "worker_abort" for c in _calls(log)),
               what="worker_abort")
    (abort,) = [c for c in _calls(log) if c["hook"] == "worker_abort"]
    assert abort["in_pid"] == abort["worker_pid"] == stuck


def test_pre_exec_runs_in_the_forked_child_before_the_usr2_exec(serve, tmp_path):
    server, log = _hooked(serve, tmp_path, "--pid", str(tmp_path / "app.pid"), "hello:app")
    master = server.master_pid
    server.send_signal(signal.SIGUSR2)
    new = wait_until(lambda: read_pid(tmp_path / "app.pid.2"), what="the new master")
    server.wait_for_log(r"Booting worker with pid", count=2, timeout=30)
    (pre,) = [c for c in _calls(log) if c["hook"] == "pre_exec"]
    # The hook sees the old master as `server`, from the child that becomes the new master.
    assert pre["master"] == master
    assert pre["in_pid"] == new
    os.kill(new, signal.SIGTERM)
    wait_until(lambda: not pid_alive(new), what="the new master to stop")


def test_hook_with_wrong_arity_is_a_config_error(run, tmp_path):
    conf = tmp_path / "bad.conf.py"
    conf.write_text("def on_starting():\n    pass\n")
    result = run("-c", str(conf), "--check-config", "hello:app")
    assert result.returncode == 1
    assert "on_starting" in result.stderr
    assert "arity" in result.stderr


FORK_APP = textwrap.dedent(
    """
    import os

    MARKS = []
    os.register_at_fork(
        before=lambda: MARKS.append(("before", os.getpid())),
        after_in_parent=lambda: MARKS.append(("parent", os.getpid())),
        after_in_child=lambda: MARKS.append(("child", os.getpid())),
    )

    def app(environ, start_response):
        body = repr(MARKS).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    """
)


def test_workers_are_forked_through_cpython(serve, tmp_path):
    # With --preload the app (and its register_at_fork callbacks) live in the master, so
    # the worker's copy shows whether CPython's fork protocol ran around our fork.
    (tmp_path / "forkapp.py").write_text(FORK_APP)
    server = serve("--preload", "forkapp:app", cwd=tmp_path)
    master = server.master_pid
    worker = server.worker_pids()[0]
    marks = eval(requests.get(server.url, timeout=10).text)
    assert ("before", master) in marks
    assert ("child", worker) in marks
    assert ("parent", master) not in marks  # the parent's marks stay in the parent


def test_client_disconnect_mid_stream_keeps_the_worker_serving(serve):
    # The client reads the first bytes of a long streamed body and resets the connection;
    # the worker must notice the failed write, close the app's iterator and serve on.
    import socket
    import struct

    server = serve("stream:app")
    for _ in range(3):
        sock = socket.create_connection(server.address, timeout=5)
        sock.sendall(b"GET /?n=20000 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(16).startswith(b"HTTP/1.1 200")
        # SO_LINGER 0: close with a RST while the server is still writing.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    resp = requests.get(server.url + "/?n=3", timeout=10)
    assert resp.text == "chunk-0\nchunk-1\nchunk-2\n"


@pytest.mark.ferrocorn_only
def test_term_to_the_whole_process_group_is_a_clean_stop(serve):
    # Gunicorn 27 reports such workers as "was sent SIGTERM!" (fails here).
    # systemd's default KillMode sends TERM to every process of the unit at once, so each
    # worker gets TERM twice (once from systemd, once from the master). The workers must
    # still exit cleanly, not be reported as killed by a signal. The second TERM has to land
    # while the worker's interpreter shuts down, so the test runs several stops to catch it.
    import os

    for _ in range(4):
        server = serve("-w", "4", "hello:app")
        server.wait_for_log(r"Booting worker with pid", count=4)
        assert requests.get(server.url, timeout=10).status_code == 200
        os.killpg(os.getpgid(server.proc.pid), signal.SIGTERM)
        assert server.wait_exit(20) == 0
        log = server.stderr_text()
        assert "was sent SIGTERM" not in log
        assert "exited with code" not in log
        assert log.count("Worker exiting") == 4


@pytest.mark.ferrocorn_only
def test_worker_timeout_logs_the_request_and_the_python_stacks(serve):
    # Gunicorn logs only "WORKER TIMEOUT (pid:N)"; ferrocorn's aborted worker also says which
    # request it was serving and where every thread's Python code was.
    import threading

    server = serve("--timeout", "2", "slow:app")
    (stuck,) = server.worker_pids()
    threading.Thread(
        target=lambda: requests.get(server.url + "/?s=20", timeout=30), daemon=True
    ).start()
    server.wait_for_log(r"\[CRITICAL\] WORKER TIMEOUT \(pid:%d\) \(request in flight for" % stuck,
                        timeout=15)
    (match,) = server.wait_for_log(
        r"\[ERROR\] Worker \(pid:%d\) aborted while serving GET /\?s=20 \(running [0-9.]+s\)" % stuck,
        timeout=15,
    )
    after = server.stderr_text()[match.end():]
    assert "Thread " in after and "MainThread" in after
    assert "slow.py" in after  # the app's frame where it was stuck


@pytest.mark.ferrocorn_only
def test_term_to_a_booting_worker_stops_only_that_worker(serve, tmp_path):
    # Gunicorn 27 swallows this TERM (the worker still has the master's handlers during
    # post_fork) and keeps the worker running.
    # A worker that gets TERM while still booting (here: a slow post_fork hook, like one that
    # opens database connections) must exit cleanly and be replaced. The signal must never
    # be taken as the master's own: a fresh worker shares nothing with the master's queue.
    import os

    conf = tmp_path / "slow_post_fork.py"
    # The hook's own sleep: it keeps the worker booting while the test signals it.
    conf.write_text("import time\n\ndef post_fork(server, worker):\n    time.sleep(1.5)\n")
    server = serve("-c", str(conf), "hello:app", ready=None)
    (match,) = server.wait_for_log(r"Booting worker with pid: (\d+)")
    booting = int(match.group(1))
    os.kill(booting, signal.SIGTERM)
    server.wait_for_log(r"Booting worker with pid: \d+", count=2, timeout=20)
    server.wait_ready()
    assert requests.get(server.url, timeout=10).status_code == 200
    assert "Handling signal: term" not in server.stderr_text()
    assert server.alive()
