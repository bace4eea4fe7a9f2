"""Syslog: ``--log-syslog`` with ``--log-syslog-to`` (udp, tcp, unix), the record's wire
format (PRI, tag, pid, NUL), the prefix and facility, access records, and the errors.

The receivers run in the test process (tests/logcfg_support.py). Gunicorn's records are
``<PRI>gunicorn.<prefix>.<error|access>: [<pid>] <message>`` plus a NUL byte: no timestamp
and no host name."""

import re
import signal
import socket

import pytest
import requests

from conftest import http_get, raw_request, wait_until
from logcfg_support import SyslogReceiver

pytestmark = pytest.mark.timeout(60)

SEVERITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}
FACILITY = {"user": 1, "daemon": 3, "local0": 16, "local7": 23, "auth": 4}
ACCESS_RE = (
    r'127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
    r'"GET %s HTTP/1\.1" %d \d+ "-" "[^"]*"'
)


@pytest.fixture
def receiver(tmp_path):
    made = []

    def make(kind, suffix=""):
        path = tmp_path / ("sl%d.sock" % len(made)) if kind.startswith("unix") else None
        rec = SyslogReceiver(kind, path=path, suffix=suffix)
        made.append(rec)
        return rec

    yield make
    for rec in made:
        rec.close()


def syslog_args(rec, *extra):
    return ["--log-syslog", "--log-syslog-to", rec.address, *extra]


def pri(facility, severity):
    return FACILITY[facility] * 8 + SEVERITY[severity]


def assert_record(record, pri_value, tag, pid, message):
    expected = "<%d>%s: [%d] %s\x00" % (pri_value, tag, pid, message)
    assert record.text == expected, (record.raw, expected)


# ---------------------------------------------------------------------------
# Wire format per transport


def test_udp_records_pri_tag_pid_and_nul(serve, receiver):
    rec = receiver("udp")
    server = serve(*syslog_args(rec, "--log-syslog-facility", "local0", "-n", "my:app"),
                   "logcfg_app:app", ready_path="/ready")
    master = server.proc.pid
    (worker,) = server.worker_pids()
    (booting,) = rec.wait_for(r"\ABooting worker with pid: %d\Z" % worker)
    assert_record(booting, 134, "gunicorn.my.app.error", worker,
                  "Booting worker with pid: %d" % worker)
    (listening,) = rec.wait_for(r"\AListening at: ")
    assert_record(listening, 134, "gunicorn.my.app.error", master,
                  "Listening at: http://127.0.0.1:%d (%d)" % (server.port, master))
    (starting,) = rec.wait_for(r"\AStarting ")
    assert re.fullmatch(r"<134>gunicorn\.my\.app\.error: \[%d\] Starting (gunicorn|ferrocorn) "
                        r"\S+\x00" % master, starting.text), starting.raw
    # Every record has the shape; the error log keeps going to stderr as well.
    for record in rec.records():
        assert record.ok, record
    assert (worker, "INFO", "Booting worker with pid: %d" % worker) in server.log_lines()


def test_udp_access_records_at_info_with_the_access_format(serve, receiver):
    rec = receiver("udp")
    server = serve(*syslog_args(rec, "-n", "acc"), "--access-logformat", "%(m)s %(U)s %(s)s",
                   "logcfg_app:app", ready_path="/ready")
    (worker,) = server.worker_pids()
    requests.get(server.url + "/fmt?x=1", timeout=10)
    (record,) = rec.wait_for(r"\AGET /fmt ")
    # user + info = 14; no access log was asked for, the access records still come.
    assert_record(record, pri("user", "info"), "gunicorn.acc.access", worker, "GET /fmt 200")
    assert "/fmt" not in server.stdout_text()


def test_udp_default_access_format(serve, receiver):
    rec = receiver("udp")
    server = serve(*syslog_args(rec, "-n", "acc", "--log-syslog-facility", "local7"),
                   "logcfg_app:app", ready_path="/ready")
    (worker,) = server.worker_pids()
    requests.get(server.url + "/default-format", timeout=10)
    (record,) = rec.wait_for(r"GET /default-format ")
    assert record.pri == pri("local7", "info")
    assert record.tag == "gunicorn.acc.access"
    assert record.pid == worker
    assert re.fullmatch(ACCESS_RE % ("/default-format", 200), record.message), record.raw


def test_tcp_warning_and_nul_separated_records(serve, receiver):
    rec = receiver("tcp")
    server = serve(*syslog_args(rec, "-n", "tcp:svc"), "logcfg_app:app", ready_path="/ready")
    (worker,) = server.worker_pids()
    # A request line that does not parse is logged at warning.
    raw_request(server.address, b"GARBAGE\r\n\r\n")
    (record,) = rec.wait_for(r"\AInvalid request from ip=127\.0\.0\.1: ")
    assert record.pri == 12  # user + warning
    assert record.tag == "gunicorn.tcp.svc.error"
    assert record.pid == worker
    # The stream carries one record after another, each ended by a NUL.
    rec.wait_for(r"\ABooting worker with pid: %d\Z" % worker)
    records = rec.records()
    assert len(records) >= 4
    for record in records:
        assert record.ok, record


def test_tcp_exception_traceback_is_one_record(serve, receiver):
    rec = receiver("tcp")
    server = serve(*syslog_args(rec, "-n", "tb", "--log-syslog-facility", "daemon"),
                   "logcfg_app:app", ready_path="/ready")
    (worker,) = server.worker_pids()
    assert requests.get(server.url + "/boom", timeout=10).status_code == 500
    (record,) = rec.wait_for(r"\AError handling request")
    assert record.pri == 27  # daemon + error
    assert record.tag == "gunicorn.tb.error"
    assert record.pid == worker
    lines = record.message.split("\n")
    assert lines[0] == "Error handling request GET /boom"
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "logcfg_app.LogcfgBoom: deliberate failure from logcfg_app"
    # No piece of the traceback arrived as a record of its own.
    (access,) = rec.wait_for(r"GET /boom HTTP")
    assert access.pri == pri("daemon", "info")
    assert re.fullmatch(ACCESS_RE % ("/boom", 500), access.message), access.raw
    for other in rec.records():
        assert other.ok, other
        if other is not record:
            assert "Traceback" not in other.text and "LogcfgBoom" not in other.text, other


@pytest.mark.parametrize("suffix", ["#dgram", ""])
def test_unix_datagram(serve, receiver, suffix):
    rec = receiver("unix_dgram", suffix=suffix)
    server = serve(*syslog_args(rec, "-n", "ux", "--log-syslog-facility", "local0"),
                   "logcfg_app:app", ready_path="/ready")
    (worker,) = server.worker_pids()
    (booting,) = rec.wait_for(r"\ABooting worker with pid: %d\Z" % worker)
    assert_record(booting, 134, "gunicorn.ux.error", worker, "Booting worker with pid: %d" % worker)
    requests.get(server.url + "/over-unix", timeout=10)
    (access,) = rec.wait_for(r"GET /over-unix ")
    assert access.pri == 134 and access.tag == "gunicorn.ux.access" and access.pid == worker
    assert re.fullmatch(ACCESS_RE % ("/over-unix", 200), access.message), access.raw


def test_plain_unix_address_falls_back_to_a_stream_socket(serve, receiver):
    """`unix://PATH` leaves the socket type open: a datagram socket is tried first, then a
    stream socket (records still NUL-terminated)."""
    rec = receiver("unix_stream")
    server = serve(*syslog_args(rec, "-n", "us"), "logcfg_app:app", ready_path="/ready")
    (worker,) = server.worker_pids()
    (booting,) = rec.wait_for(r"\ABooting worker with pid: %d\Z" % worker)
    assert_record(booting, pri("user", "info"), "gunicorn.us.error", worker,
                  "Booting worker with pid: %d" % worker)


# ---------------------------------------------------------------------------
# Prefix and redirect


@pytest.mark.parametrize("args, tag", [
    (["-n", "my:app"], "gunicorn.my.app"),
    (["-n", "plain"], "gunicorn.plain"),
    ([], "gunicorn.logcfg_app.app"),  # no proc_name: the app URI, ':' made '.'
    (["--log-syslog-prefix", "custom"], "gunicorn.custom"),
    (["-n", "my:app", "--log-syslog-prefix", "pre.fix"], "gunicorn.pre.fix"),
])
def test_prefix(serve, receiver, args, tag):
    rec = receiver("udp")
    server = serve(*syslog_args(rec, *args), "logcfg_app:app", ready_path="/ready")
    (worker,) = server.worker_pids()
    (booting,) = rec.wait_for(r"\ABooting worker with pid: %d\Z" % worker)
    assert booting.tag == tag + ".error"
    requests.get(server.url + "/tagged", timeout=10)
    (access,) = rec.wait_for(r"GET /tagged ")
    assert access.tag == tag + ".access"


def test_disable_redirect_access_to_syslog(serve, receiver):
    rec = receiver("udp")
    server = serve(*syslog_args(rec, "-n", "noacc", "--disable-redirect-access-to-syslog"),
                   "--access-logfile", "-", "logcfg_app:app", ready_path="/ready")
    requests.get(server.url + "/not-redirected", timeout=10)
    assert requests.get(server.url + "/boom", timeout=10).status_code == 500
    # The same worker logged /not-redirected's access line before /boom's error.
    rec.wait_for(r"\AError handling request GET /boom")
    assert [r for r in rec.records() if r.tag != "gunicorn.noacc.error"] == []
    assert not rec.matching(r"GET /not-redirected")
    # The access log itself is still written.
    server.wait_for_log(r"GET /not-redirected", text=server.stdout_text)


def test_access_records_without_redirect_flag_alongside_access_log(serve, receiver):
    rec = receiver("udp")
    server = serve(*syslog_args(rec, "-n", "both"), "--access-logfile", "-", "logcfg_app:app",
                   ready_path="/ready")
    requests.get(server.url + "/both", timeout=10)
    (access,) = rec.wait_for(r"GET /both ")
    assert access.tag == "gunicorn.both.access"
    (line,) = server.wait_for_log(r"^.*GET /both .*$", text=server.stdout_text)
    assert access.message == line.group(0)


def test_hup_does_not_duplicate_syslog_records(serve, receiver):
    rec = receiver("udp")
    server = serve(*syslog_args(rec, "-n", "hup"), "logcfg_app:app", ready_path="/before")
    (old,) = server.worker_pids()
    server.send_signal(signal.SIGHUP)
    server.wait_for_log(r"Booting worker with pid: \d+", count=2)
    server.wait_for_log(r"Worker exiting \(pid: %d\)" % old)
    new = server.worker_pids()[1]
    requests.get(server.url + "/after", timeout=10)
    assert requests.get(server.url + "/boom", timeout=10).status_code == 500
    rec.wait_for(r"GET /boom ")
    assert len(rec.matching(r"\ABooting worker with pid: %d\Z" % new)) == 1
    assert len(rec.matching(r"GET /after ")) == 1
    assert len(rec.matching(r"\AError handling request GET /boom")) == 1


# ---------------------------------------------------------------------------
# Errors


def test_invalid_syslog_address_fails(run):
    result = run("--log-syslog", "--log-syslog-to", "foo://x", "-b", "127.0.0.1:0",
                 "logcfg_app:app")
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == "Error: invalid syslog address"


def test_invalid_syslog_port_fails(run):
    result = run("--log-syslog", "--log-syslog-to", "udp://localhost:abc", "-b", "127.0.0.1:0",
                 "logcfg_app:app")
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == "Error: 'abc' is not a valid port number."


def test_unknown_facility_fails(run):
    result = run("--log-syslog", "--log-syslog-facility", "bogus", "-b", "127.0.0.1:0",
                 "logcfg_app:app")
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == "Error: unknown facility name"


def test_syslog_settings_are_unchecked_without_log_syslog(serve):
    server = serve("--log-syslog-to", "foo://x", "--log-syslog-facility", "bogus",
                   "logcfg_app:app", ready_path="/ready")
    assert http_get(server.address, "/fine").status == 200


@pytest.mark.ferrocorn_only
def test_rfc5424_records_over_udp(serve, receiver):
    # `--log-syslog-rfc5424` is ferrocorn's: version 1, an RFC 3339 timestamp, the host name,
    # the tag as APP-NAME and the pid as PROCID, no NUL.
    rec = receiver("udp")
    server = serve(*syslog_args(rec, "--log-syslog-rfc5424", "--log-syslog-facility", "local0",
                                "-n", "my:app"), "logcfg_app:app", ready_path="/ready")
    (worker,) = server.worker_pids()
    shape = re.compile(r"\A<(\d+)>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d) "
                       r"(\S+) (\S+) (\d+) - - (.*)\Z", re.S)

    def parsed():
        return [m for m in (shape.match(r.text) for r in rec.records()) if m]

    wait_until(lambda: any(m.group(6) == "Booting worker with pid: %d" % worker
                           for m in parsed()), what="an RFC 5424 Booting record")
    requests.get(server.url + "/fmt", timeout=10)
    wait_until(lambda: any(m.group(4) == "gunicorn.my.app.access" for m in parsed()),
               what="an RFC 5424 access record")
    booting = next(m for m in parsed() if m.group(6).startswith("Booting worker"))
    assert booting.group(1) == "134"  # local0 + info
    assert booting.group(3) == socket.gethostname()
    assert booting.group(4) == "gunicorn.my.app.error"
    assert int(booting.group(5)) == worker
    assert all(not r.raw.endswith(b"\x00") for r in rec.records())
    assert all(shape.match(r.text) for r in rec.records()), rec.records()
