"""The `server`, `worker`, `req` and `resp` objects hooks receive: every attribute and method
Gunicorn's hooks commonly use, with Gunicorn's types and values.

The hooks describe what they see as JSON lines in the file named by HOOK_LOG; JSON turns
tuples into lists, so each hook also records the Python type names it saw. Running this file
with FERROCORN_CMD pointing at Gunicorn 27.0.1 checks the expectations themselves.
"""

import json
import os
import signal
import socket
import textwrap

import pytest

from conftest import APPS_DIR, RawResponse, http_get, pid_alive, raw_request, wait_until

OBJECTS_CONF = textwrap.dedent(
    """
    import json, os, signal, subprocess, sys, time, types

    def _rec(name, **fields):
        fields["hook"] = name
        fields["in_pid"] = os.getpid()
        with open(os.environ["HOOK_LOG"], "a") as f:
            f.write(json.dumps(fields) + "\\n")

    def _types(obj, names):
        return {n: type(getattr(obj, n)).__name__ for n in names}

    SERVER_METHODS = ("kill_worker", "kill_workers", "wakeup", "reload", "reexec")
    LOG_METHODS = ("info", "warning", "error", "debug", "exception", "critical", "access",
                   "reopen_files")

    def _worker(worker):
        tmp = worker.tmp
        return dict(
            pid=worker.pid, ppid=worker.ppid, age=worker.age, alive=worker.alive,
            booted=worker.booted, aborted=worker.aborted, nr=worker.nr,
            max_requests=worker.max_requests, maxsize=sys.maxsize, timeout=worker.timeout,
            types=_types(worker, ("pid", "ppid", "age", "alive", "booted", "aborted", "nr",
                                  "max_requests", "timeout", "sockets")),
            has_wsgi=hasattr(worker, "wsgi"),
            wsgi_name=getattr(getattr(worker, "wsgi", None), "__name__", None),
            sockets=[str(s) for s in worker.sockets],
            socket_names=[list(s.getsockname()) for s in worker.sockets],
            socket_fds=[type(s.fileno()).__name__ for s in worker.sockets],
            log_ok=all(callable(getattr(worker.log, m)) for m in LOG_METHODS),
            tmp_methods=callable(tmp.notify) and callable(tmp.last_update),
            last_update_type=type(tmp.last_update()).__name__,
            notify_callable=callable(worker.notify),
            cfg_timeout=worker.cfg.timeout,
        )

    def when_ready(server):
        ctx = server.START_CTX
        _rec("when_ready",
             pid=server.pid, num_workers=server.num_workers, proc_name=server.proc_name,
             master_name=server.master_name, timeout=server.timeout,
             worker_age=server.worker_age, reexec_pid=server.reexec_pid,
             master_pid=server.master_pid, systemd=server.systemd,
             workers_type=type(server.WORKERS).__name__, workers=len(server.WORKERS),
             listeners=[str(l) for l in server.LISTENERS],
             listener_names=[list(l.getsockname()) for l in server.LISTENERS],
             listener_fds=[type(l.fileno()).__name__ for l in server.LISTENERS],
             listeners_type=type(server.LISTENERS).__name__,
             address=[list(a) for a in server.address],
             address_types=[type(server.address).__name__]
                           + [type(a).__name__ for a in server.address],
             pidfile=server.pidfile and server.pidfile.fname,
             pidfile_valid=server.pidfile and server.pidfile.validate(),
             ctx_keys=sorted(str(k) for k in ctx), ctx_args=ctx["args"], ctx_cwd=ctx["cwd"],
             ctx_exe=ctx[0], executable=sys.executable, argv=sys.argv,
             cfg_workers=server.cfg.workers,
             app_shares_cfg=server.app.cfg is server.cfg,
             app_wsgi_callable=callable(server.app.wsgi),
             methods=[m for m in SERVER_METHODS if callable(getattr(server, m))],
             log_methods=[m for m in LOG_METHODS if callable(getattr(server.log, m))],
             types=_types(server, ("pid", "num_workers", "proc_name", "master_name",
                                   "timeout", "worker_age", "reexec_pid", "master_pid",
                                   "systemd", "START_CTX")))
        server.log.info("when_ready log %s", "info-marker")
        server.log.warning("when_ready log %s", "warning-marker")
        server.log.reopen_files()

    def pre_fork(server, worker):
        _rec("pre_fork", **_worker(worker))

    def post_fork(server, worker):
        info = _worker(worker)
        info["notify"] = worker.notify()
        info["tmp_notify"] = worker.tmp.notify()
        # Gunicorn's heartbeat stamps time.monotonic().
        info["last_update_age"] = time.monotonic() - worker.tmp.last_update()
        _rec("post_fork", **info)

    def post_worker_init(worker):
        _rec("post_worker_init", **_worker(worker))

    def pre_request(worker, req):
        body = req.body.read(3) if req.path == "/body" else None
        if req.path == "/force":
            req.force_close()
        _rec("pre_request",
             method=req.method, uri=req.uri, path=req.path, query=req.query,
             fragment=req.fragment, version=list(req.version), headers=req.headers,
             trailers=req.trailers, scheme=req.scheme, peer_addr=req.peer_addr,
             remote_addr=req.remote_addr, req_number=req.req_number,
             proxy_protocol_info=req.proxy_protocol_info, must_close=req.must_close,
             should_close=req.should_close(), body_read=callable(req.body.read),
             body_start=body.decode() if body is not None else None,
             limits=[req.limit_request_line, req.limit_request_fields,
                     req.limit_request_field_size],
             header_types=sorted({type(h).__name__ for h in req.headers}),
             types=_types(req, ("version", "headers", "trailers", "peer_addr", "remote_addr",
                                "req_number", "must_close")))

    def post_request(worker, req, environ, resp):
        _rec("post_request", path=req.path, worker=_worker(worker),
             status=resp.status, status_code=resp.status_code, headers=resp.headers,
             sent=resp.sent, response_length=resp.response_length, chunked=resp.chunked,
             headers_sent=resp.headers_sent, must_close=resp.must_close,
             should_close=resp.should_close(), req_should_close=req.should_close(),
             types=_types(resp, ("status", "status_code", "headers", "sent", "chunked",
                                 "headers_sent", "must_close")))

    def worker_int(worker):
        _rec("worker_int", pid=worker.pid, alive=worker.alive)

    def worker_exit(server, worker):
        _rec("worker_exit", pid=worker.pid, alive=worker.alive)

    def nworkers_changed(server, new_value, old_value):
        if old_value is None or new_value <= old_value:
            return
        action = os.environ.get("ON_TTIN")
        if action == "kill":
            victim = min(server.WORKERS)
            # A pid that surely is not running: a child that has been reaped.
            gone = subprocess.Popen(["true"])
            gone.wait()
            server.WORKERS[gone.pid] = types.SimpleNamespace(
                pid=gone.pid, alive=False, tmp=types.SimpleNamespace(close=lambda: None))
            missing = server.kill_worker(gone.pid, signal.SIGTERM)
            _rec("kill", victim=victim, missing=missing,
                 missing_dropped=gone.pid not in server.WORKERS,
                 killed=server.kill_worker(victim, signal.SIGTERM),
                 probe=server.kill_workers(0), wakeup=server.wakeup())
        elif action == "reload":
            _rec("reload", result=server.reload())
        elif action == "reexec":
            _rec("reexec", result=server.reexec())

    def on_reload(server):
        _rec("on_reload", pid=server.pid)

    def pre_exec(server):
        _rec("pre_exec", pid=server.pid)
    """
)


def _calls(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _first(log_path, hook, **match):
    for call in _calls(log_path):
        if call["hook"] == hook and all(call.get(k) == v for k, v in match.items()):
            return call
    return None


def _wait_call(log_path, hook, timeout=20.0, **match):
    return wait_until(lambda: _first(log_path, hook, **match), timeout, "%s hook" % hook)


def _starter(serve, tmp_path, bind):
    def start(*args, env=None):
        conf = tmp_path / "objects.conf.py"
        conf.write_text(OBJECTS_CONF)
        log = tmp_path / "hooks.jsonl"
        extra = {"HOOK_LOG": str(log)}
        extra.update(env or {})
        server = serve("-c", str(conf), *args, env=extra, bind=bind)
        return server, log

    return start


@pytest.fixture
def objects_server(serve, tmp_path):
    """Factory: a server on TCP with the recording hooks, and the path of their log."""
    return _starter(serve, tmp_path, "tcp")


@pytest.fixture
def objects_server_unix(serve, tmp_path):
    return _starter(serve, tmp_path, "unix")


def test_server_attributes_and_log(objects_server, tmp_path):
    pidfile = tmp_path / "master.pid"
    server, log = objects_server("-w", "2", "--pid", str(pidfile), "hello:app")
    rec = _wait_call(log, "when_ready")
    port = server.port

    assert rec["pid"] == server.master_pid == rec["in_pid"]
    assert rec["types"] == {
        "pid": "int", "num_workers": "int", "proc_name": "str", "master_name": "str",
        "timeout": "int", "worker_age": "int", "reexec_pid": "int", "master_pid": "int",
        "systemd": "bool", "START_CTX": "dict",
    }
    assert (rec["num_workers"], rec["cfg_workers"]) == (2, 2)
    assert rec["proc_name"] == "hello:app"
    assert rec["master_name"] == "Master"
    assert rec["timeout"] == 30
    # when_ready runs before the first worker is spawned.
    assert (rec["worker_age"], rec["workers"], rec["workers_type"]) == (0, 0, "dict")
    assert (rec["reexec_pid"], rec["master_pid"], rec["systemd"]) == (0, 0, False)

    assert rec["listeners_type"] == "list"
    assert rec["listeners"] == ["http://127.0.0.1:%d" % port]
    assert rec["listener_names"] == [["127.0.0.1", port]]
    assert rec["listener_fds"] == ["int"]
    # server.address is the configured bind (the fixture's -b 127.0.0.1:0), while the
    # listeners carry the port the socket got.
    assert rec["address"] == [["127.0.0.1", 0]]
    assert rec["address_types"] == ["list", "tuple"]

    assert rec["pidfile"] == str(pidfile)
    assert rec["pidfile_valid"] == server.master_pid

    assert rec["ctx_keys"] == ["0", "args", "cwd"]
    assert rec["ctx_exe"] == rec["executable"]
    assert rec["ctx_args"] == [rec["executable"]] + rec["argv"]
    assert rec["ctx_cwd"] == str(APPS_DIR)

    assert rec["app_shares_cfg"] is True
    assert rec["app_wsgi_callable"] is True
    assert rec["methods"] == ["kill_worker", "kill_workers", "wakeup", "reload", "reexec"]
    assert rec["log_methods"] == ["info", "warning", "error", "debug", "exception",
                                  "critical", "access", "reopen_files"]

    # server.log writes to the error log, with Gunicorn's line format and levels.
    levels = {msg: level for _, level, msg in server.log_lines()}
    assert levels.get("when_ready log info-marker") == "INFO"
    assert levels.get("when_ready log warning-marker") == "WARNING"
    pids = [pid for pid, _, msg in server.log_lines() if msg.endswith("info-marker")]
    assert pids == [server.master_pid]


def test_worker_attributes(objects_server):
    server, log = objects_server("hello:app")
    http_get(server.address, "/after-boot")
    master = server.master_pid
    worker_pid = server.worker_pids()[0]
    port = server.port

    pre = _wait_call(log, "pre_fork")
    assert pre["in_pid"] == master
    assert pre["pid"] == "[booting]"
    assert pre["types"]["pid"] == "str"
    post = _wait_call(log, "post_fork")
    init = _wait_call(log, "post_worker_init")
    req = _wait_call(log, "post_request", path="/after-boot")["worker"]
    for rec in (pre, post, init, req):
        assert rec["ppid"] == master
        assert rec["age"] == 1
        assert rec["alive"] is True
        assert rec["aborted"] is False
        assert rec["max_requests"] == rec["maxsize"]
        assert rec["timeout"] == 15.0 == rec["cfg_timeout"] / 2
        assert rec["sockets"] == ["http://127.0.0.1:%d" % port]
        assert rec["socket_names"] == [["127.0.0.1", port]]
        assert rec["socket_fds"] == ["int"]
        assert rec["log_ok"] and rec["tmp_methods"] and rec["notify_callable"]
        assert rec["last_update_type"] == "float"
        assert {k: v for k, v in rec["types"].items() if k != "pid"} == {
            "ppid": "int", "age": "int", "alive": "bool", "booted": "bool",
            "aborted": "bool", "nr": "int", "max_requests": "int", "timeout": "float",
            "sockets": "list",
        }
    for rec in (post, init, req):
        assert rec["pid"] == worker_pid
        assert rec["types"]["pid"] == "int"

    # wsgi exists once the app is loaded; booted turns True after post_worker_init.
    assert (pre["has_wsgi"], post["has_wsgi"]) == (False, False)
    assert (init["has_wsgi"], init["wsgi_name"]) == (True, "app")
    assert (pre["booted"], post["booted"], init["booted"], req["booted"]) == (
        False, False, False, True)
    assert (pre["nr"], init["nr"]) == (0, 0)
    assert req["nr"] >= 1

    # notify() returns None and makes last_update() the time of that beat.
    assert post["notify"] is None and post["tmp_notify"] is None
    assert -1 < post["last_update_age"] < 5


def test_worker_max_requests_is_the_configured_limit(objects_server):
    server, log = objects_server("--max-requests", "50", "hello:app")
    assert _wait_call(log, "pre_fork")["max_requests"] == 50


def test_worker_alive_turns_false_when_told_to_stop(objects_server):
    server, log = objects_server("-w", "2", "hello:app")
    first, second = wait_until(lambda: len(server.worker_pids()) >= 2 and server.worker_pids())[:2]
    _wait_call(log, "post_worker_init", pid=first)
    _wait_call(log, "post_worker_init", pid=second)

    # QUIT: worker_int runs after the worker marked itself not alive.
    os.kill(first, signal.SIGQUIT)
    assert _wait_call(log, "worker_int", pid=first)["alive"] is False
    # TERM: the graceful stop; worker_exit sees alive False too.
    os.kill(second, signal.SIGTERM)
    assert _wait_call(log, "worker_exit", pid=second)["alive"] is False


def test_request_attributes(objects_server):
    server, log = objects_server("hello:app")
    http_get(server.address, "/p/a?q=1#frag", headers={"X-Foo": "bar"})
    rec = _wait_call(log, "pre_request", path="/p/a")

    assert (rec["method"], rec["uri"], rec["path"], rec["query"]) == (
        "GET", "/p/a?q=1#frag", "/p/a", "q=1")
    assert rec["fragment"] == "frag"
    assert rec["version"] == [1, 1]
    assert rec["types"] == {
        "version": "tuple", "headers": "list", "trailers": "list", "peer_addr": "tuple",
        "remote_addr": "tuple", "req_number": "int", "must_close": "bool",
    }
    assert rec["header_types"] == ["tuple"]
    assert ["X-FOO", "bar"] in rec["headers"]
    assert ["HOST", "127.0.0.1"] in rec["headers"]
    assert rec["trailers"] == []
    assert rec["scheme"] == "http"
    assert rec["peer_addr"][0] == "127.0.0.1" and isinstance(rec["peer_addr"][1], int)
    assert rec["remote_addr"] == rec["peer_addr"]
    assert rec["req_number"] == 1
    assert rec["proxy_protocol_info"] is None
    assert rec["must_close"] is False
    assert rec["should_close"] is False
    assert rec["body_read"] is True
    assert rec["limits"] == [4094, 100, 8190]


def test_request_should_close_follows_connection_and_version(objects_server):
    server, log = objects_server("hello:app")
    http_get(server.address, "/close", headers={"Connection": "close"})
    http_get(server.address, "/old", version="HTTP/1.0")
    close = _wait_call(log, "pre_request", path="/close")
    old = _wait_call(log, "pre_request", path="/old")
    assert (close["must_close"], close["should_close"]) == (False, True)
    assert (old["must_close"], old["should_close"], old["version"]) == (False, True, [1, 0])


def test_force_close_from_pre_request_closes_the_connection(objects_server):
    server, log = objects_server("hello:app")
    rec_before = http_get(server.address, "/force")
    assert rec_before.status == 200
    rec = _wait_call(log, "pre_request", path="/force")
    assert (rec["must_close"], rec["should_close"]) == (True, True)
    post = _wait_call(log, "post_request", path="/force")
    assert (post["req_should_close"], post["should_close"]) == (True, True)


def test_request_limits_are_normalised_like_gunicorn(objects_server):
    server, log = objects_server(
        "--limit-request-line", "0", "--limit-request-fields", "40000",
        "--limit-request-field_size", "0", "hello:app")
    http_get(server.address, "/limits")
    assert _wait_call(log, "pre_request", path="/limits")["limits"] == [0, 32768, 8190]


def test_req_body_is_the_stream_the_app_reads(objects_server):
    server, log = objects_server("echo:app")
    resp = http_get(server.address, "/body", method="POST", body=b"abcdefgh")
    rec = _wait_call(log, "pre_request", path="/body")
    assert rec["body_start"] == "abc"
    # The hook consumed the first three bytes; the app reads the rest.
    assert resp.body == b"defgh"


def test_response_attributes(objects_server):
    server, log = objects_server("hello:app")
    http_get(server.address, "/resp")
    rec = _wait_call(log, "post_request", path="/resp")
    assert rec["types"] == {
        "status": "str", "status_code": "int", "headers": "list", "sent": "int",
        "chunked": "bool", "headers_sent": "bool", "must_close": "bool",
    }
    assert (rec["status"], rec["status_code"]) == ("200 OK", 200)
    assert ["Content-Type", "text/plain"] in rec["headers"]
    assert ["Content-Length", "14"] in rec["headers"]
    assert rec["sent"] == 14
    assert rec["response_length"] == 14
    assert rec["chunked"] is False
    assert rec["headers_sent"] is True
    assert isinstance(rec["should_close"], bool)


def test_response_should_close_on_a_connection_close_request(objects_server):
    server, log = objects_server("hello:app")
    http_get(server.address, "/bye", headers={"Connection": "close"})
    rec = _wait_call(log, "post_request", path="/bye")
    assert rec["should_close"] is True


def test_kill_worker_from_a_hook_kills_it_and_the_master_replaces_it(objects_server):
    server, log = objects_server("hello:app", env={"ON_TTIN": "kill"})
    first = server.worker_pids()[0]
    server.send_signal(signal.SIGTTIN)
    rec = _wait_call(log, "kill")
    assert rec["in_pid"] == server.master_pid
    assert rec["victim"] == first
    # A vanished pid is dropped from WORKERS without an error, as Gunicorn does.
    assert rec["missing"] is None and rec["missing_dropped"] is True
    assert (rec["killed"], rec["probe"], rec["wakeup"]) == (None, None, None)
    wait_until(lambda: not pid_alive(first), 15, "the killed worker to exit")
    # TTIN asked for 2 workers, and the killed one is replaced: 3 booted, 2 running.
    wait_until(lambda: len(server.worker_pids()) >= 3, 15, "a replacement worker")
    running = [p for p in server.worker_pids() if pid_alive(p)]
    assert first not in running
    assert len(running) == 2
    assert http_get(server.address, "/").status == 200


def test_reload_from_a_hook_reloads(objects_server):
    server, log = objects_server("hello:app", env={"ON_TTIN": "reload"})
    server.send_signal(signal.SIGTTIN)
    rec = _wait_call(log, "reload")
    assert rec["result"] is None
    assert _wait_call(log, "on_reload")["in_pid"] == server.master_pid


def test_reexec_from_a_hook_starts_a_new_master(objects_server):
    server, log = objects_server("hello:app", env={"ON_TTIN": "reexec"})
    server.send_signal(signal.SIGTTIN)
    assert _wait_call(log, "reexec")["result"] is None
    pre_exec = _wait_call(log, "pre_exec")
    # pre_exec runs in a child of the master, which then execs the new master.
    assert pre_exec["in_pid"] != server.master_pid
    assert pre_exec["pid"] == server.master_pid
    wait_until(lambda: len(_calls_named(log, "when_ready")) >= 2, 20, "the new master")


def _calls_named(path, hook):
    return [c for c in _calls(path) if c["hook"] == hook]


def test_proxy_protocol_info_is_what_the_proxy_header_said(objects_server):
    server, log = objects_server("--proxy-protocol", "v1", "hello:app")
    raw_request(
        server.address,
        b"PROXY TCP4 192.0.2.7 198.51.100.9 4711 8080\r\n"
        b"GET /proxied HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    rec = _wait_call(log, "pre_request", path="/proxied")
    assert rec["proxy_protocol_info"] == {
        "proxy_protocol": "TCP4", "client_addr": "192.0.2.7", "client_port": 4711,
        "proxy_addr": "198.51.100.9", "proxy_port": 8080,
    }
    # peer_addr and remote_addr stay the socket peer.
    assert rec["peer_addr"][0] == "127.0.0.1"
    assert rec["remote_addr"] == rec["peer_addr"]


def test_request_peer_on_a_unix_socket(objects_server_unix):
    server, log = objects_server_unix("hello:app")
    http_get(server.address, "/unix", headers={"Connection": "close"})
    rec = _wait_call(log, "pre_request", path="/unix")
    assert (rec["peer_addr"], rec["remote_addr"]) == ("", "")


# Each request's connection (the client's port), path and req.req_number, one line each.
REQ_NUMBER_CONF = textwrap.dedent(
    """
    import os

    def pre_request(worker, req):
        with open(os.environ["REQ_LOG"], "a") as f:
            f.write("%d %s %d\\n" % (req.peer_addr[1], req.path, req.req_number))
    """
)


def _keepalive_exchange(sock, path):
    """One request on a kept-alive connection; the response is read exactly (by its
    Content-Length), so the connection stays usable."""
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "server closed the connection after %r" % data
        data += chunk
    head_len = data.index(b"\r\n\r\n") + 4
    length = int(RawResponse(data[:head_len]).header("content-length"))
    while len(data) < head_len + length:
        chunk = sock.recv(65536)
        assert chunk, "server closed the connection mid-body: %r" % data
        data += chunk
    resp = RawResponse(data)
    assert resp.status == 200, data
    assert resp.header("connection", "").lower() != "close", data
    return resp


@pytest.mark.parametrize("threads", ["1", "2"])
def test_req_number_counts_per_connection_with_alternating_keepalive_clients(
        serve, tmp_path, threads):
    # req.req_number is the request's position on its own keep-alive connection, from 1:
    # requests alternating between two connections do not share (or reset) one count.
    conf = tmp_path / "req_number.conf.py"
    conf.write_text(REQ_NUMBER_CONF)
    log = tmp_path / "req_number.log"
    server = serve("-c", str(conf), "-k", "gthread", "--threads", threads, "-w", "1",
                   "hello:app", env={"REQ_LOG": str(log)})
    with socket.create_connection(server.address, timeout=10) as a, \
            socket.create_connection(server.address, timeout=10) as b:
        ports = {"a": a.getsockname()[1], "b": b.getsockname()[1]}
        for n in (1, 2, 3):
            for name, sock in (("a", a), ("b", b)):
                _keepalive_exchange(sock, "/%s%d" % (name, n))

        def ours():
            lines = log.read_text().splitlines() if log.exists() else []
            seen = [line.split() for line in lines]
            seen = [(int(port), path, int(number)) for port, path, number in seen
                    if path[1:2] in ("a", "b")]
            return seen if len(seen) >= 6 else None

        seen = wait_until(ours, timeout=10, what="six pre_request records")
    assert len(seen) == 6, seen
    for name in ("a", "b"):
        on_connection = [(path, number) for port, path, number in seen
                         if port == ports[name]]
        expected = [("/%s%d" % (name, n), n) for n in (1, 2, 3)]
        assert on_connection == expected, "connection %s (client port %d): %r; all: %r" % (
            name, ports[name], on_connection, seen)
