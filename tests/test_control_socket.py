"""The control socket (`control_socket`, Gunicorn 27's `gunicornc` protocol), over the raw
wire format: every command and reply shape, every error reply, framing edge cases, the
commands' effects on the real server, the socket file's mode and path, and what happens
when something is already at the path."""

import os
import signal
import socket
import stat
import struct

import pytest

from conftest import APPS_DIR, children, is_gunicorn, pid_alive, socket_inodes, wait_until
from control_support import ControlClient, answers, call, data, frame, poll, wait_answering

HELP_COMMANDS = [
    "show all", "show workers", "show dirty", "show config", "show stats", "show listeners",
    "worker add [N]", "worker remove [N]", "worker kill <PID>", "dirty add [N]",
    "dirty remove [N]", "reload", "reopen", "shutdown [graceful|quick]", "help",
]
CONFIG_KEYS = [
    "bind", "workers", "worker_class", "threads", "timeout", "graceful_timeout", "keepalive",
    "max_requests", "max_requests_jitter", "worker_connections", "preload_app", "daemon",
    "pidfile", "proc_name", "reload", "dirty_workers", "dirty_apps", "dirty_timeout",
    "control_socket", "control_socket_disable",
]


def start(serve, tmp_path, *args, workers=1, name="x.ctl"):
    path = tmp_path / name
    server = serve("-w", str(workers), "--control-socket", str(path), *args, "hello:app")
    wait_answering(path)
    return server, path


def worker_pids(path):
    """The workers `show workers` lists ([] when the request failed, see `poll`)."""
    workers = poll(path, "show workers")
    return sorted(w["pid"] for w in workers["workers"]) if workers else []


def stat_of(path, key):
    stats = poll(path, "show stats")
    return stats[key] if stats else None


def live_children(server):
    return {p for p in children(server.master_pid) if pid_alive(p)}


def test_show_commands_reply_shapes(serve, tmp_path):
    server, path = start(serve, tmp_path, workers=2)
    wait_until(lambda: len(live_children(server)) == 2, what="two workers")

    workers = data(path, "show workers")
    assert workers["count"] == 2
    assert [sorted(w) for w in workers["workers"]] == [
        ["aborted", "age", "booted", "last_heartbeat", "pid"]] * 2
    ages = [w["age"] for w in workers["workers"]]
    assert ages == sorted(ages)
    assert {w["pid"] for w in workers["workers"]} == live_children(server)

    stats = data(path, "show stats")
    assert list(stats) == ["uptime", "pid", "workers_current", "workers_target",
                           "workers_spawned", "workers_killed", "reloads", "dirty_arbiter_pid"]
    assert stats["pid"] == server.master_pid
    assert (stats["workers_current"], stats["workers_target"], stats["workers_spawned"]) == (2, 2, 2)
    assert (stats["reloads"], stats["dirty_arbiter_pid"]) == (0, None)
    assert stats["uptime"] >= 0

    config = data(path, "show config")
    assert list(config) == CONFIG_KEYS
    assert config["workers"] == 2
    assert config["bind"] == ["127.0.0.1:0"]
    assert config["control_socket"] == str(path)
    assert config["control_socket_disable"] is False
    assert (config["pidfile"], config["dirty_workers"], config["dirty_apps"]) == (None, 0, [])
    assert isinstance(config["worker_class"], str)

    listeners = data(path, "show listeners")
    assert listeners["count"] == 1
    (lst,) = listeners["listeners"]
    assert lst["address"] == server.url
    assert lst["type"] == "tcp"
    assert isinstance(lst["fd"], int)

    assert data(path, "show dirty") == {"enabled": False, "pid": None, "workers": [], "apps": []}

    everything = data(path, "show all")
    assert list(everything) == ["arbiter", "web_workers", "web_worker_count", "dirty_arbiter",
                                "dirty_workers", "dirty_worker_count"]
    assert everything["arbiter"] == {"pid": server.master_pid, "type": "arbiter", "role": "master"}
    assert everything["web_worker_count"] == 2
    assert [sorted(w) for w in everything["web_workers"]] == [
        ["age", "booted", "last_heartbeat", "pid", "type"]] * 2
    assert {w["type"] for w in everything["web_workers"]} == {"web"}
    assert (everything["dirty_arbiter"], everything["dirty_workers"],
            everything["dirty_worker_count"]) == (None, [], 0)

    commands = data(path, "help")["commands"]
    assert list(commands) == HELP_COMMANDS
    assert commands["reload"] == "Graceful reload (HUP)"
    assert commands["shutdown [graceful|quick]"] == "Shutdown server (TERM/INT)"

    # Commands and targets are case-insensitive; args are appended to the command.
    assert data(path, "SHOW", ["Stats"])["pid"] == server.master_pid
    # No dirty arbiter: the dirty commands say so in an ok reply.
    assert data(path, "dirty add") == {"success": False, "error": "Dirty arbiter not running"}
    assert data(path, "dirty remove 2") == {"success": False, "error": "Dirty arbiter not running"}
    assert data(path, "worker kill 1") == {"success": False, "error": "Worker 1 not found"}


ERRORS = [
    ("", None, "Empty command"),
    ("   ", None, "Empty command"),
    ("bogus", None, "Invalid argument: Unknown command: bogus"),
    ("show", None, "Invalid argument: Missing show target (all|workers|dirty|config|stats|listeners)"),
    ("show bogus", None, "Invalid argument: Unknown show target: bogus"),
    ("worker", None, "Invalid argument: Missing worker action (add|remove|kill)"),
    ("worker bogus", None, "Invalid argument: Unknown worker action: bogus"),
    ("worker kill", None, "Invalid argument: Missing PID for worker kill"),
    ("worker add abc", None, "Invalid argument: invalid literal for int() with base 10: 'abc'"),
    ("worker remove", ["x'y"], "Invalid argument: invalid literal for int() with base 10: \"x'y\""),
    ("worker add", [2.5], "Invalid argument: invalid literal for int() with base 10: '2.5'"),
    ("worker kill", [True], "Invalid argument: invalid literal for int() with base 10: 'True'"),
    ("worker add", 5, "Command failed: 'int' object is not iterable"),
    ("dirty", None, "Invalid argument: Missing dirty action (add|remove)"),
    ("dirty bogus", None, "Invalid argument: Unknown dirty action: bogus"),
    ("dirty add x", None, "Invalid argument: invalid literal for int() with base 10: 'x'"),
    ("show 'workers", None, "Invalid argument: No closing quotation"),
    ("show workers\\", None, "Invalid argument: No escaped character"),
]


def test_error_replies_and_ids_on_one_connection(serve, tmp_path):
    _, path = start(serve, tmp_path)
    with ControlClient(path) as c:
        for n, (command, args, error) in enumerate(ERRORS, 100):
            assert c.call(command, args, request_id=n) == {
                "id": n, "status": "error", "error": error}, command
        # The id comes back as sent, whatever it is; a missing one comes back as 0.
        c.send({"command": "help"})
        assert c.read_reply()["id"] == 0
        c.send({"id": "abc", "command": "bogus"})
        assert c.read_reply() == {"id": "abc", "status": "error",
                                  "error": "Invalid argument: Unknown command: bogus"}
        c.send({"id": None, "command": "show stats"})
        assert c.read_reply()["id"] is None
        # Several requests sent at once are answered in order.
        c.send_raw(b"".join(
            frame(('{"id": %d, "command": "show stats"}' % i).encode()) for i in range(5)))
        assert [c.read_reply()["id"] for _ in range(5)] == list(range(5))


@pytest.mark.parametrize("payload", [
    frame(b"{not json"),
    frame(b"\xff\xfe{}"),
    frame(b"[1, 2]"),
    frame(b'{"command": 7}'),
    struct.pack(">I", 16 * 1024 * 1024 + 1),
    b"\x00\x00",  # then EOF
])
def test_bad_frames_drop_the_connection_and_the_server_keeps_serving(serve, tmp_path, payload):
    _, path = start(serve, tmp_path)
    with ControlClient(path) as c:
        assert c.call("help")["status"] == "ok"
        c.send_raw(payload)
        if payload == b"\x00\x00":
            c.sock.shutdown(socket.SHUT_WR)
        assert c.closed_by_server()
    assert data(path, "show stats")["workers_current"] == 1


def test_a_frame_may_arrive_in_pieces_and_up_to_the_limit(serve, tmp_path):
    _, path = start(serve, tmp_path)
    body = b'{"id": 9, "command": "show stats", "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    with ControlClient(path) as c:
        raw = frame(body)
        for i in range(0, len(raw), 700_000):
            c.send_raw(raw[i:i + 700_000])
        reply = c.read_reply()
        assert (reply["id"], reply["status"]) == (9, "ok")


def test_worker_add_and_remove_change_the_real_worker_count(serve, tmp_path):
    conf = tmp_path / "conf.py"
    calls = tmp_path / "calls.txt"
    conf.write_text(
        "import os\n"
        "def nworkers_changed(server, new, old):\n"
        "    with open(%r, 'a') as f:\n"
        "        f.write('%%s %%s %%s\\n' %% (os.getpid(), new, old))\n" % str(calls)
    )
    server, path = start(serve, tmp_path, "-c", str(conf))
    assert data(path, "worker add 2") == {"added": 2, "previous": 1, "total": 3}
    wait_until(lambda: len(live_children(server)) == 3, what="three workers")
    wait_until(lambda: stat_of(path, "workers_current") == 3, what="3 in show stats")
    assert data(path, "show stats")["workers_target"] == 3
    assert data(path, "worker remove", [5]) == {"removed": 2, "previous": 3, "total": 1}
    wait_until(lambda: len(live_children(server)) == 1, what="one worker left")
    # Never below one worker; a count below 1 counts as 1.
    assert data(path, "worker remove") == {"removed": 0, "previous": 1, "total": 1}
    assert data(path, "worker add -4") == {"added": 1, "previous": 1, "total": 2}
    wait_until(lambda: len(live_children(server)) == 2, what="two workers")
    lines = calls.read_text().split()
    # The hook ran in the master (pid) for each change, with (new, old).
    assert [tuple(lines[i:i + 3]) for i in range(3, len(lines), 3)] == [
        (str(server.master_pid), "3", "1"), (str(server.master_pid), "1", "3"),
        (str(server.master_pid), "1", "1"), (str(server.master_pid), "2", "1")]


def test_worker_kill_terminates_that_worker_and_it_is_replaced(serve, tmp_path):
    server, path = start(serve, tmp_path, workers=2)
    wait_until(lambda: len(worker_pids(path)) == 2, what="two workers")
    victim, survivor = worker_pids(path)
    assert data(path, "worker kill %d" % victim) == {"success": True, "killed": victim}
    wait_until(lambda: not pid_alive(victim), what="the killed worker to exit")
    wait_until(lambda: len(worker_pids(path)) == 2 and victim not in worker_pids(path),
               what="a replacement")
    assert survivor in worker_pids(path)
    server.wait_for_log(r"Worker exiting \(pid: %d\)" % victim)


def test_reload_starts_a_new_generation(serve, tmp_path):
    server, path = start(serve, tmp_path, workers=2)
    wait_until(lambda: len(worker_pids(path)) == 2, what="two workers")
    old = set(worker_pids(path))
    assert data(path, "reload") == {"status": "reloading"}
    server.wait_for_log(r"Handling signal: hup")
    wait_until(lambda: len(worker_pids(path)) == 2 and not old & set(worker_pids(path)),
               timeout=30, what="two new workers and none of the old")
    wait_until(lambda: all(not pid_alive(p) for p in old), what="the old workers to exit")
    assert data(path, "show stats")["reloads"] == 1


def test_reopen_reopens_the_logs(serve, tmp_path):
    server, path = start(serve, tmp_path)
    assert data(path, "reopen") == {"status": "reopening"}
    server.wait_for_log(r"Handling signal: usr1")
    assert answers(path)


@pytest.mark.parametrize("mode,sig", [(None, "term"), ("graceful", "term"), ("quick", "int")])
def test_shutdown_stops_the_server_and_removes_the_socket(serve, tmp_path, mode, sig):
    server, path = start(serve, tmp_path)
    args = [mode] if mode else None
    assert data(path, "shutdown", args) == {"status": "shutting_down", "mode": mode or "graceful"}
    assert server.wait_exit(30) == 0
    assert "Handling signal: %s" % sig in server.stderr_text()
    assert not path.exists()


@pytest.mark.ferrocorn_only
def test_shutdown_with_an_unknown_mode_is_refused(serve, tmp_path):
    # Gunicorn stops gracefully whatever the word; a typo should not stop a server.
    server, path = start(serve, tmp_path)
    reply = call(path, "shutdown quik")
    assert reply["error"] == "Invalid argument: Unknown shutdown mode: quik (graceful|quick)"
    assert server.alive() and answers(path)


@pytest.mark.ferrocorn_only
def test_worker_add_beyond_what_the_master_can_run_is_refused(serve, tmp_path):
    server, path = start(serve, tmp_path)
    reply = call(path, "worker add 100000")
    assert reply["status"] == "error"
    assert reply["error"].startswith("Command failed: 100001 workers is more than")
    assert data(path, "show stats")["workers_target"] == 1


def test_socket_mode_default_and_configured(serve, tmp_path):
    _, default = start(serve, tmp_path, name="a.ctl")
    assert stat.S_IMODE(os.stat(default).st_mode) == 0o600
    assert stat.S_ISSOCK(os.stat(default).st_mode)
    _, group = start(serve, tmp_path, "--control-socket-mode", "0660", name="b.ctl")
    assert stat.S_IMODE(os.stat(group).st_mode) == 0o660


def test_missing_parent_directory_is_created_private(serve, tmp_path):
    _, path = start(serve, tmp_path, name="sub/dir/x.ctl")
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_no_control_socket(serve, tmp_path):
    path = tmp_path / "x.ctl"
    server = serve("--no-control-socket", "--control-socket", str(path), "hello:app")
    server.wait_for_log(r"Booting worker")
    assert not path.exists()
    assert not (tmp_path / "run0" / "gunicorn.ctl").exists()
    assert "Control socket listening" not in server.stderr_text()


def test_default_path_is_under_xdg_runtime_dir(serve, tmp_path):
    # conftest gives each server its own XDG_RUNTIME_DIR (run0 for the first).
    server = serve("hello:app")
    path = tmp_path / "run0" / "gunicorn.ctl"
    wait_answering(path)
    assert data(path, "show stats")["pid"] == server.master_pid
    server.wait_for_log(r"Control socket listening at %s$" % path)


def test_default_path_without_xdg_runtime_dir_is_under_home(serve, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    server = serve("hello:app", env={"XDG_RUNTIME_DIR": None, "HOME": str(home)})
    path = home / ".gunicorn" / "gunicorn.ctl"
    wait_answering(path)
    assert data(path, "show stats")["pid"] == server.master_pid
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_a_stale_socket_file_is_replaced(serve, tmp_path):
    path = tmp_path / "x.ctl"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    server, _ = start(serve, tmp_path)
    assert data(path, "show stats")["pid"] == server.master_pid


@pytest.mark.ferrocorn_only
def test_a_regular_file_at_the_path_is_left_alone(serve, tmp_path):
    path = tmp_path / "x.ctl"
    path.write_text("precious\n")
    server = serve("--control-socket", str(path), "hello:app")
    server.wait_for_log(r"\[WARNING\] Control socket not started: %s exists and is not a socket"
                        % path)
    assert path.read_text() == "precious\n"
    assert server.alive()


@pytest.mark.ferrocorn_only
def test_a_second_server_on_the_same_path_does_not_take_it(serve, tmp_path):
    first, path = start(serve, tmp_path)
    second = serve("--control-socket", str(path), "hello:app")
    second.wait_for_log(r"\[WARNING\] Control socket %s is in use by another running server"
                        % path)
    assert data(path, "show stats")["pid"] == first.master_pid
    second.stop()
    assert second.proc.returncode is not None
    assert data(path, "show stats")["pid"] == first.master_pid
    assert "Control socket listening" not in second.stderr_text()


@pytest.mark.ferrocorn_only
def test_a_connection_stays_usable_while_workers_are_forked(serve, tmp_path):
    # Gunicorn stops its control thread around every fork, resetting open connections.
    server, path = start(serve, tmp_path)
    with ControlClient(path) as c:
        assert c.call("worker add 3")["data"]["total"] == 4
        wait_until(lambda: c.call("show stats")["data"]["workers_current"] == 4,
                   what="four workers, asked on one connection")
        assert c.call("worker remove 3")["data"]["total"] == 1
        wait_until(lambda: len(live_children(server)) == 1, what="one worker again")
        assert c.call("show stats")["data"]["workers_spawned"] == 4


@pytest.mark.ferrocorn_only
def test_booted_and_heartbeat_are_true(serve, tmp_path):
    # Gunicorn reports the master's copy of `booted`, which is always false.
    _, path = start(serve, tmp_path, workers=2)
    wait_until(lambda: [w["booted"] for w in data(path, "show workers")["workers"]] == [True] * 2,
               what="both workers booted")
    for w in data(path, "show workers")["workers"] + data(path, "show all")["web_workers"]:
        assert w["booted"] is True
        assert 0 <= w["last_heartbeat"] < 15


@pytest.mark.ferrocorn_only
def test_one_listening_line_per_master_start(serve, tmp_path):
    # Gunicorn stops and restarts its socket thread around every fork, and logs each time.
    server, path = start(serve, tmp_path)
    data(path, "worker add 2")
    wait_until(lambda: len(live_children(server)) == 3, what="three workers")
    data(path, "worker kill %d" % worker_pids(path)[0])
    wait_until(lambda: stat_of(path, "workers_spawned") == 4, what="a replacement")
    assert server.stderr_text().count("Control socket listening at") == 1


def _listener_inode(path):
    """The inode of the socket listening at `path`, from /proc/net/unix."""
    with open("/proc/net/unix") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == str(path) and fields[5] == "01":
                return int(fields[6])
    return None


def test_hup_leaks_no_descriptor_and_workers_do_not_hold_the_socket(serve, tmp_path):
    server, path = start(serve, tmp_path)
    master = server.master_pid
    before = len(os.listdir("/proc/%d/fd" % master))
    for n in range(1, 4):
        data(path, "reload")
        wait_until(lambda: stat_of(path, "reloads") == n, what="reload %d" % n)
        # The next reload only once this one's forks are over (see `poll`).
        wait_until(lambda: len(live_children(server)) == 1 and stat_of(path, "workers_current") == 1,
                   timeout=30, what="one worker again")
    wait_until(lambda: len(os.listdir("/proc/%d/fd" % master)) <= before, timeout=10,
               what="the master's descriptors back to %d" % before)
    inode = _listener_inode(path)
    assert inode is not None
    assert inode in socket_inodes(master)
    (worker,) = live_children(server)
    assert inode not in socket_inodes(worker)


@pytest.mark.ferrocorn_only
@pytest.mark.skipif(is_gunicorn(), reason="ferrocorn's USR2 hand-over")
def test_usr2_new_master_takes_the_socket_over_when_the_old_one_stops(serve, tmp_path):
    server, path = start(serve, tmp_path)
    old = server.master_pid
    server.send_signal(signal.SIGUSR2)
    server.wait_for_log(r"Control socket %s is still the old master's" % path, timeout=30)
    assert data(path, "show stats")["pid"] == old
    server.send_signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0
    wait_until(lambda: answers(path) and data(path, "show stats")["pid"] != old, timeout=20,
               what="the new master on the control socket")
    new = data(path, "show stats")["pid"]
    assert pid_alive(new)
    assert server.stderr_text().count("Control socket listening at") == 2
    os.kill(new, signal.SIGTERM)
    wait_until(lambda: not pid_alive(new), what="the new master to stop")
    wait_until(lambda: not path.exists(), what="the new master to remove its socket")


def test_a_bind_failure_is_logged_and_the_server_keeps_serving(serve, tmp_path):
    path = tmp_path / ("d" * 120) / "x.ctl"
    server = serve("--control-socket", str(path), "hello:app")
    server.wait_for_log(r"\[ERROR\] Control server error: AF_UNIX path too long")
    assert server.alive()
    assert not path.exists()


def test_a_relative_path_is_taken_from_the_working_directory(serve, tmp_path):
    server = serve("--pythonpath", str(APPS_DIR), "--control-socket", "rel.ctl", "hello:app",
                   cwd=tmp_path)
    path = tmp_path / "rel.ctl"
    wait_answering(path)
    assert data(path, "show stats")["pid"] == server.master_pid
    server.wait_for_log(r"Control socket listening at %s$" % path)
