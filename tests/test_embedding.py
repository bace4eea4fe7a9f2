"""The embedding API: a program that builds the server from Python (``app.base``
``BaseApplication`` / ``Application``, ``app.wsgiapp`` ``WSGIApplication`` / ``run()``,
``config.Config``) instead of running the server command.

Each test runs a script of tests/apps/embedding with the Python interpreter beside the
server command, so against Gunicorn (``FERROCORN_CMD=.../gunicorn``) the same scripts
import ``gunicorn`` and against ferrocorn they import ``ferrocorn``
(``EMBEDDING_SERVER``). The script's process is the master: its signals, workers and
logs are the server's.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (
    APPS_DIR,
    FROM_LOG,
    READY_TIMEOUT,
    Server,
    base_env,
    children,
    http_get,
    is_gunicorn,
    server_command,
    stop_servers,
    wait_until,
)
from loadgen import LoadGen

pytestmark = pytest.mark.timeout(60)

SCRIPTS = APPS_DIR / "embedding"
SETTINGS_TSV = Path("/work/shared/reference/gunicorn-settings.tsv")
SERVER_NAME = "gunicorn" if is_gunicorn() else "ferrocorn"
RELOAD_FAILED = "Reload failed, keeping the current configuration"
# The recorder's calls in the master up to serving: __init__ loads the settings, then run().
MASTER_START = ["load_default_config", "load_config", "constructed", "run"]


def script_python() -> str:
    """The interpreter of the environment the server command is installed in."""
    first = server_command()[0]
    located = Path(first) if os.sep in first else Path(shutil.which(first) or first)
    if located.name.startswith("python"):
        return str(located)
    for name in ("python", "python3"):
        candidate = located.parent / name
        if candidate.exists():
            return str(candidate)
    raise pytest.UsageError("no python beside the server command %s" % located)


def script_env(runtime_dir: Path, extra: dict | None = None) -> dict:
    env = {"EMBEDDING_SERVER": SERVER_NAME}
    env.update(extra or {})
    return base_env(runtime_dir, env)


class ScriptServer(Server):
    """A Server whose command is ``python SCRIPT ARGS``: an embedding script is its own
    server command, and its process is the master."""

    def __init__(self, script, args, tmp_path: Path, cwd, env):
        # Server.__init__ would prefix the server command; the rest of Server applies as is.
        self.argv = [script_python(), str(SCRIPTS / script)] + [str(a) for a in args]
        self.tmp_path = tmp_path
        self.cwd = Path(cwd)
        self.env = env
        self._address = FROM_LOG
        self.stdout_path = tmp_path / ("script-%d.stdout" % id(self))
        self.stderr_path = tmp_path / ("script-%d.stderr" % id(self))
        self._stdout = open(self.stdout_path, "wb")
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            self.argv, cwd=str(self.cwd), env=env, stdin=subprocess.DEVNULL,
            stdout=self._stdout, stderr=self._stderr, start_new_session=True,
        )
        self.pgid = self.proc.pid
        self.started_at = time.monotonic()


@pytest.fixture
def embed(request, tmp_path):
    """``embed(script, *args, env=None, cwd=None)`` -> a ScriptServer that answers HTTP at
    the first listener of its "Listening at:" line (its options bind port 0)."""
    servers = []

    def start(script, *args, env=None, cwd=None):
        runtime_dir = tmp_path / ("run%d" % len(servers))
        runtime_dir.mkdir()
        server = ScriptServer(script, args, tmp_path, cwd or SCRIPTS, script_env(runtime_dir, env))
        servers.append(server)
        server.wait_ready(timeout=READY_TIMEOUT)
        return server

    yield start
    stop_servers(request, servers)


def run_script(tmp_path: Path, script, *args, env=None, cwd=None, timeout=20.0):
    """Run a script to completion; its group is killed if it outlives `timeout`."""
    runtime_dir = tmp_path / "run-once"
    runtime_dir.mkdir(exist_ok=True)
    argv = [script_python(), str(SCRIPTS / script)] + [str(a) for a in args]
    proc = subprocess.Popen(
        argv, cwd=str(cwd or SCRIPTS), env=script_env(runtime_dir, env),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError("%r still running after %ss; stderr:\n%s"
                             % (argv, timeout, err.decode(errors="replace")[-4000:])) from None
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(argv, proc.returncode, out.decode(errors="replace"),
                                       err.decode(errors="replace"))


def read_json(path: Path):
    return json.loads(path.read_text())


def record_lines(path: Path) -> list:
    """The recorder's lines (dicts with event, pid and the call's own fields), in order."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def records(path: Path) -> list:
    """The recorder's calls, in the order they were made: (event, pid)."""
    return [(r["event"], r["pid"]) for r in record_lines(path)]


def worker_inits(path: Path, pids: set) -> list:
    """The post_worker_init lines of these workers."""
    return [r for r in record_lines(path) if r["event"] == "post_worker_init" and r["pid"] in pids]


def events_of(recorded: list, pid: int) -> list:
    return [event for event, p in recorded if p == pid]


def wait_for(produce, accept, what: str, timeout: float = 20.0):
    """Poll `produce()` until `accept` takes its value; return that value."""
    found = []

    def check():
        found[:] = [produce()]
        return accept(found[0])

    wait_until(check, timeout=timeout, what=what)
    return found[0]


def ready_workers(recorded: list) -> set:
    """Workers that ran post_worker_init: they have their app and serve."""
    return {p for e, p in recorded if e == "post_worker_init"}


def wait_workers_ready(rec: Path, count: int) -> list:
    """The recorded calls once `count` workers have run post_worker_init."""
    return wait_for(lambda: records(rec), lambda found: len(ready_workers(found)) >= count,
                    "%d workers through post_worker_init" % count)


def wait_children(pid: int, count: int, what: str, timeout: float = 15.0) -> set:
    return wait_for(lambda: children(pid), lambda kids: len(kids) == count,
                    "%s: %d children of %d" % (what, count, pid), timeout)


def write_options(path: Path, options) -> None:
    """Replace the recorder's options file in one step (a reload never sees half of it)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(options if isinstance(options, str) else json.dumps(options))
    os.replace(tmp, path)


def start_recorder(embed, tmp_path: Path, **options):
    opts = tmp_path / "options.json"
    rec = tmp_path / "calls.jsonl"
    write_options(opts, dict({"bind": "127.0.0.1:0"}, **options))
    server = embed("recorder.py", opts, rec)
    return server, opts, rec


# ---------------------------------------------------------------------------
# 1. Gunicorn's documented custom application, with only its import changed.


def test_standalone_example_serves_with_its_options(embed, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    server = embed("standalone.py", out)
    master = server.proc.pid
    assert server.master_pid == master  # the script's own process is the master
    server.wait_for_log(r"Booting worker with pid: \d+", count=2)
    workers = set(server.worker_pids())
    assert len(workers) == 2
    assert children(master) == workers

    wait_until((out / "when_ready.json").exists, what="the when_ready marker")
    assert read_json(out / "when_ready.json") == {
        "pid": master, "app_is_instance": True, "app_is_the_one": True, "workers": 2,
        "timeout": 17, "accesslog": str(out / "access.log"),
    }
    forked = wait_for(lambda: sorted(out.glob("post_fork.*.json")), lambda f: len(f) == 2,
                      "two post_fork markers")
    for marker in map(read_json, forked):
        assert marker["pid"] in workers and marker["worker_pid"] == marker["pid"], marker
        assert marker["server_app_is_instance"] and marker["worker_app_is_server_app"], marker
        assert marker["workers"] == 2, marker

    for i in range(4):
        resp = http_get(server.address, "/probe-%d" % i)
        assert resp.status == 200
        assert int(resp.header("x-worker-pid")) in workers
        assert resp.body == b"standalone pid %s\n" % resp.header("x-worker-pid").encode()
    access = out / "access.log"
    server.wait_for_log(r'"GET /probe-3 HTTP/1.1" 200 ',
                        text=lambda: access.read_text() if access.exists() else "")


# ---------------------------------------------------------------------------
# 2. What the server calls, where, in which order.


def test_call_order_loads_in_each_worker(embed, tmp_path):
    server, _, rec = start_recorder(embed, tmp_path, workers=2)
    master = server.proc.pid
    recorded = wait_workers_ready(rec, 2)
    workers = ready_workers(recorded)
    assert workers == children(master) == set(server.worker_pids())
    assert events_of(recorded, master) == MASTER_START
    for pid in workers:
        assert events_of(recorded, pid) == ["wsgi", "load", "post_worker_init"], recorded
    assert {p for _, p in recorded} == {master, *workers}, recorded
    # The master ran before any worker existed.
    assert recorded[:4] == [(e, master) for e in events_of(recorded, master)]


def _preloaded(embed, tmp_path):
    server, _, rec = start_recorder(embed, tmp_path, workers=2, preload_app=True)
    wait_workers_ready(rec, 2)
    assert http_get(server.address, "/").status == 200
    return server, rec


def test_preload_loads_once_in_the_master(embed, tmp_path):
    server, rec = _preloaded(embed, tmp_path)
    master = server.proc.pid
    recorded = records(rec)
    assert events_of(recorded, master) == MASTER_START + ["wsgi", "load"]
    assert [p for e, p in recorded if e == "load"] == [master], recorded
    assert len([e for e, _ in recorded if e == "post_worker_init"]) == 2, recorded


def test_preloaded_workers_still_ask_the_application(embed, tmp_path):
    # Gunicorn's worker always takes its app from application.wsgi(), which returns the
    # callable the master preloaded: a subclass that overrides wsgi() runs in every worker.
    server, rec = _preloaded(embed, tmp_path)
    recorded = records(rec)
    for pid in ready_workers(recorded):
        assert events_of(recorded, pid) == ["wsgi", "post_worker_init"], recorded


# ---------------------------------------------------------------------------
# 3. Bad settings stop the program before it binds, with Gunicorn's message.


@pytest.mark.parametrize("options, message", [
    ({"workers": "abc"}, "invalid literal for int() with base 0: 'abc'"),
    ({"timeout": -3}, "Value must be positive: -3"),
    ({"bind": 5}, "'int' object is not iterable"),
    ({"preload_app": "maybe"}, "Invalid boolean: maybe"),
    ({"post_fork": 5}, "Value is not callable: 5"),
], ids=["workers-abc", "timeout-negative", "bind-int", "bool", "hook"])
def test_bad_option_value_is_gunicorns_error(tmp_path, options, message):
    out = tmp_path / "out"
    out.mkdir()
    result = run_script(tmp_path, "standalone.py", out, json.dumps(options))
    assert (result.returncode, result.stderr) == (1, "\nError: %s\n" % message)
    assert not list(out.iterdir())  # no hook ran, no log was opened


def test_unknown_setting_name_is_gunicorns_error(tmp_path):
    opts = tmp_path / "options.json"
    write_options(opts, {"bind": "127.0.0.1:0", "no_such_setting": 1})
    result = run_script(tmp_path, "recorder.py", opts, tmp_path / "calls.jsonl")
    assert (result.returncode, result.stderr) == (
        1, "\nError: No configuration setting for: no_such_setting\n")
    assert [e for e, _ in records(tmp_path / "calls.jsonl")] == MASTER_START[:2]


# ---------------------------------------------------------------------------
# 4. Application: init()'s settings, the config file, GUNICORN_CMD_ARGS, the command line.


@pytest.mark.parametrize("config_from", ["cli", "env", "cwd"])
def test_application_sources_in_gunicorns_order(embed, tmp_path, config_from):
    out = tmp_path / "out"
    out.mkdir()
    workdir = tmp_path / "work"
    workdir.mkdir()
    conf = workdir / ("gunicorn.conf.py" if config_from == "cwd" else "settings.conf.py")
    conf.write_text("timeout = 201\ngraceful_timeout = 202\nkeepalive = 203\nbacklog = 204\n")
    env_args = "--timeout 301 --graceful-timeout 302"
    cli = [out, "-w", "2", "-b", "127.0.0.1:0", "--timeout", "401"]
    if config_from == "cli":
        cli += ["-c", conf]
    elif config_from == "env":
        env_args += " -c %s" % conf
    server = embed("cli_app.py", *cli, "extra", env={"GUNICORN_CMD_ARGS": env_args}, cwd=workdir)
    server.wait_for_log(r"Booting worker with pid: \d+", count=2)
    # Command line over environment over file over init(): each setting shows its source.
    wait_until((out / "ready.json").exists, what="the when_ready marker")
    assert read_json(out / "ready.json") == {
        "timeout": 401, "graceful_timeout": 302, "keepalive": 203, "backlog": 204,
        "max_requests": 104, "proc_name": "from-init", "workers": 2,
    }
    init = read_json(out / "init.json")
    assert init == {
        "args": ["extra"], "opts_args": ["extra"], "opts_workers": 2, "opts_timeout": 401,
        "opts_bind": ["127.0.0.1:0"], "opts_config": str(conf) if config_from == "cli" else None,
        "parser_is_argparse": True, "cfg_timeout_then": 30,
    }
    assert http_get(server.address, "/").status == 200


def test_application_check_and_print_config(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    checked = run_script(tmp_path, "cli_app.py", out, "--check-config", "-b", "127.0.0.1:0",
                         cwd=tmp_path)
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")
    printed = run_script(tmp_path, "cli_app.py", out, "--print-config", "-w", "3", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    shown = dict(line.split(" = ", 1) for line in printed.stdout.splitlines() if " = " in line)
    shown = {k.strip(): v for k, v in shown.items()}
    assert (shown["proc_name"], shown["timeout"], shown["workers"], shown["when_ready"]) == (
        "from-init", "101", "3", "<when_ready()>")


# ---------------------------------------------------------------------------
# 5. WSGIApplication / run(): the server command as a function.


def test_wsgiapp_run_serves_the_app_module(embed):
    server = embed("wsgi_run.py", "-b", "127.0.0.1:0", "-w", "2", "hello:app", cwd=APPS_DIR)
    assert server.master_pid == server.proc.pid
    resp = http_get(server.address, "/")
    assert (resp.status, resp.body) == (200, b"Hello, World!\n")
    server.wait_for_log(r"Booting worker with pid: \d+", count=2)


def test_wsgiapp_run_without_an_app_module(tmp_path):
    result = run_script(tmp_path, "wsgi_run.py", "-b", "127.0.0.1:0", cwd=APPS_DIR)
    assert (result.returncode, result.stderr) == (1, "\nError: No application module specified.\n")


# ---------------------------------------------------------------------------
# 6. The signals are the server's own.


def test_term_finishes_the_request_in_flight_then_exits_0(embed, tmp_path):
    server, _, _ = start_recorder(embed, tmp_path, workers=1, graceful_timeout=15)
    started = tmp_path / "started"
    result = {}

    def slow_request():
        result["resp"] = http_get(server.address, "/?s=1.5&started=%s" % started, timeout=20)

    client = threading.Thread(target=slow_request, daemon=True)
    client.start()
    wait_until(started.exists, what="the slow request to reach the app")
    server.send_signal(signal.SIGTERM)
    client.join(20)
    resp = result.get("resp")
    assert resp is not None and resp.status == 200, server.stderr_text()[-3000:]
    assert resp.body.startswith(b"slept 1.5 pid ")
    assert server.wait_exit(20) == 0
    server.wait_for_log(r"Handling signal: term")
    server.wait_for_log(r"Shutting down: Master")


def test_hup_reloads_the_application_settings_under_load(embed, tmp_path):
    server, opts, rec = start_recorder(embed, tmp_path, workers=1, graceful_timeout=10)
    master = server.proc.pid
    first = wait_children(master, 1, "the first worker")
    load = LoadGen(server.address, "/", threads=4, limit=40)
    try:
        load.wait_ok(20)
        before_hup = len(records(rec))
        write_options(opts, {"bind": "127.0.0.1:0", "workers": 3, "graceful_timeout": 10})
        load.mark("HUP")
        server.send_signal(signal.SIGHUP)
        new = wait_for(lambda: children(master), lambda kids: len(kids) == 3 and not kids & first,
                       "three new workers; " + load.report())
        settled = load.mark("settled")
        wait_until(lambda: load.worker_pids(since=settled) == new, timeout=15,
                   what="every new worker to answer; " + load.report())
        load.wait_ok(20)
    finally:
        load.stop()
    load.assert_lossless()

    after = records(rec)[before_hup:]
    assert events_of(after, master) == ["reload", "load_default_config", "load_config"]
    for pid in new:
        assert events_of(after, pid) == ["wsgi", "load", "post_worker_init"], after
    booted = worker_inits(rec, new)
    assert {(r["cfg_workers"], r["app_workers"]) for r in booted} == {(3, 3)}, booted

    server.send_signal(signal.SIGTTIN)
    more = wait_children(master, 4, "TTIN's extra worker")
    assert new < more
    server.send_signal(signal.SIGTTOU)
    wait_children(master, 3, "TTOU's stopped worker")
    assert http_get(server.address, "/").status == 200


def test_usr2_reexecutes_the_script(embed, tmp_path):
    server, _, rec = start_recorder(embed, tmp_path, workers=1)
    old = server.proc.pid
    wait_workers_ready(rec, 1)
    server.send_signal(signal.SIGUSR2)
    found = server.wait_for_log(r"Listening at: \S+ \((\d+)\)", count=2)
    new = int(found[1].group(1))
    assert new != old and new in children(old)
    # The new master is this script run again: the application is built anew there.
    recorded = wait_workers_ready(rec, 2)  # the old master's worker, then the new one's
    assert events_of(recorded, new) == MASTER_START
    server.send_signal(signal.SIGTERM)
    assert server.wait_exit(20) == 0
    server.wait_for_log(r"\[%d\] \[INFO\] Master has been promoted" % new)
    resp = http_get(server.address, "/")
    assert resp.status == 200 and int(resp.header("x-worker-pid")) in children(new)


@pytest.mark.ferrocorn_only
def test_failed_reload_keeps_serving_with_the_previous_settings(embed, tmp_path):
    # Gunicorn's master exits when the application's load_config() raises on HUP.
    server, opts, rec = start_recorder(embed, tmp_path, workers=2)
    master = server.proc.pid
    workers = wait_children(master, 2, "the first workers")
    write_options(opts, "{ this is not JSON")
    server.send_signal(signal.SIGHUP)
    server.wait_for_log(RELOAD_FAILED)
    assert "reload" in [e for e, _ in records(rec)]
    assert server.alive()
    assert children(master) == workers
    for _ in range(4):
        resp = http_get(server.address, "/")
        assert resp.status == 200 and int(resp.header("x-worker-pid")) in workers
    # A worker started now still gets the application (TTIN), and the settings come back
    # once the file is fixed.
    server.send_signal(signal.SIGTTIN)
    (extra,) = wait_children(master, 3, "TTIN's worker after the failed reload") - workers
    (booted,) = wait_for(lambda: worker_inits(rec, {extra}), len,
                         "TTIN's worker through post_worker_init")
    write_options(opts, {"bind": "127.0.0.1:0", "workers": 1})
    server.send_signal(signal.SIGHUP)
    wait_children(master, 1, "the repaired settings' single worker")
    assert http_get(server.address, "/").status == 200
    assert server.stderr_text().count(RELOAD_FAILED) == 1
    # The settings kept are the application's too: worker.app.cfg is not left half-loaded.
    assert (booted["cfg_workers"], booted["app_workers"]) == (2, 2), booted


# ---------------------------------------------------------------------------
# 8. The Config object from Python, without a server.


@pytest.fixture(scope="module")
def cfg_report(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("cfg")
    result = run_script(tmp_path, "cfg_checks.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def gunicorn_setting_names() -> set:
    with open(SETTINGS_TSV, newline="") as f:
        return {row["name"] for row in csv.DictReader(f, delimiter="\t")}


def test_config_has_every_gunicorn_setting(cfg_report):
    names = set(cfg_report["names"])
    expected = gunicorn_setting_names()
    assert len(expected) > 100
    assert expected - names == set()
    assert set(cfg_report["get_is_value"]) == names
    assert cfg_report["cli"]["workers"] == ["-w", "--workers"]
    assert cfg_report["cli"]["bind"] == ["-b", "--bind"]
    assert cfg_report["cli"]["when_ready"] is None


def test_config_values(cfg_report):
    assert cfg_report["defaults"] | {"proc_name": None, "sendfile": None} == {
        "workers": "1", "timeout": "30", "bind": "['127.0.0.1:8000']", "keepalive": "2",
        "backlog": "2048", "preload_app": "False", "worker_class": "'sync'", "raw_env": "[]",
        "config": "'./gunicorn.conf.py'", "proc_name": None, "sendfile": None,
    }
    assert cfg_report["attr_defaults"] | {"is_ssl": None} == {
        "workers": "1", "timeout": "30", "bind": "['127.0.0.1:8000']",
        "proc_name": "'gunicorn'", "sendfile": "True", "address": "[('127.0.0.1', 8000)]",
        "worker_class_str": "'sync'", "env": "{}", "is_ssl": None,
    }
    assert cfg_report["set"] == {
        "workers": "3", "timeout": "5", "bind": "['127.0.0.1:9']", "preload_app": "True",
        "raw_env": "['A=1', 'B=2']", "forwarded_allow_ips": "['10.0.0.1', '10.0.0.2']",
        "proc_name": "'named'", "keepalive": "7", "limit_request_fields": "50",
        "reuse_port": "False", "secure_scheme_headers": "{'X-PROTO': 'https'}",
    }
    assert cfg_report["set_callable_is_same"] is True
    assert cfg_report["setting_set"] == "12"
    assert cfg_report["after_set_address"] == "[('127.0.0.1', 9)]"
    assert cfg_report["after_set_env"] == "{'A': '1', 'B': '2'}"
    assert cfg_report["workers_after_bad"] == "3"  # a refused value leaves the old one


def test_setting_get_is_the_stored_value_not_the_derived_property(cfg_report):
    # Gunicorn's cfg.proc_name and cfg.sendfile are properties computed from the settings
    # of the same name; settings[name].get() is the value as set (None by default).
    assert cfg_report["defaults"]["proc_name"] == "None"
    assert cfg_report["defaults"]["sendfile"] == "None"


def test_config_errors_messages(cfg_report):
    messages = {k: v.split(": ", 1)[1] for k, v in cfg_report["bad"].items()}
    assert messages == {
        "getattr_unknown": "No configuration setting for: no_such_setting",
        "set_unknown": "No configuration setting for: no_such_setting",
        "assign": "Invalid access!",
        "workers_abc": "invalid literal for int() with base 0: 'abc'",
        "timeout_negative": "Value must be positive: -3",
        "bind_int": "'int' object is not iterable",
        "bool_maybe": "Invalid boolean: maybe",
        "hook_not_callable": "Value is not callable: 5",
    }
    classes = {k: v.split(":", 1)[0] for k, v in cfg_report["bad"].items()}
    for name in ("getattr_unknown", "set_unknown", "assign"):
        assert classes[name] == "AttributeError"
    for name in ("workers_abc", "timeout_negative", "bool_maybe"):
        assert classes[name] == "ValueError"


def test_config_parser(cfg_report):
    assert cfg_report["parser_is_argparse"] is True
    assert cfg_report["parsed"] == {
        "workers": "3", "bind": "['a:1', 'b:2']", "preload_app": "True",
        "args": "['app:app']", "timeout": "None",
    }
    assert cfg_report["probe_workers"] == 2
    assert cfg_report["init_workers"] == "2"
    assert cfg_report["init_args"] == ["mod:app"]


def test_init_opts_has_the_parsers_names(cfg_report):
    # Application.init() gets the parser's namespace: one attribute per command-line
    # setting plus `args`, none for the config-file-only settings.
    assert cfg_report["init_opts"] == cfg_report["parser_dests"]
