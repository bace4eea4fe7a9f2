"""Logging configured by the user: ``--log-config`` (an ini file for fileConfig),
``logconfig_dict`` (a config-file dict for dictConfig), ``--log-config-json``, their
precedence, their errors, and what a reload (HUP) and the access log do under them."""

import json
import re

import pytest
import requests

from conftest import wait_until
from logcfg_support import hup_then_after_and_final, file_text, lines_of, pythonjsonlogger_formatter_path, write_conf

pytestmark = pytest.mark.timeout(60)

ACCESS_LINE_RE = (
    r'127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
    r'"GET %s HTTP/1\.1" %d \d+ "-" "[^"]*"'
)
STARTING_RE = r"Starting (gunicorn|ferrocorn) \S+"


def access_line_re(path, status=200):
    return ACCESS_LINE_RE % (re.escape(path), status)


# A dictConfig dict that sends gunicorn.error to stderr with its own line shape and
# gunicorn.access to stdout, replacing every default section.
def reshaping_dict(error_format="DICT %(levelname)s <%(process)d> %(message)s",
                   access_format="ACC %(message)s"):
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": "WARNING", "handlers": []},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["err"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["acc"], "propagate": False},
        },
        "handlers": {
            "err": {"class": "logging.StreamHandler", "formatter": "error_shape",
                    "stream": "ext://sys.stderr"},
            "acc": {"class": "logging.StreamHandler", "formatter": "access_shape",
                    "stream": "ext://sys.stdout"},
        },
        "formatters": {
            "error_shape": {"format": error_format},
            "access_shape": {"format": access_format},
        },
    }


INI_TO_FILES = """\
[loggers]
keys=root, gunicorn.error, gunicorn.access

[handlers]
keys=error_file, access_file

[formatters]
keys=custom

[logger_root]
level=WARNING
handlers=

[logger_gunicorn.error]
level=INFO
handlers=error_file
propagate=0
qualname=gunicorn.error

[logger_gunicorn.access]
level=INFO
handlers=access_file
propagate=0
qualname=gunicorn.access

[handler_error_file]
class=logging.FileHandler
formatter=custom
args=('%(here)s/error-ini.log', 'a')

[handler_access_file]
class=FileHandler
formatter=custom
args=('%(here)s/access-ini.log',)

[formatter_custom]
format=INI|%(levelname)s|%(name)s|%(process)d|%(message)s
"""

INI_TO_STDERR = """\
[loggers]
keys=root, gunicorn.error

[handlers]
keys=err

[formatters]
keys=tagged

[logger_root]
level=WARNING
handlers=

[logger_gunicorn.error]
level=INFO
handlers=err
propagate=0
qualname=gunicorn.error

[handler_err]
class=StreamHandler
formatter=tagged
args=(sys.stderr,)

[formatter_tagged]
format=INI %(levelname)s %(message)s
"""


# ---------------------------------------------------------------------------
# --log-config (ini)


def test_log_config_ini_file_handlers_with_here_default(serve, tmp_path):
    confdir = tmp_path / "conf"
    confdir.mkdir()
    ini = confdir / "logging.ini"
    ini.write_text(INI_TO_FILES)
    error_log, access_log = confdir / "error-ini.log", confdir / "access-ini.log"
    # The "Listening at:" line goes to the file: the port comes from a socket handed over.
    server = serve("--log-config", ini, "logcfg_app:app", bind="fd", ready_path="/ready")
    requests.get(server.url + "/ini-probe?q=1", timeout=10)

    # `%(here)s` is the ini file's directory: both files are there.
    server.wait_for_log(r"Booting worker with pid: \d+", text=lambda: file_text(error_log))
    server.wait_for_log(r"GET /ini-probe", text=lambda: file_text(access_log))
    master = server.proc.pid
    (worker,) = [int(p) for p in re.findall(r"Booting worker with pid: (\d+)",
                                             file_text(error_log))]

    errors = lines_of(file_text(error_log))
    for line in errors:
        assert re.fullmatch(r"INI\|(INFO|WARNING|ERROR)\|gunicorn\.error\|\d+\|.*", line), line
    assert re.fullmatch(r"INI\|INFO\|gunicorn\.error\|%d\|%s" % (master, STARTING_RE), errors[0])
    assert "INI|INFO|gunicorn.error|%d|Listening at: http://127.0.0.1:%d (%d)" % (
        master, server.port, master) in errors
    assert "INI|INFO|gunicorn.error|%d|Booting worker with pid: %d" % (worker, worker) in errors

    accesses = lines_of(file_text(access_log))
    probe = [line for line in accesses if "/ini-probe" in line]
    assert len(probe) == 1, accesses
    assert re.fullmatch(
        r"INI\|INFO\|gunicorn\.access\|%d\|%s" % (
            worker, ACCESS_LINE_RE % (re.escape("/ini-probe?q=1"), 200)),
        probe[0],
    ), probe[0]
    # Nothing of the log reaches the standard streams any more.
    assert "Booting worker" not in server.stderr_text()
    assert "ini-probe" not in server.stdout_text()


# ---------------------------------------------------------------------------
# logconfig_dict


def test_logconfig_dict_reshapes_error_lines(serve, tmp_path):
    conf = write_conf(tmp_path / "conf.py", logconfig_dict=reshaping_dict())
    server = serve("-c", conf, "logcfg_app:app", ready_path="/ready")
    server.wait_for_log(r"Booting worker with pid: \d+")
    master = server.proc.pid
    (worker,) = server.worker_pids()
    errors = lines_of(server.stderr_text())
    for line in errors:
        assert re.fullmatch(r"DICT (INFO|WARNING|ERROR) <\d+> .*", line), line
    assert re.fullmatch(r"DICT INFO <%d> %s" % (master, STARTING_RE), errors[0])
    assert "DICT INFO <%d> Listening at: http://127.0.0.1:%d (%d)" % (
        master, server.port, master) in errors
    assert "DICT INFO <%d> Booting worker with pid: %d" % (worker, worker) in errors


def test_logconfig_dict_json_formatter_for_error_and_access(serve, tmp_path):
    formatter = pythonjsonlogger_formatter_path()
    if not formatter:
        pytest.skip("python-json-logger is not installed (requirements-test.txt)")
    config = reshaping_dict()
    config["formatters"] = {
        "json": {"()": formatter, "format": "%(levelname)s %(name)s %(message)s %(process)d"},
    }
    config["handlers"]["err"]["formatter"] = "json"
    config["handlers"]["acc"]["formatter"] = "json"
    conf = write_conf(tmp_path / "conf.py", logconfig_dict=config)
    server = serve("-c", conf, "logcfg_app:app", ready_path="/ready")
    requests.get(server.url + "/json-probe", timeout=10)
    assert requests.get(server.url + "/boom", timeout=10).status_code == 500
    server.wait_for_log(r"GET /boom HTTP/1\.1", text=server.stdout_text)
    server.wait_for_log(r"Error handling request")
    (worker,) = server.worker_pids()

    errors = [json.loads(line) for line in lines_of(server.stderr_text())]
    accesses = [json.loads(line) for line in lines_of(server.stdout_text())]
    for record in errors:
        assert record["name"] == "gunicorn.error", record
    for record in accesses:
        assert record["name"] == "gunicorn.access", record
        assert record["levelname"] == "INFO", record
        assert record["process"] == worker, record
    (booting,) = [r for r in errors if r["message"] == "Booting worker with pid: %d" % worker]
    assert (booting["levelname"], booting["process"]) == ("INFO", worker), booting
    (boom,) = [r for r in errors if r["message"].startswith("Error handling request")]
    assert boom["levelname"] == "ERROR"
    assert boom["message"] == "Error handling request GET /boom"
    assert "LogcfgBoom: deliberate failure from logcfg_app" in boom["exc_info"]
    (probe,) = [r for r in accesses if "/json-probe" in r["message"]]
    assert re.fullmatch(access_line_re("/json-probe"), probe["message"]), probe
    (boom_access,) = [r for r in accesses if "/boom" in r["message"]]
    assert re.fullmatch(access_line_re("/boom", 500), boom_access["message"]), boom_access


def test_dict_configured_access_logger_renders_the_access_format(serve, tmp_path):
    conf = write_conf(tmp_path / "conf.py", logconfig_dict=reshaping_dict(
        access_format="ACC [%(levelname)s] %(message)s"))
    server = serve("-c", conf, "--access-logformat", "A=%(h)s|%(s)s|%(r)s|%({x-probe}i)s",
                   "logcfg_app:app", ready_path="/ready")
    requests.get(server.url + "/fmt?x=1", headers={"X-Probe": "p1"}, timeout=10)
    (match,) = server.wait_for_log(r"^ACC .*/fmt.*$", text=server.stdout_text)
    assert match.group(0) == "ACC [INFO] A=127.0.0.1|200|GET /fmt?x=1 HTTP/1.1|p1"


def test_custom_formatter_sees_the_atoms_as_record_args(serve, tmp_path):
    config = reshaping_dict()
    config["formatters"]["access_shape"] = {"()": "logcfg_formatters.AtomsFormatter"}
    conf = write_conf(tmp_path / "conf.py", logconfig_dict=config)
    server = serve("-c", conf, "--access-logformat", "%(m)s %(U)s", "logcfg_app:app",
                   ready_path="/ready")
    requests.get(server.url + "/atoms/x?y=2", headers={"X-Probe": 'say "hi"'}, timeout=10)
    (match,) = server.wait_for_log(r"^ATOMS .*/atoms/x.*$", text=server.stdout_text)
    seen = json.loads(match.group(0)[len("ATOMS "):])
    assert seen == {
        "args_is_mapping": True,
        "message": "GET /atoms/x",
        "h": "127.0.0.1",
        "s": "200",
        "r": "GET /atoms/x?y=2 HTTP/1.1",
        "m": "GET",
        "U": "/atoms/x",
        # Header atoms are looked up in lower case, with double quotes escaped.
        "{x-probe}i": 'say \\"hi\\"',
    }, seen


def test_logconfig_dict_version_only_doubles_access_lines(serve, tmp_path):
    """Gunicorn's own handlers are installed before the dict is applied, and the dict is
    merged over CONFIG_DEFAULTS, whose gunicorn.access logger writes to stdout *and*
    propagates to the root logger, which writes to stdout too: every access line comes
    out twice on stdout, in the error-log shape; accesslog="-" adds no third copy, and
    error lines go to stderr and (through the root) stdout."""
    conf = write_conf(tmp_path / "conf.py", logconfig_dict={"version": 1}, accesslog="-")
    server = serve("-c", conf, "logcfg_app:app", ready_path="/ready")
    requests.get(server.url + "/twice", timeout=10)
    requests.get(server.url + "/after-twice", timeout=10)
    server.wait_for_log(r"GET /after-twice", count=2, text=server.stdout_text)
    (worker,) = server.worker_pids()
    out = lines_of(server.stdout_text())
    twice = [line for line in out if "GET /twice" in line]
    assert len(twice) == 2, out
    for line in twice:
        assert re.fullmatch(
            r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[%d\] \[INFO\] %s"
            % (worker, access_line_re("/twice")),
            line,
        ), line
    booting = "[INFO] Booting worker with pid: %d" % worker
    assert sum(line.endswith(booting) for line in out) == 1, out
    assert sum(line.endswith(booting) for line in lines_of(server.stderr_text())) == 1
    assert "GET /twice" not in server.stderr_text()


def test_hup_with_logconfig_dict_does_not_duplicate_lines(serve, tmp_path):
    conf = write_conf(tmp_path / "conf.py", logconfig_dict=reshaping_dict())
    server = serve("-c", conf, "logcfg_app:app", ready_path="/before")
    server.wait_for_log(r"GET /before", text=server.stdout_text)
    old, new = hup_then_after_and_final(server)

    out = lines_of(server.stdout_text())
    after = [line for line in out if "GET /after" in line]
    assert len(after) == 1, out
    assert re.fullmatch(r"ACC %s" % access_line_re("/after"), after[0]), after[0]
    errors = lines_of(server.stderr_text())
    for line in errors:
        assert re.fullmatch(r"DICT (INFO|WARNING|ERROR) <\d+> .*", line), line
    booted = [line for line in errors if line.endswith("Booting worker with pid: %d" % new)]
    assert booted == ["DICT INFO <%d> Booting worker with pid: %d" % (new, new)], errors


# ---------------------------------------------------------------------------
# --log-config-json, and which of the three forms wins


def test_log_config_json_file(serve, tmp_path):
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(reshaping_dict(error_format="JSONFILE %(levelname)s %(message)s",
                                              access_format="JACC %(message)s")))
    server = serve("--log-config-json", path, "logcfg_app:app", ready_path="/ready")
    requests.get(server.url + "/from-json", timeout=10)
    (match,) = server.wait_for_log(r"^JACC .*/from-json.*$", text=server.stdout_text)
    assert re.fullmatch(r"JACC %s" % access_line_re("/from-json"), match.group(0))
    server.wait_for_log(r"Booting worker with pid: \d+")
    errors = lines_of(server.stderr_text())
    for line in errors:
        assert re.fullmatch(r"JSONFILE (INFO|WARNING|ERROR) .*", line), line
    (worker,) = server.worker_pids()
    assert "JSONFILE INFO Booting worker with pid: %d" % worker in errors


@pytest.mark.parametrize("given, winner", [
    (("dict", "json", "ini"), "DICT"),
    (("dict", "ini"), "DICT"),
    (("json", "ini"), "JSON"),
])
def test_precedence_dict_over_json_over_ini(serve, tmp_path, given, winner):
    args = []
    if "dict" in given:
        conf = write_conf(tmp_path / "conf.py",
                          logconfig_dict=reshaping_dict(error_format="DICT %(message)s"))
        args += ["-c", conf]
    if "json" in given:
        path = tmp_path / "logging.json"
        path.write_text(json.dumps(reshaping_dict(error_format="JSON %(message)s")))
        args += ["--log-config-json", path]
    if "ini" in given:
        ini = tmp_path / "logging.ini"
        ini.write_text(INI_TO_STDERR)
        args += ["--log-config", ini]
    server = serve(*args, "logcfg_app:app", ready_path="/ready")
    server.wait_for_log(r"Booting worker with pid: \d+")
    errors = lines_of(server.stderr_text())
    assert errors
    for line in errors:
        assert line.startswith(winner + " "), errors


def test_missing_log_config_json_is_ignored(serve, tmp_path):
    missing = tmp_path / "nope.json"
    server = serve("--log-config-json", missing, "--access-logfile", "-", "logcfg_app:app",
                   ready_path="/ready")
    requests.get(server.url + "/still-logged", timeout=10)
    server.wait_for_log(r"GET /still-logged", text=server.stdout_text)
    # Gunicorn's own handlers stay: the standard shapes on stderr and stdout.
    (worker,) = server.worker_pids()
    assert (worker, "INFO", "Booting worker with pid: %d" % worker) in server.log_lines()
    (line,) = [ln for ln in lines_of(server.stdout_text()) if "/still-logged" in ln]
    assert re.fullmatch(access_line_re("/still-logged"), line), line


def test_missing_log_config_json_also_turns_off_log_config(serve, tmp_path):
    """The json setting is checked before the ini one (an if/elif on the setting, not on
    the file): a named but missing json file means the ini file is not applied either."""
    ini = tmp_path / "logging.ini"
    ini.write_text(INI_TO_STDERR)
    server = serve("--log-config-json", tmp_path / "nope.json", "--log-config", ini,
                   "logcfg_app:app", ready_path="/ready")
    server.wait_for_log(r"Booting worker with pid: \d+")
    assert "INI " not in server.stderr_text()
    (worker,) = server.worker_pids()
    assert (worker, "INFO", "Booting worker with pid: %d" % worker) in server.log_lines()


# ---------------------------------------------------------------------------
# Errors


def test_missing_log_config_file_fails(run, tmp_path):
    missing = tmp_path / "nope.ini"
    result = run("-b", "127.0.0.1:0", "--log-config", missing, "logcfg_app:app")
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == "Error: Error: log config '%s' not found" % missing
    assert result.stdout == ""


def test_log_config_json_with_bad_json_fails(run, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{bad")
    result = run("-b", "127.0.0.1:0", "--log-config-json", path, "logcfg_app:app")
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == (
        "Error: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    )


@pytest.mark.parametrize("config, message", [
    ({"version": 1, "handlers": {"broken": {"class": "no.such.Handler"}}},
     "Error: Unable to configure handler 'broken'"),
    ({"version": 2}, "Error: Unsupported version: 2"),
    ({"loggers": {"gunicorn.error": {"handlers": ["missing_handler"]}}},
     "Error: Unable to configure logger 'gunicorn.error'"),
])
def test_bad_logconfig_dict_fails(run, tmp_path, config, message):
    conf = write_conf(tmp_path / "conf.py", logconfig_dict=config)
    result = run("-c", conf, "-b", "127.0.0.1:0", "logcfg_app:app")
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == message


def test_bad_log_config_json_content_fails(run, tmp_path):
    path = tmp_path / "logging.json"
    path.write_text(json.dumps({"version": 1,
                                "handlers": {"broken": {"class": "no.such.Handler"}}}))
    result = run("-b", "127.0.0.1:0", "--log-config-json", path, "logcfg_app:app")
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == "Error: Unable to configure handler 'broken'"


def test_started_server_with_ini_keeps_serving(serve, tmp_path):
    """The ini's file handler is appended to while requests keep coming (no reopen needed)."""
    confdir = tmp_path / "c"
    confdir.mkdir()
    ini = confdir / "logging.ini"
    ini.write_text(INI_TO_FILES)
    server = serve("--log-config", ini, "logcfg_app:app", bind="fd", ready_path="/ready")
    for i in range(3):
        requests.get(server.url + "/n%d" % i, timeout=10)
    wait_until(lambda: "/n2" in file_text(confdir / "access-ini.log"), what="third access line")
    paths = re.findall(r'"GET (/\S*) HTTP', file_text(confdir / "access-ini.log"))
    assert paths == ["/ready", "/n0", "/n1", "/n2"]
