"""Configuration: precedence (defaults < config file < GUNICORN_CMD_ARGS < CLI), env
defaults, config file forms, --check-config, --print-config, -h, --version, bad options,
and settings ferrocorn does not implement yet."""

import re
import time

import pytest
import requests

from conftest import APPS_DIR, is_gunicorn, reserved_port

pytestmark = pytest.mark.timeout(60)

# Every Gunicorn 27.0.1 setting, sorted: --print-config must print exactly these.
ALL_SETTINGS = """
access_log_format accesslog asgi_disconnect_grace_period asgi_lifespan asgi_loop backlog
bind ca_certs capture_output casefold_http_method cert_reqs certfile chdir check_config
child_exit ciphers config control_socket control_socket_disable control_socket_mode daemon
default_proc_name dirty_apps dirty_graceful_timeout dirty_post_fork dirty_threads
dirty_timeout dirty_worker_exit dirty_worker_init dirty_workers
disable_redirect_access_to_syslog do_handshake_on_connect dogstatsd_tags
enable_backlog_metric enable_stdio_inheritance errorlog forwarded_allow_ips
forwarder_headers graceful_timeout group header_map http2_cleartext
http2_initial_window_size http2_max_concurrent_streams http2_max_frame_size
http2_max_header_list_size http_parser http_protocols initgroups keepalive keyfile
limit_request_field_size limit_request_fields limit_request_line logconfig logconfig_dict
logconfig_json logger_class loglevel max_requests max_requests_jitter nworkers_changed
on_dirty_starting on_exit on_reload on_starting paste permit_obsolete_folding
permit_unconventional_http_method permit_unconventional_http_version pidfile post_fork
post_request post_worker_init pre_exec pre_fork pre_request preload_app print_config
proc_name protocol proxy_allow_ips proxy_protocol pythonpath raw_env raw_paste_global_conf
reload reload_engine reload_extra_files reuse_port root_path secure_scheme_headers sendfile
spew ssl_context ssl_version statsd_host statsd_prefix strip_header_spaces
suppress_ragged_eofs syslog syslog_addr syslog_facility syslog_prefix threads timeout
tmp_upload_dir umask user uwsgi_allow_ips websocket_max_message_size when_ready worker_abort
worker_class worker_connections worker_exit worker_int worker_tmp_dir workers wsgi_app
""".split()

# ferrocorn's own settings (section "Ferrocorn Extensions" in docs/settings.md).
FERROCORN_SETTINGS = ["boot_timeout", "max_worker_memory", "permit_missing_host", "prometheus_bind",
                      "static_max_age", "static_mount", "syslog_rfc5424"]

PRINT_LINE_RE = re.compile(r"^(\w+)(\s+)= (.*)$")


def printed_settings(stdout: str) -> dict:
    out = {}
    for line in stdout.splitlines():
        m = PRINT_LINE_RE.match(line)
        if m:
            out[m.group(1)] = m.group(3)
    return out


def count_workers_booted(server, expected: int) -> int:
    """Wait for `expected` boots, give the master a moment to overshoot, and count."""
    server.wait_for_log(r"Booting worker with pid: \d+", count=expected)
    # Not a wait for an event: the window in which a surplus worker would show up.
    time.sleep(1.0)
    return len(server.worker_pids())


def connection_refused(port: int) -> bool:
    # The ports checked here are held by `reserved_port` sockets, so nothing else can be
    # listening there: a server that had tried them would not have started at all.
    try:
        requests.get("http://127.0.0.1:%d/" % port, timeout=3)
    except requests.ConnectionError:
        return True
    return False


# ---------------------------------------------------------------------------
# Precedence, through what the running server does.


def layers_conf(tmp_path, bind):
    conf = tmp_path / "layers.conf.py"
    conf.write_text(
        "workers = 2\n"
        "bind = [%r]\n"
        "raw_env = ['LAYER=file', 'FILE_ONLY=1']\n" % bind
    )
    return conf


@pytest.fixture
def layered_conf(tmp_path):
    """The layered config file, binding a port the test holds (a server that used this
    bind would fail to start), and that port."""
    held, file_port = reserved_port()
    with held:
        yield layers_conf(tmp_path, "127.0.0.1:%d" % file_port), file_port


def test_config_file_beats_defaults(serve, tmp_path):
    # Port 0: the server's "Listening at:" line says where the config file's bind went.
    conf = layers_conf(tmp_path, "127.0.0.1:0")
    server = serve("-c", conf, "environ_dump:app", bind="log", env={"WEB_CONCURRENCY": "4"})
    # The file's bind, not the default 127.0.0.1:8000.
    assert server.host == "127.0.0.1" and server.port != 8000
    assert count_workers_booted(server, 2) == 2
    env = requests.get(server.url + "/env", timeout=10).json()["os_environ"]
    assert env["LAYER"] == "file"
    assert env["FILE_ONLY"] == "1"


def test_cmd_args_env_beats_config_file(serve, layered_conf):
    conf, file_port = layered_conf
    server = serve(
        "-c", conf, "environ_dump:app",
        bind="log",
        env={"GUNICORN_CMD_ARGS": "-w 3 -b 127.0.0.1:0 -e LAYER=cmdargs"},
    )
    assert count_workers_booted(server, 3) == 3
    env = requests.get(server.url + "/env", timeout=10).json()["os_environ"]
    assert env["LAYER"] == "cmdargs"
    # raw_env is replaced as a whole, not merged with the config file's list.
    assert "FILE_ONLY" not in env
    assert connection_refused(file_port)


def test_command_line_beats_cmd_args_env(serve, layered_conf):
    conf, file_port = layered_conf
    held, env_port = reserved_port()
    with held:
        # The CLI's bind is a socket handed over already bound, so its port is known up
        # front like the other two.
        server = serve(
            "-c", conf, "-w", "1", "-e", "LAYER=cli", "environ_dump:app",
            bind="fd",
            env={"GUNICORN_CMD_ARGS": "-w 3 -b 127.0.0.1:%d -e LAYER=cmdargs" % env_port},
        )
        assert count_workers_booted(server, 1) == 1
        env = requests.get(server.url + "/env", timeout=10).json()["os_environ"]
        assert env["LAYER"] == "cli"
        assert connection_refused(env_port)
        assert connection_refused(file_port)
    server.wait_for_log(r"Listening at: http://127\.0\.0\.1:%d \(\d+\)" % server.port)


def test_precedence_in_print_config(run, layered_conf):
    conf, _ = layered_conf
    defaults = printed_settings(run("--print-config", "hello:app").stdout)
    assert defaults["workers"] == "1"
    assert defaults["raw_env"] == "[]"

    from_file = printed_settings(run("-c", conf, "--print-config", "hello:app").stdout)
    assert from_file["workers"] == "2"
    assert from_file["raw_env"] == "['LAYER=file', 'FILE_ONLY=1']"

    env = {"GUNICORN_CMD_ARGS": "--workers=3 -e LAYER=cmdargs --timeout 7"}
    from_env = printed_settings(run("-c", conf, "--print-config", "hello:app", env=env).stdout)
    assert from_env["workers"] == "3"
    assert from_env["raw_env"] == "['LAYER=cmdargs']"
    assert from_env["timeout"] == "7"

    from_cli = printed_settings(
        run("-c", conf, "-w", "5", "--print-config", "hello:app", env=env).stdout
    )
    assert from_cli["workers"] == "5"
    # A setting the CLI does not mention keeps the GUNICORN_CMD_ARGS value.
    assert from_cli["timeout"] == "7"


def test_config_given_in_cmd_args_env_is_loaded(run, tmp_path):
    conf = tmp_path / "via_env.conf.py"
    conf.write_text("workers = 6\n")
    result = run("--print-config", "hello:app", env={"GUNICORN_CMD_ARGS": "-c %s" % conf})
    assert result.returncode == 0, result.stderr
    assert printed_settings(result.stdout)["workers"] == "6"


def test_web_concurrency_sets_default_workers(serve, run):
    assert printed_settings(
        run("--print-config", "hello:app", env={"WEB_CONCURRENCY": "3"}).stdout
    )["workers"] == "3"
    server = serve("hello:app", env={"WEB_CONCURRENCY": "2"})
    assert count_workers_booted(server, 2) == 2


def test_port_env_sets_default_bind(serve, run):
    printed = printed_settings(run("--print-config", "hello:app", env={"PORT": "8123"}).stdout)
    assert printed["bind"] == "['0.0.0.0:8123']"
    # PORT=0: the server listens on 0.0.0.0 and a port of its own, which its log tells.
    server = serve("hello:app", bind="log", env={"PORT": "0"})
    server.wait_for_log(r"Listening at: http://0\.0\.0\.0:%d \(\d+\)" % server.port)
    assert requests.get(server.url, timeout=10).text == "Hello, World!\n"


# ---------------------------------------------------------------------------
# Config file forms.


def test_config_python_module_and_file_prefix(run, tmp_path):
    (tmp_path / "ferro_cfg_mod.py").write_text("workers = 7\nbacklog = 99\n")
    (tmp_path / "plain.conf.py").write_text("workers = 8\n")
    by_module = run("-c", "python:ferro_cfg_mod", "--chdir", APPS_DIR, "--print-config",
                    "hello:app", cwd=tmp_path)
    assert by_module.returncode == 0, by_module.stderr
    printed = printed_settings(by_module.stdout)
    assert printed["workers"] == "7"
    assert printed["backlog"] == "99"

    by_file = run("-c", "file:%s" % (tmp_path / "plain.conf.py"), "--print-config", "hello:app")
    assert by_file.returncode == 0, by_file.stderr
    assert printed_settings(by_file.stdout)["workers"] == "8"


def test_config_file_serves_with_python_module(serve, tmp_path):
    (tmp_path / "ferro_live_cfg.py").write_text(
        "bind = ['127.0.0.1:0']\nraw_env = ['FROM_MODULE=yes']\n"
    )
    server = serve("-c", "python:ferro_live_cfg", "--chdir", APPS_DIR, "environ_dump:app",
                   cwd=tmp_path, bind="log")
    env = requests.get(server.url + "/env", timeout=10).json()["os_environ"]
    assert env["FROM_MODULE"] == "yes"


def test_default_gunicorn_conf_py_in_cwd(serve, tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text(
        "bind = ['127.0.0.1:0']\n"
        "raw_env = ['FROM_DEFAULT_CONF=1']\n"
        "chdir = %r\n" % str(APPS_DIR)
    )
    server = serve("environ_dump:app", cwd=tmp_path, bind="log")
    data = requests.get(server.url + "/env", timeout=10).json()
    assert data["os_environ"]["FROM_DEFAULT_CONF"] == "1"
    assert data["cwd"] == str(APPS_DIR)


def test_missing_config_file_is_an_error(run, tmp_path):
    result = run("-c", tmp_path / "nope.conf.py", "hello:app", timeout=20)
    assert result.returncode == 1
    assert "nope.conf.py" in result.stderr


def test_config_file_that_raises_is_an_error(run, tmp_path):
    conf = tmp_path / "raises.conf.py"
    conf.write_text("workers = 2\nraise ValueError('config file exploded')\n")
    result = run("-c", conf, "hello:app", timeout=20)
    assert result.returncode == 1
    assert "Failed to read config file: %s" % conf in result.stderr
    assert "config file exploded" in result.stderr


# ---------------------------------------------------------------------------
# --check-config and --print-config.


def test_check_config_good(run, tmp_path):
    conf = tmp_path / "good.conf.py"
    conf.write_text("workers = 3\ntimeout = 12\n")
    result = run("-c", conf, "--check-config", "hello:app")
    assert result.returncode == 0, result.stderr
    # It checks and exits: no server starts.
    assert "Listening at" not in result.stderr
    assert "Booting worker" not in result.stderr


@pytest.mark.parametrize(
    "body, setting",
    [("workers = 'abc'\n", "workers"), ("timeout = -5\n", "timeout")],
)
def test_check_config_bad_value_names_the_setting(run, tmp_path, body, setting):
    conf = tmp_path / "bad.conf.py"
    conf.write_text(body)
    result = run("-c", conf, "--check-config", "hello:app")
    assert result.returncode == 1
    assert "Invalid value for %s" % setting in result.stderr


def test_check_config_bad_cli_value_names_the_option(run):
    result = run("--check-config", "-w", "abc", "hello:app")
    assert result.returncode == 2
    assert "--workers" in result.stderr


def test_check_config_loads_the_app(run):
    result = run("--check-config", "hello:nope")
    assert result.returncode == 1
    assert "Failed to find attribute 'nope' in 'hello'." in result.stderr


def test_print_config_lists_all_settings_sorted(run):
    result = run("--print-config", "hello:app")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    names = []
    columns = set()
    for line in lines:
        m = PRINT_LINE_RE.match(line)
        assert m, "unexpected --print-config line: %r" % line
        names.append(m.group(1))
        columns.add(len(m.group(1)) + len(m.group(2)))
    assert names == sorted(names)
    expected = ALL_SETTINGS if is_gunicorn() else sorted(ALL_SETTINGS + FERROCORN_SETTINGS)
    assert names == expected
    assert len([n for n in names if n not in FERROCORN_SETTINGS]) == 120
    # Values line up in one column.
    assert len(columns) == 1


def test_print_config_values(run):
    printed = printed_settings(run("--print-config", "hello:app").stdout)
    assert printed["bind"] == "['127.0.0.1:8000']"
    assert printed["workers"] == "1"
    assert printed["timeout"] == "30"
    assert printed["graceful_timeout"] == "30"
    assert printed["worker_class"] == "sync"
    assert printed["loglevel"] == "info"
    assert printed["accesslog"] == "None"
    assert printed["errorlog"] == "-"
    assert printed["preload_app"] == "False"
    assert printed["backlog"] == "2048"
    assert printed["access_log_format"] == '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
    assert printed["on_starting"] == "<OnStarting.on_starting()>"


def test_print_config_shows_cli_values(run):
    printed = printed_settings(
        run("--print-config", "-w", "4", "-b", "127.0.0.1:9", "-b", "unix:/tmp/x.sock",
            "--max-requests", "100", "--max-requests-jitter", "10", "--reuse-port",
            "--backlog", "64", "hello:app").stdout
    )
    assert printed["workers"] == "4"
    assert printed["bind"] == "['127.0.0.1:9', 'unix:/tmp/x.sock']"
    assert printed["max_requests"] == "100"
    assert printed["max_requests_jitter"] == "10"
    assert printed["reuse_port"] == "True"
    assert printed["backlog"] == "64"


# ---------------------------------------------------------------------------
# Help, version, bad options.


def test_help(run):
    result = run("-h")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: ")
    assert "[OPTIONS] [APP_MODULE]" in result.stdout
    for option in ("--bind", "--workers", "--worker-class", "--timeout", "--access-logfile",
                   "--check-config", "--print-config", "--max-requests-jitter"):
        assert option in result.stdout
    assert run("--help").stdout == result.stdout


@pytest.mark.parametrize("flag", ["--version", "-v"])
def test_version(run, flag):
    result = run(flag)
    assert result.returncode == 0
    assert re.fullmatch(r"\w+ \(version \d+\.\d+\.\d+\)\n", result.stdout), result.stdout


@pytest.mark.ferrocorn_only
def test_version_names_ferrocorn(run):
    result = run("--version")
    assert result.stdout.startswith("ferrocorn (version ")


def test_unknown_option_exits_2(run):
    result = run("--no-such-option", "hello:app")
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert "--no-such-option" in result.stderr


def test_invalid_option_in_cmd_args_env_exits(run):
    result = run("hello:app", env={"GUNICORN_CMD_ARGS": "--no-such-option"}, timeout=20)
    assert result.returncode == 2
    assert "--no-such-option" in result.stderr


@pytest.mark.ferrocorn_only
@pytest.mark.parametrize(
    "args, names",
    [
        (["--http-protocols", "h2"], ("http_protocols",)),
        (["--http2-max-frame-size", "20000"], ("http2_max_frame_size",)),
    ],
)
def test_unsupported_setting_fails_at_start(run, args, names):
    result = run("-b", "127.0.0.1:0", *args, "hello:app", timeout=20)
    assert result.returncode != 0
    assert result.elapsed < 10
    output = result.stderr + result.stdout
    # The message names the setting (or the value) that is refused.
    assert any(name in output for name in names), output
    assert "not supported" in output
    assert "Booting worker" not in output
