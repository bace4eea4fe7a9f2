"""The control-socket client, run as a command against a real server's control socket.

In the suite's Gunicorn mode the client is `gunicornc` and the server `gunicorn`; otherwise
`ferrocornc` and `ferrocorn`. Both must print the same tables, JSON and errors and exit the
same way; what ferrocornc does better is marked ferrocorn_only. Replies a real server does
not give on demand are in test_ferrocornc_replies.py.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import socket
import subprocess
import time

import pytest

from conftest import wait_until
from ctl_support import PROMPT, SERVER_NAME, client_command, client_env, ctl, run_client

WORKER_ROW = re.compile(r"^(\d+) +(\d+) +(yes|no) +(\d+(?:\.\d+)?s ago|n/a)$")


@pytest.fixture
def ctl_server(serve, tmp_path):
    """A real server with two sync workers and its control socket at <tmp>/s.ctl."""
    path = tmp_path / "s.ctl"
    server = serve("--control-socket", path, "-w", "2", "hello:app")
    server.ctl_path = path
    # The socket appears once the workers are up; a `show stats` answered means it serves.
    wait_until(lambda: path.exists() and ctl(tmp_path, path, "show stats").returncode == 0,
               what="the control socket to answer")
    return server


def ok_lines(result) -> list:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout.splitlines()


def json_data(tmp_path, path, command):
    result = ctl(tmp_path, path, command, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def live_worker_pids(server) -> set:
    return set(server.worker_pids())


# ---------------------------------------------------------------------------
# Against the real server.


def test_show_workers_table(ctl_server, tmp_path):
    lines = ok_lines(ctl(tmp_path, ctl_server.ctl_path, "show workers"))
    assert lines[0] == "PID        AGE    BOOTED   LAST_BEAT"
    assert lines[1] == "-" * 40
    rows = [WORKER_ROW.match(line) for line in lines[2:4]]
    assert all(rows), lines
    assert {int(m.group(1)) for m in rows} == live_worker_pids(ctl_server)
    assert sorted(int(m.group(2)) for m in rows) == [int(m.group(2)) for m in rows]
    assert lines[4:] == ["", "Total: 2 workers"]


def test_json_output_has_the_reply_data(ctl_server, tmp_path):
    path = ctl_server.ctl_path
    workers = json_data(tmp_path, path, "show workers")
    assert set(workers) == {"workers", "count"}
    assert workers["count"] == 2
    assert {w["pid"] for w in workers["workers"]} == live_worker_pids(ctl_server)
    for worker in workers["workers"]:
        assert set(worker) == {"pid", "age", "booted", "aborted", "last_heartbeat"}

    short = run_client(tmp_path, "-s", path, "-j", "-c", "show stats")
    stats = json.loads(short.stdout)
    assert set(stats) == {
        "uptime", "pid", "workers_current", "workers_target", "workers_spawned",
        "workers_killed", "reloads", "dirty_arbiter_pid",
    }
    assert stats["pid"] == ctl_server.master_pid
    assert stats["workers_current"] == stats["workers_target"] == 2
    assert stats["dirty_arbiter_pid"] is None

    listeners = json_data(tmp_path, path, "show listeners")
    assert listeners["count"] == 1
    assert listeners["listeners"][0]["type"] == "tcp"
    assert listeners["listeners"][0]["address"] == "http://127.0.0.1:%d" % ctl_server.port

    assert json_data(tmp_path, path, "show dirty") == {
        "enabled": False, "pid": None, "workers": [], "apps": [],
    }
    every = json_data(tmp_path, path, "show all")
    assert every["arbiter"]["pid"] == ctl_server.master_pid
    assert every["web_worker_count"] == 2 and every["dirty_arbiter"] is None
    config = json_data(tmp_path, path, "show config")
    assert config["workers"] == 2 and config["control_socket"] == str(path)


def test_every_show_command_as_text(ctl_server, tmp_path):
    path = ctl_server.ctl_path
    master = ctl_server.master_pid

    stats = ok_lines(ctl(tmp_path, path, "show stats"))
    assert re.fullmatch(r"Uptime:           (\d+s|\d+m \d+s|\d+h \d+m \d+s|unknown)", stats[0])
    assert stats[1:] == [
        "PID:              %d" % master,
        "Workers current:  2",
        "Workers target:   2",
        "Workers spawned:  2",
        "Workers killed:   0",
        "Reloads:          0",
    ]

    listeners = ok_lines(ctl(tmp_path, path, "show listeners"))
    assert listeners[:2] == ["ADDRESS                                  TYPE     FD", "-" * 55]
    assert re.fullmatch(r"http://127\.0\.0\.1:%d +tcp      \d+" % ctl_server.port, listeners[2])
    assert listeners[3:] == ["", "Total: 1 listeners"]

    config = ok_lines(ctl(tmp_path, path, "show config"))
    keys = [line.split(":", 1)[0] for line in config]
    assert keys == sorted(keys) and len(keys) == 20
    assert "workers: 2" in config
    assert "control_socket: %s" % path in config
    assert "bind: 127.0.0.1:0" in config

    assert ok_lines(ctl(tmp_path, path, "show dirty")) == ["Dirty arbiter not running"]

    every = ok_lines(ctl(tmp_path, path, "show all"))
    assert every[:6] == [
        "ARBITER (master)",
        "  PID: %d" % master,
        "",
        "WEB WORKERS (2)",
        "  PID        AGE    BOOTED   LAST_BEAT",
        "  " + "-" * 38,
    ]
    assert all(WORKER_ROW.match(line[2:]) for line in every[6:8]), every
    assert every[8:] == ["", "DIRTY ARBITER", "  (not running)"]


def test_worker_add_remove_kill(ctl_server, tmp_path):
    path = ctl_server.ctl_path
    added = ctl(tmp_path, path, "worker add 2")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout) == {"added": 2, "previous": 2, "total": 4}

    def count_is(n):
        # Gunicorn's control socket goes away for a moment around each fork.
        result = ctl(tmp_path, path, "show workers")
        return result.returncode == 0 and result.stdout.splitlines()[-1] == "Total: %d workers" % n

    wait_until(lambda: count_is(4), what="4 workers in `show workers`")

    removed = ctl(tmp_path, path, "worker remove")
    assert json.loads(removed.stdout) == {"removed": 1, "previous": 4, "total": 3}
    wait_until(lambda: count_is(3), what="3 workers in `show workers`")

    victim = json_data(tmp_path, path, "show workers")["workers"][0]["pid"]
    killed = ctl(tmp_path, path, "worker kill %d" % victim)
    assert killed.returncode == 0, killed.stderr
    assert json.loads(killed.stdout) == {"success": True, "killed": victim}

    # success:false is still an ok reply: exit status 0, the data printed.
    missing = ctl(tmp_path, path, "worker kill 1")
    assert missing.returncode == 0
    assert json.loads(missing.stdout) == {"success": False, "error": "Worker 1 not found"}


def test_help_table(ctl_server, tmp_path):
    lines = ok_lines(ctl(tmp_path, ctl_server.ctl_path, "help"))
    assert lines[:2] == ["Available commands:", ""]
    entries = lines[2:]
    assert len(entries) == 15
    names = [re.match(r"^  (.+?) {2,}\S", line).group(1) for line in entries]
    assert names == sorted(names)
    assert {"show workers", "worker add [N]", "shutdown [graceful|quick]", "help"} <= set(names)
    # Descriptions start in one column: two spaces after the longest name, plus the separator.
    column = 2 + max(len(n) for n in names) + 3
    assert all(line[column - 1] == " " and line[column] != " " for line in entries), entries


def test_error_reply_exits_1_with_the_error_on_stderr(ctl_server, tmp_path):
    for flags in ((), ("-j",)):
        result = ctl(tmp_path, ctl_server.ctl_path, "frob", *flags)
        assert result.returncode == 1
        assert result.stdout == ""
        assert result.stderr == "Error: Invalid argument: Unknown command: frob\n"
    bad_target = ctl(tmp_path, ctl_server.ctl_path, "show nothing")
    assert bad_target.returncode == 1
    assert bad_target.stderr == "Error: Invalid argument: Unknown show target: nothing\n"


def test_missing_socket_exits_1(tmp_path):
    path = tmp_path / "nope.ctl"
    result = ctl(tmp_path, path, "help")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ") and str(path) in result.stderr
    assert len(result.stderr.splitlines()) == 1
    # The prompt needs the connection first, and says so the same way.
    interactive = run_client(tmp_path, "-s", path, input="help\n")
    assert interactive.returncode == 1
    assert interactive.stderr == result.stderr


def test_version(run, tmp_path):
    server_version = run("--version")
    assert server_version.returncode == 0
    version = re.search(r"\(version (\S+)\)", server_version.stdout).group(1)
    for flag in ("-v", "--version"):
        result = run_client(tmp_path, flag)
        assert result.returncode == 0
        assert result.stdout == "%sc (%s %s)\n" % (SERVER_NAME, SERVER_NAME, version)


def test_interactive_commands_then_quit(ctl_server, tmp_path):
    path = ctl_server.ctl_path
    # After `quit` nothing more is read: the `help` never runs.
    script = "show dirty\nfrob\n\n  SHOW   Workers  \nreopen\nquit\nhelp\n"
    result = run_client(tmp_path, "-s", path, input=script)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert out.startswith(
        "Connected to %s\nType 'help' for available commands, 'quit' to exit.\n\n" % path
    )
    assert out.count(PROMPT) == 6
    assert PROMPT + "Dirty arbiter not running\n\n" in out
    assert PROMPT + "Error: Invalid argument: Unknown command: frob\n\n" in out
    assert "Total: 2 workers\n" in out
    assert '"status": "reopening"' in out
    assert "Available commands" not in out
    assert out.endswith(PROMPT)


@pytest.mark.parametrize("word", ["exit", "q", "QUIT"])
def test_interactive_quit_words(ctl_server, tmp_path, word):
    result = run_client(tmp_path, "-s", ctl_server.ctl_path, input="%s\nhelp\n" % word)
    assert result.returncode == 0
    assert result.stdout.count(PROMPT) == 1 and "Available commands" not in result.stdout


def test_interactive_eof_ends_the_session(ctl_server, tmp_path):
    result = run_client(tmp_path, "-s", ctl_server.ctl_path, "-j", input="show dirty")
    assert result.returncode == 0
    body = result.stdout.split(PROMPT)
    assert json.loads(body[1])["enabled"] is False
    assert body[2] == "\n"


def _terminal_session(tmp_path, path, steps):
    """Drive the client's prompt on a pseudo-terminal (so readline is live): for each
    (keys, marker) send the keys, then wait until the marker has been echoed or printed.
    Returns (exit status, everything the terminal showed)."""
    main_fd, sub_fd = pty.openpty()
    proc = subprocess.Popen(
        client_command() + ["-s", path], stdin=sub_fd, stdout=sub_fd, stderr=sub_fd,
        env=client_env(tmp_path, extra={"TERM": "dumb"}), start_new_session=True,
    )
    os.close(sub_fd)
    shown = b""
    try:
        for keys, marker in [(b"", PROMPT.encode())] + steps:
            os.write(main_fd, keys)
            deadline = time.monotonic() + 20
            while marker not in shown:
                assert time.monotonic() < deadline, "no %r on the terminal: %r" % (marker, shown)
                if select.select([main_fd], [], [], 0.2)[0]:
                    shown += os.read(main_fd, 4096)
        return proc.wait(timeout=20), shown.decode()
    finally:
        proc.kill()
        proc.wait()
        os.close(main_fd)


def test_terminal_prompt_keeps_a_history(ctl_server, tmp_path):
    status, shown = _terminal_session(tmp_path, ctl_server.ctl_path, [
        (b"show dirty\r", b"Dirty arbiter not running"),
        (b"quit\r", b""),
    ])
    assert status == 0, shown
    history = tmp_path / "client-home" / (".%sc_history" % SERVER_NAME)
    assert history.read_text().splitlines()[-2:] == ["show dirty", "quit"]


def test_default_socket_in_xdg_runtime_dir(serve, tmp_path):
    server = serve("hello:app")
    runtime = tmp_path / "run0"  # the runtime directory `serve` gave the first server
    path = runtime / "gunicorn.ctl"
    wait_until(path.exists, what="the control socket at its default path")
    env = client_env(tmp_path, runtime_dir=runtime)
    result = wait_until(lambda: _ok(run_client(tmp_path, "-j", "-c", "show stats", env=env)),
                        what="the client on the default socket")
    assert json.loads(result.stdout)["pid"] == server.master_pid


def test_default_socket_in_home_without_runtime_dir(serve, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    server = serve("hello:app", env={"XDG_RUNTIME_DIR": None, "HOME": str(home)})
    path = home / ".gunicorn" / "gunicorn.ctl"
    wait_until(path.exists, what="the control socket under ~/.gunicorn")
    env = client_env(tmp_path, extra={"XDG_RUNTIME_DIR": None, "HOME": str(home)})
    result = wait_until(lambda: _ok(run_client(tmp_path, "-j", "-c", "show stats", env=env)),
                        what="the client on the default socket")
    assert json.loads(result.stdout)["pid"] == server.master_pid
    # A runtime directory that does not exist does not count either.
    env["XDG_RUNTIME_DIR"] = str(tmp_path / "missing")
    assert _ok(run_client(tmp_path, "-j", "-c", "show stats", env=env))


def _ok(result):
    return result if result.returncode == 0 else None


# ---------------------------------------------------------------------------
# ferrocornc only: where gunicornc says too little or does not go.


@pytest.mark.ferrocorn_only
def test_connect_errors_say_what_is_wrong(tmp_path):
    missing = ctl(tmp_path, tmp_path / "nope.ctl", "help")
    assert "no such socket; is the server running" in missing.stderr

    # A socket file whose server is gone: nothing listens, the file stays behind.
    stale = tmp_path / "stale.ctl"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(stale))
    result = ctl(tmp_path, stale, "help")
    assert result.returncode == 1 and "nothing is listening" in result.stderr

    plain = tmp_path / "plain.ctl"
    plain.write_text("")
    result = ctl(tmp_path, plain, "help")
    assert result.returncode == 1 and result.stderr.endswith(": this is not a socket\n")

    long_path = tmp_path / ("x" * 120) / "s.ctl"
    result = ctl(tmp_path, long_path, "help")
    assert result.returncode == 1 and "a unix socket path can have at most 107" in result.stderr


@pytest.mark.ferrocorn_only
def test_empty_command_is_sent_not_taken_for_the_prompt(ctl_server, tmp_path):
    # gunicornc treats -c "" as no -c and waits at a prompt; a script gets an error instead.
    result = ctl(tmp_path, ctl_server.ctl_path, "")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and "Connected to" not in result.stdout


@pytest.mark.ferrocorn_only
def test_python_dash_m(tmp_path):
    python = os.path.join(os.path.dirname(os.path.realpath(client_command()[0])), "python")
    result = subprocess.run([python, "-m", "ferrocorn.ctl", "-v"], capture_output=True,
                            text=True, timeout=30, env=client_env(tmp_path))
    assert result.returncode == 0
    assert result.stdout.startswith("ferrocornc (ferrocorn ")


@pytest.mark.ferrocorn_only
def test_piped_prompt_leaves_the_history_alone(ctl_server, tmp_path):
    result = run_client(tmp_path, "-s", ctl_server.ctl_path, input="show dirty\nquit\n")
    assert result.returncode == 0
    assert not (tmp_path / "client-home" / ".ferrocornc_history").exists()


@pytest.mark.ferrocorn_only
def test_terminal_prompt_recalls_gunicornc_history(ctl_server, tmp_path):
    home = tmp_path / "client-home"
    home.mkdir(exist_ok=True)
    (home / ".gunicornc_history").write_text("show dirty\n")
    # Ctrl-P: the previous line of the history, which is gunicornc's until ferrocornc has one.
    status, shown = _terminal_session(tmp_path, ctl_server.ctl_path, [
        (b"\x10\r", b"Dirty arbiter not running"),
        (b"q\r", b""),
    ])
    assert status == 0, shown
    assert (home / ".ferrocornc_history").read_text().splitlines()[-2:] == ["show dirty", "q"]
    assert (home / ".gunicornc_history").read_text() == "show dirty\n"


@pytest.mark.ferrocorn_only
def test_history_starts_from_gunicornc_then_keeps_its_own(tmp_path):
    """The prompt's history file (readline needs a terminal, so this runs in-process)."""
    readline = pytest.importorskip("readline")
    from ferrocorn.ctl import cli

    home = tmp_path / "home"
    home.mkdir()
    (home / ".gunicornc_history").write_text("show workers\nworker add 2\n")
    readline.clear_history()
    cli.load_history(readline, str(home))
    assert readline.get_history_length() == 1000
    assert [readline.get_history_item(i) for i in (1, 2)] == ["show workers", "worker add 2"]
    readline.add_history("show stats")
    cli.save_history(readline, str(home))
    assert (home / ".ferrocornc_history").read_text().splitlines()[-3:] == [
        "show workers", "worker add 2", "show stats"]
    assert (home / ".gunicornc_history").read_text() == "show workers\nworker add 2\n"

    # Once ferrocornc has its own file, gunicornc's is not read again.
    (home / ".gunicornc_history").write_text("reload\n")
    readline.clear_history()
    cli.load_history(readline, str(home))
    assert readline.get_current_history_length() == 3
    assert readline.get_history_item(3) == "show stats"
    readline.clear_history()
