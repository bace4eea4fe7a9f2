"""PasteDeploy: ``--paste app.ini[#name]`` with ``--paste-global``, and ``pserve`` running
the server from the ini's ``[server:main]`` (``use = egg:ferrocorn#main``, or
``egg:gunicorn#main`` against the reference server).

The app is a small Pyramid app (tests/apps/paste_pyramid/) whose views show the settings
and the global configuration its factory received; its ini also sends the server's error
log through its own ``[loggers]`` with a line shape of its own.
"""

import re
import signal
from pathlib import Path

import pytest
import requests

import conftest
from conftest import APPS_DIR, is_gunicorn, server_command

pytestmark = pytest.mark.timeout(60)

INI = APPS_DIR / "paste_pyramid" / "app.ini"
PROG = "gunicorn" if is_gunicorn() else "ferrocorn"
MAIN_SETTINGS = {"greeting": "hello from the main section", "colour": "blue"}
# The error log lines the ini's [formatter_paste_shape] makes.
PASTE_LINE_RE = re.compile(r"PASTE-INI (DEBUG|INFO|WARNING|ERROR|CRITICAL) <(\d+)> (.*)")


def get_conf(server):
    response = requests.get(server.url + "/conf", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def title(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().split(b"\0")[0].decode()


def assert_error_log_is_paste_shaped(text):
    lines = [line for line in text.splitlines() if line.strip()]
    shaped = [PASTE_LINE_RE.fullmatch(line) for line in lines]
    messages = [m.group(3) for m in shaped if m]
    assert any(re.fullmatch(r"Starting %s \S+" % PROG, m) for m in messages), text
    assert any(re.fullmatch(r"Booting worker with pid: \d+", m) for m in messages), text
    # Gunicorn's own line shape is gone: the ini's handler is the only one.
    assert not re.search(r"^\[\d{4}-\d\d-\d\d [^]]*\] \[\d+\] \[INFO\]", text, re.M), text


# ---------------------------------------------------------------------------
# --paste


def test_paste_serves_the_main_section_and_logs_through_its_loggers(serve):
    server = serve("--paste", "paste_pyramid/app.ini")
    response = requests.get(server.url + "/", timeout=10)
    assert response.status_code == 200
    assert response.text.startswith("hello from the main section (pid ")

    conf = get_conf(server)
    assert conf["settings"] == MAIN_SETTINGS
    # The path was made absolute; the ini's [DEFAULT] is global configuration.
    assert conf["global_config"] == {
        "__file__": str(INI),
        "here": str(INI.parent),
        "flavour": "plain",
    }

    # The ini is the process name, and its [loggers] shape the error log.
    assert title(server.master_pid) == "%s: master [%s]" % (PROG, INI)
    assert_error_log_is_paste_shaped(server.stderr_text())


def test_hash_name_picks_another_app_section_and_app_module_is_ignored(serve):
    server = serve("--paster", "paste_pyramid/app.ini#admin", "no_such_module:app")
    response = requests.get(server.url + "/", timeout=10)
    assert response.text.startswith("hello from the admin section (pid ")
    assert get_conf(server)["settings"] == {"greeting": "hello from the admin section"}
    # `#admin` names the section, not the file: the process name is the file.
    assert title(server.master_pid) == "%s: master [%s]" % (PROG, INI)


@pytest.mark.parametrize("preload", [False, True], ids=["in-workers", "preload"])
def test_paste_global_reaches_the_factory(serve, preload):
    args = ["--paste", "paste_pyramid/app.ini",
            "--paste-global", "who=world",
            "--paste-global", r"a\=b=c\=d=e",
            "--paste-global", "empty="]
    if preload:
        args.append("--preload")
    server = serve(*args)
    seen = get_conf(server)["global_config"]
    assert seen["who"] == "world"
    # Split at the first `=` not written `\=`; `\=` is a literal `=` on both sides.
    assert seen["a=b"] == "c=d=e"
    assert seen["empty"] == ""
    assert seen["__file__"] == str(INI)
    assert get_conf(server)["settings"] == MAIN_SETTINGS


def test_hooks_load_the_paste_app_through_server_app(serve, tmp_path):
    conf = tmp_path / "hooks.conf.py"
    conf.write_text(
        "def when_ready(server):\n"
        "    app = server.app.load()\n"
        "    server.log.info('when_ready built %s', type(app).__name__)\n"
    )
    server = serve("-c", conf, "--paste", "paste_pyramid/app.ini")
    # Pyramid's WSGI app is its Router.
    server.wait_for_log(r"PASTE-INI INFO <%d> when_ready built Router$" % server.master_pid)


def test_missing_ini_is_a_config_error(run, tmp_path):
    result = run("-b", "127.0.0.1:0", "--paste", "nosuch/app.ini#admin", timeout=20)
    assert result.returncode == 1
    # The message names the absolute file, without the section.
    assert "Error: %r not found" % str(APPS_DIR / "nosuch" / "app.ini") in result.stderr
    assert "Booting worker" not in result.stderr


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--paste-global", "novalue"], "environment setting 'novalue' invalid"),
        ([], "No section 'nosuch'"),
    ],
    ids=["paste-global-without-equals", "unknown-section"],
)
def test_app_that_cannot_be_built_stops_the_server_with_status_3(run, extra, message):
    uri = "paste_pyramid/app.ini" + ("#nosuch" if not extra else "")
    result = run("-b", "127.0.0.1:0", "--paste", uri, *extra, timeout=30)
    assert result.returncode == 3, result.stderr
    assert message in result.stderr
    assert "Worker failed to boot." in result.stderr


def test_check_config_builds_the_paste_app(run):
    ok = run("--check-config", "--paste", "paste_pyramid/app.ini#admin", timeout=30)
    assert ok.returncode == 0, ok.stderr
    bad = run("--check-config", "--paste", "paste_pyramid/app.ini#nosuch", timeout=30)
    assert bad.returncode == 1
    assert "Error while loading the application" in bad.stderr
    assert "No section 'nosuch'" in bad.stderr


@pytest.mark.ferrocorn_only
def test_paste_path_with_a_colon(serve, tmp_path):
    # Gunicorn hands `/dir/a:b/app.ini` to PasteDeploy as a URI with the scheme `/dir/a`.
    odd = tmp_path / "a:b"
    odd.mkdir()
    (odd / "app.ini").write_text(INI.read_text())
    server = serve("--paste", odd / "app.ini")
    assert get_conf(server)["global_config"]["__file__"] == str(odd / "app.ini")


# ---------------------------------------------------------------------------
# pserve with `use = egg:<server>#main`


def pserve_command():
    """pserve from the server command's own environment (it must import the server)."""
    found = Path(server_command()[0]).parent / "pserve"
    assert found.exists(), "%s missing: pyramid is in requirements-test.txt" % found
    return str(found)


def write_pserve_ini(path, **server_keys):
    """The app's ini with [server:main] using the server under test and `server_keys`
    (None removes a key)."""
    keys = {"use": "egg:%s#main" % PROG, "host": "127.0.0.1", "port": "0"}
    keys.update(server_keys)
    section = "[server:main]\n" + "".join(
        "%s = %s\n" % (k, v) for k, v in keys.items() if v is not None)
    text = re.sub(r"\[server:main\]\n(?:[^\[\n][^\n]*\n)*", section + "\n", INI.read_text())
    assert section in text
    path.write_text(text)
    return path


@pytest.fixture
def pserve(serve, monkeypatch):
    """``pserve(ini, cwd=...)``: pserve started like a server (the `serve` fixture's logs,
    readiness and teardown); the address comes from the "Listening at:" line."""
    monkeypatch.setattr(conftest, "server_command", lambda: [pserve_command()])

    def start(ini, cwd, ready="http"):
        return serve(ini, bind="log", cwd=cwd, ready=ready,
                     env={"PYTHONPATH": str(APPS_DIR)})

    return start


def test_pserve_serves_from_the_server_section_and_stops_on_term(pserve, tmp_path):
    ini = write_pserve_ini(tmp_path / "app.ini")
    server = pserve(ini, cwd=tmp_path)
    # host and port became the bind address (port 0: the kernel chose one).
    assert server.address[0] == "127.0.0.1" and server.address[1] != 0
    response = requests.get(server.url + "/", timeout=10)
    assert response.text.startswith("hello from the main section (pid ")
    assert get_conf(server)["settings"] == MAIN_SETTINGS

    assert title(server.master_pid) == "%s: master [%s]" % (PROG, ini)
    assert_error_log_is_paste_shaped(server.stderr_text())
    # pserve itself is the master.
    assert server.master_pid == server.proc.pid

    server.send_signal(signal.SIGTERM)
    server.wait_exit(timeout=15)
    server.wait_for_log(r"Shutting down: Master")
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/", timeout=5)


@pytest.mark.parametrize(
    "where, ini_workers, expected",
    [("config", None, 2), ("default-file", None, 2), ("config", "3", 3)],
    ids=["config-key", "default-gunicorn-conf-py", "section-key-wins-over-file"],
)
def test_pserve_settings_from_a_config_file_and_the_section(pserve, tmp_path, where,
                                                           ini_workers, expected):
    if where == "config":
        (tmp_path / "settings.py").write_text("workers = 2\n")
        ini = write_pserve_ini(tmp_path / "app.ini", config="settings.py", workers=ini_workers)
    else:
        (tmp_path / "gunicorn.conf.py").write_text("workers = 2\n")
        ini = write_pserve_ini(tmp_path / "app.ini", workers=ini_workers)
    server = pserve(ini, cwd=tmp_path)
    server.wait_for_log(r"Booting worker with pid: \d+", count=expected)
    assert requests.get(server.url + "/", timeout=10).status_code == 200
    conftest.wait_until(lambda: len(conftest.children(server.master_pid)) == expected,
                        what="%d workers" % expected)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("bogus_key", "1", "Error: No configuration setting for: bogus_key"),
        ("workers", "many", "Error: invalid literal for int() with base 0: 'many'"),
    ],
    ids=["unknown-key", "bad-value"],
)
def test_pserve_bad_section_key_is_an_error(pserve, tmp_path, key, value, message):
    ini = write_pserve_ini(tmp_path / "app.ini", **{key: value})
    server = pserve(ini, cwd=tmp_path, ready=None)
    # pserve reports the exit and returns; the status is pserve's own (0).
    server.wait_exit(timeout=30)
    assert message in server.stderr_text()
    assert "Listening at" not in server.stderr_text()


@pytest.mark.ferrocorn_only
def test_pserve_port_without_host_uses_the_default_host(pserve, tmp_path):
    # Gunicorn drops a lone port and listens on 127.0.0.1:8000.
    ini = write_pserve_ini(tmp_path / "app.ini", host=None, port="0")
    server = pserve(ini, cwd=tmp_path)
    host, port = server.address
    assert host == "127.0.0.1"
    # An ephemeral port, never the default 8000.
    assert port not in (0, 8000)
    assert requests.get(server.url + "/", timeout=10).status_code == 200


@pytest.mark.ferrocorn_only
@pytest.mark.parametrize(
    "host, port, bind",
    [
        ("127.0.0.1", "8080", ["127.0.0.1:8080"]),
        ("", "8080", ["127.0.0.1:8080"]),
        ("a.example, b.example", "81", ["a.example:81", "b.example:81"]),
        ("::1", "8080", ["[::1]:8080"]),
        ("[::1]", "8080", ["[::1]:8080"]),
        ("unix:/run/app.sock, 127.0.0.1:9000", "", ["unix:/run/app.sock", "127.0.0.1:9000"]),
        ("", "", None),
    ],
)
def test_server_section_host_and_port_to_bind(host, port, bind):
    from ferrocorn.app.pasterapp import _bind_from

    assert _bind_from(host, port) == bind
