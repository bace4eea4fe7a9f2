"""Logging: boot lines, the error-log line shape, levels, --error-logfile, and the
access log (default format and custom atoms)."""

import base64
import re

import pytest
import requests

from conftest import LOG_LINE_RE

pytestmark = pytest.mark.timeout(60)

DEFAULT_ACCESS_RE = re.compile(
    r'^(?P<h>\S+) - (?P<u>\S+) \[(?P<t>\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] '
    r'"(?P<r>[^"]*)" (?P<s>\d{3}) (?P<b>\d+|-) "(?P<f>[^"]*)" "(?P<a>[^"]*)"$'
)


def test_boot_lines(serve):
    server = serve("hello:app")
    master = server.proc.pid
    server.wait_for_log(r"Booting worker with pid: \d+")
    text = server.stderr_text()
    messages = server.log_lines()

    starting = [m for m in messages if re.fullmatch(r"Starting (ferrocorn|gunicorn) \S+", m[2])]
    assert starting and starting[0][0] == master and starting[0][1] == "INFO", text
    listening = "Listening at: http://127.0.0.1:%d (%d)" % (server.port, master)
    assert (master, "INFO", listening) in messages, text
    assert (master, "INFO", "Using worker: sync") in messages, text
    (worker,) = server.worker_pids()
    assert worker != master
    # The worker announces itself from its own pid.
    assert (worker, "INFO", "Booting worker with pid: %d" % worker) in messages, text
    # Order: starting, listening, worker type, then workers.
    order = [msg for _, _, msg in messages]
    assert order.index(listening) < order.index("Using worker: sync") < order.index(
        "Booting worker with pid: %d" % worker
    )
    assert order.index(starting[0][2]) < order.index(listening)


def test_every_log_line_has_the_standard_shape(serve):
    server = serve("-w", "2", "hello:app")
    server.wait_for_log(r"Booting worker with pid: \d+", count=2)
    requests.get(server.url, timeout=10)
    text = server.stderr_text()
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) >= 5
    for line in lines:
        m = LOG_LINE_RE.match(line)
        assert m, "log line with an unexpected shape: %r" % line
    stamps = [LOG_LINE_RE.match(line).group(1) for line in lines]
    assert stamps == sorted(stamps)


def test_info_level_hides_debug(serve):
    server = serve("hello:app")
    requests.get(server.url + "/hidden", timeout=10)
    server.wait_for_log(r"Booting worker")
    assert "[DEBUG]" not in server.stderr_text()


def test_debug_level_shows_debug_lines(serve):
    server = serve("--log-level", "debug", "hello:app")
    requests.get(server.url + "/debug-probe?x=1", timeout=10)
    # The default pre_request hook logs each request's method and path at debug.
    server.wait_for_log(r"\[DEBUG\] GET /debug-probe$")
    server.wait_for_log(r"\[DEBUG\] Current configuration:")
    debug_lines = [line for line in server.log_lines() if line[1] == "DEBUG"]
    assert len(debug_lines) >= 3


def test_log_level_warning_hides_info(serve):
    # No "Listening at:" line at this level to read a port 0 from: a socket handed over.
    server = serve("--log-level", "warning", "hello:app", ready="http", bind="fd")
    requests.get(server.url, timeout=10)
    levels = {level for _, level, _ in server.log_lines()}
    assert "INFO" not in levels
    assert "DEBUG" not in levels


def test_error_logfile(serve, tmp_path):
    logfile = tmp_path / "error.log"
    # The "Listening at:" line goes to the file, so the port is fixed by a socket handed over.
    server = serve("--error-logfile", logfile, "hello:app", bind="fd")
    requests.get(server.url, timeout=10)
    server.wait_for_log(r"Booting worker with pid: \d+", text=logfile.read_text)
    content = logfile.read_text()
    assert "Listening at: http://127.0.0.1:%d" % server.port in content
    for line in content.splitlines():
        assert LOG_LINE_RE.match(line), line
    # The log went to the file, not to stderr.
    assert "Listening at:" not in server.stderr_text()
    assert "Booting worker" not in server.stderr_text()


def test_access_log_default_format(serve):
    server = serve("--access-logfile", "-", "hello:app", ready_path="/ready")
    requests.get(
        server.url + "/path/x?q=1&r=2",
        headers={"User-Agent": "ferro-test/1.0", "Referer": "http://example.test/ref"},
        timeout=10,
    )
    matches = server.wait_for_log(r"^.*GET /path/x.*$", text=server.stdout_text)
    line = matches[0].group(0)
    m = DEFAULT_ACCESS_RE.match(line)
    assert m, line
    assert m["h"] == "127.0.0.1"
    assert m["u"] == "-"
    assert m["r"] == "GET /path/x?q=1&r=2 HTTP/1.1"
    assert m["s"] == "200"
    assert m["b"] == "14"
    assert m["f"] == "http://example.test/ref"
    assert m["a"] == "ferro-test/1.0"
    # The access log goes to stdout, the error log stays on stderr.
    assert "GET /path/x" not in server.stderr_text()


def test_access_log_every_request_once(serve):
    server = serve("--access-logfile", "-", "raising:app", ready_path="/ready")
    for path in ("/a", "/b", "/boom", "/c"):
        requests.get(server.url + path, timeout=10)
    server.wait_for_log(r'"GET /c HTTP/1\.1"', text=server.stdout_text)
    lines = [line for line in server.stdout_text().splitlines() if line.strip()]
    requests_logged = [DEFAULT_ACCESS_RE.match(line)["r"] for line in lines]
    assert requests_logged == [
        "GET /ready HTTP/1.1",
        "GET /a HTTP/1.1",
        "GET /b HTTP/1.1",
        "GET /boom HTTP/1.1",
        "GET /c HTTP/1.1",
    ]
    statuses = [DEFAULT_ACCESS_RE.match(line)["s"] for line in lines]
    assert statuses == ["200", "200", "200", "500", "200"]


def test_access_log_to_file(serve, tmp_path):
    logfile = tmp_path / "access.log"
    server = serve("--access-logfile", logfile, "hello:app", ready_path="/ready")
    requests.get(server.url + "/to-file", timeout=10)
    matches = server.wait_for_log(r"^.*GET /to-file.*$", text=logfile.read_text)
    assert DEFAULT_ACCESS_RE.match(matches[0].group(0))
    assert "/to-file" not in server.stdout_text()


def test_access_log_custom_format(serve):
    fmt = (
        "h=%(h)s|m=%(m)s|U=%(U)s|q=%(q)s|H=%(H)s|s=%(s)s|b=%(b)s|B=%(B)s|u=%(u)s"
        "|in=%({x-ferro-in}i)s|out=%({content-type}o)s|env=%({request_method}e)s"
        "|D=%(D)s|M=%(M)s|T=%(T)s|L=%(L)s|p=%(p)s|missing=%(nope)s"
    )
    server = serve("--access-logfile", "-", "--access-logformat", fmt, "slow:app",
                   ready_path="/ready")
    creds = base64.b64encode(b"alice:secret").decode()
    resp = requests.get(
        server.url + "/custom%20path?s=0.2&k=v",
        headers={"X-Ferro-In": 'say "hi"', "Authorization": "Basic " + creds},
        timeout=10,
    )
    worker = resp.headers["X-Worker-Pid"]
    matches = server.wait_for_log(r"^h=.*custom.*$", text=server.stdout_text)
    fields = dict(part.split("=", 1) for part in matches[0].group(0).split("|"))
    assert fields["h"] == "127.0.0.1"
    assert fields["m"] == "GET"
    assert fields["U"] == "/custom path"
    assert fields["q"] == "s=0.2&k=v"
    assert fields["H"] == "HTTP/1.1"
    assert fields["s"] == "200"
    assert fields["b"] == str(len(resp.content))
    assert fields["B"] == str(len(resp.content))
    assert fields["u"] == "alice"
    # Double quotes in values are escaped.
    assert fields["in"] == 'say \\"hi\\"'
    assert fields["out"] == "text/plain"
    assert fields["env"] == "GET"
    # The app slept 0.2 s: the durations agree with each other and with that.
    micros, millis, seconds = int(fields["D"]), int(fields["M"]), int(fields["T"])
    assert 200_000 <= micros < 5_000_000
    assert millis == micros // 1000
    assert seconds == micros // 1_000_000
    assert re.fullmatch(r"\d+\.\d{6}", fields["L"])
    assert abs(float(fields["L"]) - micros / 1e6) < 1e-5
    assert fields["p"] == "<%s>" % worker
    assert fields["missing"] == "-"
