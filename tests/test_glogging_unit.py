"""Unit tests of the Python-mode logger (ferrocorn.glogging, ferrocorn.instrument.statsd).

No server is started: a Logger is built on a stand-in cfg namespace, and its handlers,
lines and datagrams are examined directly. Expected values are Gunicorn 27's, worked out
by hand from its behaviour (this suite's virtualenv has no gunicorn to compare with).
"""

import base64
import datetime
import fcntl
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

# The Python-mode logger is ferrocorn's own module; a Gunicorn-mode run has no ferrocorn.
pytest.importorskip("ferrocorn.glogging")

import ferrocorn
from ferrocorn import glogging
from ferrocorn.glogging import CONFIG_DEFAULTS, Logger, SafeAtoms, load_logger_class
from ferrocorn.glogging import parse_syslog_address
from ferrocorn.instrument.statsd import Statsd

from glogging_support import (  # noqa: F401  (isolated_logging is an autouse fixture)
    Capture, fake_exchange, isolated_logging, make_cfg, ours, udp_collector,
)


# -- setup -------------------------------------------------------------------------------

def test_default_setup_installs_stderr_handler_only():
    log = Logger(make_cfg())
    assert log.error_log.name == "gunicorn.error" and not log.error_log.propagate
    assert log.access_log.name == "gunicorn.access" and not log.access_log.propagate
    (h,) = log.error_log.handlers
    assert type(h) is logging.StreamHandler and h.stream is sys.stderr and h._gunicorn
    assert h.formatter._fmt == "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
    assert h.formatter.datefmt == "[%Y-%m-%d %H:%M:%S %z]"
    assert log.access_log.handlers == []
    assert log.error_log.level == logging.INFO and log.access_log.level == logging.INFO
    assert log.error_handlers == [] and log.access_handlers == [] and log.logfile is None
    assert not log.access_log_enabled


@pytest.mark.parametrize("name,level", [
    ("debug", logging.DEBUG), ("INFO", logging.INFO), ("warning", logging.WARNING),
    ("error", logging.ERROR), ("critical", logging.CRITICAL), ("bogus", logging.INFO),
])
def test_loglevel(name, level):
    log = Logger(make_cfg(loglevel=name))
    assert log.loglevel == level and log.error_log.level == level


def test_handlers_and_lines(tmp_path):
    log = Logger(make_cfg(accesslog="-"))
    (h,) = log.access_log.handlers
    assert h.stream is sys.stdout and h.formatter._fmt == "%(message)s"
    path = tmp_path / "access.log"
    log.setup(make_cfg(accesslog=str(path), errorlog=str(tmp_path / "error.log")))
    (h,) = log.access_log.handlers
    assert isinstance(h, logging.FileHandler) and h.baseFilename == str(path)
    (e,) = log.error_log.handlers
    assert isinstance(e, logging.FileHandler)
    log.warning("careful %s", "now")
    e.flush()
    line = (tmp_path / "error.log").read_text().strip()
    assert line.endswith("[%d] [WARNING] careful now" % os.getpid())
    assert line.startswith("[") and line[26] == "]"

    bad = tmp_path / "missing-dir" / "error.log"
    with pytest.raises(RuntimeError, match=r"^Error: '.*error\.log' isn't writable \["):
        Logger(make_cfg(errorlog=str(bad)))


def test_repeated_setup_does_not_stack(tmp_path):
    cfg = make_cfg(accesslog="-", syslog=True, syslog_addr="udp://127.0.0.1:9")
    log = Logger(cfg)
    user_handler = logging.NullHandler()
    log.error_log.addHandler(user_handler)
    for _ in range(3):
        log.setup(cfg)
    assert len(ours(log.error_log)) == 2 and len(ours(log.access_log)) == 2
    assert user_handler in log.error_log.handlers
    log.setup(make_cfg())
    assert len(ours(log.error_log)) == 1 and ours(log.access_log) == []
    assert user_handler in log.error_log.handlers
    # And later calls read the cfg object setup was given last.
    cfg = make_cfg(accesslog="-", loglevel="debug")
    log.setup(cfg)
    assert log.cfg is cfg and log.access_log_enabled and log.loglevel == logging.DEBUG


@pytest.mark.parametrize("overrides,enabled", [
    ({}, False),
    ({"accesslog": "-"}, True),
    ({"logconfig": "x.ini"}, True),
    ({"logconfig_dict": {"root": {}}}, True),
    ({"logconfig_json": "x.json"}, True),
    ({"syslog": True}, True),
    ({"syslog": True, "disable_redirect_access_to_syslog": True}, False),
])
def test_access_log_enabled(overrides, enabled):
    log = Logger.__new__(Logger)
    log.cfg = make_cfg(**overrides)
    assert log._compute_access_log_enabled() is enabled
    assert log.access_log_enabled is enabled


# -- syslog ------------------------------------------------------------------------------

@pytest.mark.parametrize("addr,expected", [
    ("unix:///dev/log", (None, "/dev/log")),
    ("unix:///dev/log#dgram", (socket.SOCK_DGRAM, "/dev/log")),
    ("unix:///dev/log#stream", (None, "/dev/log")),
    ("udp://Syslog.Example", (socket.SOCK_DGRAM, ("syslog.example", 514))),
    ("udp://localhost:5514", (socket.SOCK_DGRAM, ("localhost", 5514))),
    ("udp://", (socket.SOCK_DGRAM, ("localhost", 514))),
    ("tcp://[::1]:601", (socket.SOCK_STREAM, ("::1", 601))),
    ("tcp://[FE80::1]", (socket.SOCK_STREAM, ("fe80::1", 514))),
])
def test_parse_syslog_address(addr, expected):
    assert parse_syslog_address(addr) == expected


def test_syslog_errors():
    with pytest.raises(RuntimeError, match=r"^invalid syslog address$"):
        parse_syslog_address("localhost:514")
    with pytest.raises(RuntimeError) as err:
        parse_syslog_address("udp://localhost:abc")
    assert str(err.value) == "'abc' is not a valid port number."
    with pytest.raises(RuntimeError, match=r"^unknown facility name$"):
        Logger(make_cfg(syslog=True, syslog_facility="nope"))
    with pytest.raises(RuntimeError, match=r"^invalid syslog address$"):
        Logger(make_cfg(syslog=True, syslog_addr="bogus://x"))
    # Both wrong: the facility is reported.
    with pytest.raises(RuntimeError, match=r"^unknown facility name$"):
        Logger(make_cfg(syslog=True, syslog_facility="nope", syslog_addr="bogus://x"))


def test_syslog_wire_format():
    with udp_collector() as collector:
        port = collector.getsockname()[1]
        log = Logger(make_cfg(syslog=True, syslog_addr="udp://127.0.0.1:%d" % port,
                              syslog_facility="LOCAL0"))
        log.info("Starting %s", "up")
        assert collector.recv(4096) == (
            b"<134>gunicorn.myapp.main.error: [%d] Starting up\x00" % os.getpid())
        log.setup(make_cfg(syslog=True, syslog_addr="udp://127.0.0.1:%d" % port,
                           syslog_prefix="pfx", disable_redirect_access_to_syslog=True))
        assert ours(log.access_log) == [] and log.access_log_enabled is False
        log.error("boom")
        assert collector.recv(4096) == b"<11>gunicorn.pfx.error: [%d] boom\x00" % os.getpid()


# -- logging configurations --------------------------------------------------------------

def write_ini(path, logger_name, extra_handler_args="()"):
    path.write_text(textwrap.dedent("""\
        [loggers]
        keys=root,marker
        [handlers]
        keys=file
        [formatters]
        keys=plain
        [logger_root]
        level=WARNING
        handlers=
        [logger_marker]
        level=DEBUG
        handlers=file
        qualname=%s
        [handler_file]
        class=FileHandler
        formatter=plain
        args=%s
        [formatter_plain]
        format=%%(name)s %%(message)s
        """) % (logger_name, extra_handler_args))


def marker_dict(name):
    return {
        "version": 1,
        "root": {"level": "INFO", "handlers": []},
        "handlers": {"m": {"class": "logging.NullHandler"}},
        "loggers": {name: {"handlers": ["m"], "level": "DEBUG"}},
    }


def test_dict_beats_json_and_ini(tmp_path):
    js = tmp_path / "log.json"
    js.write_text(json.dumps(marker_dict("marker.json")))
    ini = tmp_path / "log.ini"
    write_ini(ini, "marker.ini", "('%(here)s/ini.log', 'a')")
    Logger(make_cfg(logconfig_dict=marker_dict("marker.dict"), logconfig_json=str(js),
                    logconfig=str(ini)))
    assert logging.getLogger("marker.dict").handlers
    assert not logging.getLogger("marker.json").handlers
    assert not logging.getLogger("marker.ini").handlers

    Logger(make_cfg(logconfig_json=str(js), logconfig=str(ini)))
    assert logging.getLogger("marker.json").handlers
    assert not logging.getLogger("marker.ini").handlers


def test_dict_is_merged_over_defaults():
    log = Logger(make_cfg(accesslog="-", logconfig_dict={"version": 1, "bad": 1}))
    # The defaults' loggers replaced gunicorn's handlers, and propagate again.
    (h,) = log.error_log.handlers
    assert not getattr(h, "_gunicorn", False) and h.stream is sys.stderr
    assert h.formatter._fmt == CONFIG_DEFAULTS["formatters"]["generic"]["format"]
    assert log.error_log.propagate and log.access_log.propagate
    assert logging.getLogger().handlers[0].stream is sys.stdout

    # A top-level key given replaces the default one whole: no "gunicorn.error" entry
    # here, so it keeps what setup gave it.
    log = Logger(make_cfg(logconfig_dict=marker_dict("marker.dict")))
    assert len(ours(log.error_log)) == 1 and not log.error_log.propagate


@pytest.mark.parametrize("config,message", [
    ({"version": 2}, "Unsupported version: 2"),
    ({"version": 1, "handlers": {"h": {"class": "logging.NoSuchHandler"}}},
     "Unable to configure handler 'h'"),
    ({"version": 1, "root": {"level": "BOGUS"}}, "Unable to configure root logger"),
    # The merge is shallow: "handlers" given whole drops the "console" root refers to.
    ({"version": 1, "handlers": {}}, "Unable to configure logger 'gunicorn.error'"),
])
def test_dict_errors(config, message):
    with pytest.raises(RuntimeError) as err:
        Logger(make_cfg(logconfig_dict=config))
    assert str(err.value) == message
    assert isinstance(err.value.__cause__, ValueError)


def test_json(tmp_path):
    missing = tmp_path / "missing.json"
    # A missing json file does nothing, and the ini setting is not consulted instead.
    log = Logger(make_cfg(logconfig_json=str(missing), logconfig=str(tmp_path / "x.ini")))
    assert len(ours(log.error_log)) == 1

    bad = tmp_path / "bad.json"
    bad.write_text("{bad json")
    with pytest.raises(RuntimeError) as err:
        Logger(make_cfg(logconfig_json=str(bad)))
    assert str(err.value) == ("Expecting property name enclosed in double quotes: "
                              "line 1 column 2 (char 1)")

    badcls = tmp_path / "badcls.json"
    badcls.write_text('{"version": 1, "handlers": {"x": {"class": "nope.Nope"}}}')
    with pytest.raises(RuntimeError, match=r"^Unable to configure handler 'x'$"):
        Logger(make_cfg(logconfig_json=str(badcls)))


def test_ini(tmp_path):
    ini = tmp_path / "log.ini"
    write_ini(ini, "marker.ini", "('%(here)s/ini.log', 'a')")
    Logger(make_cfg(logconfig=str(ini)))
    marker = logging.getLogger("marker.ini")
    marker.info("from ini")
    marker.handlers[0].flush()
    assert (tmp_path / "ini.log").read_text() == "marker.ini from ini\n"
    assert not logging.getLogger("gunicorn.error").disabled

    with pytest.raises(RuntimeError) as err:
        Logger(make_cfg(logconfig=str(tmp_path / "nope.ini")))
    assert str(err.value) == "Error: log config '%s' not found" % (tmp_path / "nope.ini")


# -- log calls ---------------------------------------------------------------------------

def test_log_methods():
    log = Logger(make_cfg(loglevel="debug"))
    cap = Capture()
    log.error_log.addHandler(cap)
    log.critical("c")
    log.error("e %d", 1)
    log.warning("w")
    log.info("i")
    log.debug("d")
    log.log("warning", "named")
    log.log("NoSuchLevel", "fallback")
    log.log(35, "number")
    try:
        raise ValueError("x")
    except ValueError:
        log.exception("exc")
    assert cap.messages() == [
        (50, "c"), (40, "e 1"), (30, "w"), (20, "i"), (10, "d"), (30, "named"),
        (20, "fallback"), (35, "number"), (40, "exc"),
    ]
    assert cap.records[-1].exc_info[0] is ValueError


# -- atoms and the access line -----------------------------------------------------------

class FixedNow(Logger):
    def now(self):
        return "[22/Nov/2026:02:55:45 +0000]"


def test_atoms():
    resp, req, environ = fake_exchange()
    log = FixedNow(make_cfg())
    atoms = log.atoms(resp, req, environ, datetime.timedelta(seconds=2, microseconds=345678))
    expected = {
        "h": "10.0.0.7", "l": "-", "u": "alice", "t": "[22/Nov/2026:02:55:45 +0000]",
        "r": "GET /p%20q?x=1 HTTP/1.1", "s": "404", "m": "GET", "U": "/p q", "q": "x=1",
        "H": "HTTP/1.1", "b": "1234", "B": 1234, "f": "http://ref/",
        "a": 'agent "quoted"', "T": 2, "D": 2345678, "M": 2345, "L": "2.345678",
        "p": "<%d>" % os.getpid(),
        "{host}i": "example.com", "{x-dup}i": "second",
        "{content-type}o": "text/html", "{x-trace}o": 'a"b',
    }
    expected.update({"{%s}e" % k.lower(): v for k, v in environ.items()})
    assert atoms == expected
    datetime.datetime.strptime(Logger(make_cfg()).now(), "[%d/%b/%Y:%H:%M:%S %z]")


def test_atoms_sent_zero_none_and_dict_headers():
    resp, req, environ = fake_exchange(sent=0)
    log = Logger(make_cfg())
    td = datetime.timedelta(microseconds=999)
    atoms = log.atoms(resp, req, environ, td)
    assert atoms["b"] == "0" and atoms["B"] == 0
    assert (atoms["T"], atoms["D"], atoms["M"], atoms["L"]) == (0, 999, 0, "0.000999")
    resp.sent = None
    resp.headers = {"Server": "x"}
    atoms = log.atoms(resp, {"Accept": "*/*"}, environ, td)
    assert atoms["b"] == "-" and atoms["B"] is None
    assert atoms["{server}o"] == "x" and atoms["{accept}i"] == "*/*"


def test_atoms_without_environ_use_the_request():
    resp, req, _ = fake_exchange()
    atoms = Logger(make_cfg()).atoms(resp, req, {}, datetime.timedelta(0))
    assert atoms["r"] == "GET /p%20q?x=1 HTTP/1.1"
    assert (atoms["m"], atoms["q"], atoms["H"]) == ("GET", "x=1", "HTTP/1.1")
    assert atoms["U"] is None and atoms["h"] == "-" and atoms["u"] == "-"
    assert atoms["{host}i"] == "example.com"


@pytest.mark.parametrize("header,user", [
    ("Basic " + base64.b64encode(b"bob:pw").decode(), "bob"),
    ("basic   " + base64.b64encode(b"bob").decode() + "  ", "bob"),
    ("Basicx " + base64.b64encode(b"eve:pw").decode(), "eve"),
    ("Bearer abc", None),
    ("Basic", None),
    ("Basic " + base64.b64encode(b"\xff:pw").decode(), None),
    ("Basic !!!", ""),
    ("Basic a", None),
])
def test_get_user(header, user):
    log = Logger(make_cfg(loglevel="debug"))
    cap = Capture()
    log.error_log.addHandler(cap)
    assert log._get_user({"HTTP_AUTHORIZATION": header}) == user
    if header == "Basic a":
        assert cap.messages()[0][1].startswith("Couldn't get username: ")


def test_safe_atoms():
    atoms = SafeAtoms({"a": 'say "hi"', "B": 12, "{x-foo}i": 'v"1', "n": None})
    assert atoms["a"] == 'say \\"hi\\"' and atoms["B"] == 12 and atoms["n"] is None
    assert atoms["{X-Foo}i"] == 'v\\"1'
    assert atoms["missing"] == "-" and atoms["{Nope}o"] == "-"
    assert "%(a)s|%({X-FOO}i)s|%(zz)s|%(B)d" % atoms == 'say \\"hi\\"|v\\"1|-|12'


def test_access_line(tmp_path):
    path = tmp_path / "access.log"
    log = FixedNow(make_cfg(accesslog=str(path)))
    resp, req, environ = fake_exchange()
    log.access(resp, req, environ, datetime.timedelta(seconds=1))
    log.access_log.handlers[0].flush()
    assert path.read_text() == (
        '10.0.0.7 - alice [22/Nov/2026:02:55:45 +0000] "GET /p%20q?x=1 HTTP/1.1" 404 1234 '
        '"http://ref/" "agent \\"quoted\\""\n')
    # With the access log off, nothing reaches the logger at all.
    log.setup(make_cfg())
    cap = Capture()
    log.access_log.addHandler(cap)
    log.access(resp, req, environ, datetime.timedelta(0))
    assert cap.records == []


def test_access_error_goes_to_error_log():
    class Broken(logging.Handler):
        def emit(self, record):
            raise RuntimeError("handler broke")

    log = Logger(make_cfg(accesslog="-", access_log_format="%(h)s"))
    log.access_log.handlers[:] = [Broken()]
    cap = Capture()
    log.error_log.addHandler(cap)
    resp, req, environ = fake_exchange()
    log.access(resp, req, environ, datetime.timedelta(0))
    ((level, text),) = cap.messages()
    assert level == logging.ERROR and "Traceback" in text and "handler broke" in text


# -- files -------------------------------------------------------------------------------

def test_reopen_files(tmp_path):
    path = tmp_path / "error.log"
    log = Logger(make_cfg(errorlog=str(path)))
    log.info("before")
    path.rename(tmp_path / "error.log.1")
    log.reopen_files()
    log.info("after")
    log.error_log.handlers[0].flush()
    assert "before" in (tmp_path / "error.log.1").read_text()
    assert "before" not in path.read_text() and "after" in path.read_text()


def test_close_on_exec(tmp_path):
    log = Logger(make_cfg(errorlog=str(tmp_path / "error.log")))
    fd = log.error_log.handlers[0].stream.fileno()
    fcntl.fcntl(fd, fcntl.F_SETFD, 0)
    log.close_on_exec()
    assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC


def test_capture_output_in_subprocess(tmp_path):
    # dup2 over descriptors 1 and 2 would swallow this test process's own output.
    path = tmp_path / "error.log"
    script = textwrap.dedent("""
        import os, sys, types
        from ferrocorn.glogging import Logger
        path = sys.argv[1]
        cfg = types.SimpleNamespace(
            errorlog=path, accesslog=None, loglevel="info", access_log_format="",
            logconfig=None, logconfig_dict={}, logconfig_json=None, syslog=False,
            syslog_addr="", syslog_prefix=None, syslog_facility="user",
            disable_redirect_access_to_syslog=False, capture_output=True,
            proc_name="x", user=os.getuid(), group=os.getgid())
        log = Logger(cfg)
        print("printed", flush=True)
        os.write(2, b"raw stderr\\n")
        os.rename(path, path + ".1")
        log.reopen_files()
        os.write(1, b"after reopen\\n")
        log.setup(cfg)
        os.write(1, b"after setup\\n")
    """)
    env = dict(os.environ, PYTHONPATH=str(Path(ferrocorn.__file__).parent.parent))
    proc = subprocess.run([sys.executable, "-c", script, str(path)], env=env,
                          capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"" and proc.stderr == b""
    assert (tmp_path / "error.log.1").read_text() == "printed\nraw stderr\n"
    assert path.read_text() == "after reopen\nafter setup\n"


# -- load_logger_class -------------------------------------------------------------------

@pytest.mark.parametrize("uri,cls", [
    ("simple", Logger), ("gunicorn.glogging.Logger", Logger), ("glogging.Logger", Logger),
    ("ferrocorn.glogging.Logger", Logger), ("egg:gunicorn#simple", Logger), ("#simple", Logger),
    ("gunicorn.instrument.statsd.Statsd", Statsd), ("ferrocorn.instrument.statsd.Statsd", Statsd),
])
def test_load_logger_class_aliases(uri, cls):
    assert load_logger_class(uri) is cls


def test_load_logger_class_import_and_install(monkeypatch):
    mod = types.ModuleType("fake_loggers_mod")

    class Installed(Logger):
        installs = 0

        @classmethod
        def install(cls):
            cls.installs += 1

    mod.Installed = Installed
    monkeypatch.setitem(sys.modules, "fake_loggers_mod", mod)
    assert load_logger_class("fake_loggers_mod.Installed") is Installed
    assert load_logger_class("fake_loggers_mod:Installed") is Installed
    assert Installed.installs == 2
    assert load_logger_class(Installed) is Installed
    assert load_logger_class("ferrocorn.glogging:Logger") is Logger


@pytest.mark.parametrize("uri,shown,cause", [
    ("nope.Nope", "nope.Nope", "ModuleNotFoundError: No module named 'nope'"),
    ("os.Nope", "os.Nope", "AttributeError"),
    ("nope", "nope", "ImportError: Entry point ('gunicorn.loggers', 'nope') not found"),
    ("#nope", "nope", "Entry point"),
])
def test_load_logger_class_errors(uri, shown, cause):
    with pytest.raises(RuntimeError) as err:
        load_logger_class(uri)
    text = str(err.value)
    assert text.startswith("class uri %r invalid or not found: \n\n[Traceback" % shown)
    assert cause in text and text.endswith("\n]")


def test_loggers_lists_placeholders():
    logging.getLogger("glogging_unit.child.grandchild")
    names = {log.name for log in glogging.loggers()}
    assert {"glogging_unit", "glogging_unit.child", "gunicorn.error"} <= names
    assert all(isinstance(log, logging.Logger) for log in glogging.loggers())
