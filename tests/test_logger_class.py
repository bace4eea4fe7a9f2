"""``--logger-class``: a user's Logger subclass sees the server's log calls and one
access() per request; atoms() overrides shape the access line; ``simple``; a class that
does not load. ``--capture-output``: the workers' stdout and stderr go to the error log
file, re-opened on USR1."""

import re
import signal

import pytest
import requests

from conftest import LOG_LINE_RE, wait_until
from logcfg_support import hup_then_after_and_final, file_text, lines_of, read_jsonl

pytestmark = pytest.mark.timeout(60)

RECORDING = "logcfg_custom_logger.RecordingLogger"
DEFAULT_ACCESS_RE = (
    r'127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
    r'"%s %s HTTP/1\.1" %d \d+ "-" "[^"]*"'
)


def recorded(path, call=None):
    return [r for r in read_jsonl(path) if call is None or r["call"] == call]


# ---------------------------------------------------------------------------
# A custom logger class


def test_custom_logger_sees_boot_messages_exceptions_and_every_access(serve, tmp_path):
    record = tmp_path / "calls.jsonl"
    server = serve("--logger-class", RECORDING, "logcfg_app:app",
                   env={"LOGCFG_RECORD": str(record)}, ready_path="/ready")
    master = server.proc.pid
    (worker,) = server.worker_pids()
    requests.get(server.url + "/one?q=1", timeout=10)
    requests.post(server.url + "/two", data=b"body", timeout=10)
    assert requests.get(server.url + "/boom", timeout=10).status_code == 500
    wait_until(lambda: len(recorded(record, "access")) >= 4, what="four access() calls")

    infos = [(r["pid"], r["message"]) for r in recorded(record, "info")]
    assert (worker, "Booting worker with pid: %d" % worker) in infos, infos
    assert (master, "Listening at: http://127.0.0.1:%d (%d)" % (server.port, master)) in infos
    assert any(pid == master and re.fullmatch(r"Starting (gunicorn|ferrocorn) \S+", m)
               for pid, m in infos), infos

    accesses = recorded(record, "access")
    # resp.status is the whole status line; for the error page (the app raised) the
    # environ is the bare default one, without PATH_INFO.
    assert [(r["status"], r["method"], r["path"], r["pid"]) for r in accesses] == [
        ("200 OK", "GET", "/ready", worker),
        ("200 OK", "GET", "/one", worker),
        ("200 OK", "POST", "/two", worker),
        ("500 Internal Server Error", "GET", "/boom", worker),
    ]
    for r in accesses:
        assert r["request_time_type"] == "timedelta" and r["is_timedelta"], r
        assert 0 <= r["request_time_s"] < 10, r
    assert [r["path_info"] for r in accesses] == ["/ready", "/one", "/two", None]

    failures = [r for r in read_jsonl(record)
                if r["call"] in ("exception", "error") and "Error handling request" in r["message"]]
    assert len(failures) == 1, read_jsonl(record)
    (failure,) = failures
    assert failure["message"] == "Error handling request GET /boom"
    assert failure["pid"] == worker
    if failure["call"] == "exception":
        assert failure["exc_type"] == "LogcfgBoom"
    # The subclass calls up to the base class: the error log is written as usual.
    server.wait_for_log(r"\[ERROR\] Error handling request GET /boom\nTraceback")
    assert "LogcfgBoom: deliberate failure from logcfg_app" in server.stderr_text()
    assert (worker, "INFO", "Booting worker with pid: %d" % worker) in server.log_lines()


def test_atoms_override_changes_access_lines(serve):
    server = serve("--logger-class", "logcfg_custom_logger.AtomsLogger", "--access-logfile", "-",
                   "--access-logformat", "%(h)s %(x)s %(s)s %(m)s %(U)s", "logcfg_app:app",
                   ready_path="/ready")
    requests.get(server.url + "/atoms", timeout=10)
    (match,) = server.wait_for_log(r"^.*/atoms$", text=server.stdout_text)
    assert match.group(0) == "HIDDEN custom-atom 200 GET /atoms"


def test_logger_class_simple_is_the_default_logger(serve):
    server = serve("--logger-class", "simple", "--access-logfile", "-", "logcfg_app:app",
                   ready_path="/ready")
    requests.get(server.url + "/simple", timeout=10)
    (match,) = server.wait_for_log(r"^.*GET /simple.*$", text=server.stdout_text)
    assert re.fullmatch(DEFAULT_ACCESS_RE % ("GET", "/simple", 200), match.group(0))
    (worker,) = server.worker_pids()
    assert (worker, "INFO", "Booting worker with pid: %d" % worker) in server.log_lines()
    for line in lines_of(server.stderr_text()):
        assert LOG_LINE_RE.match(line), line


def test_unknown_logger_class_fails(run):
    result = run("--logger-class", "nope.Nope", "-b", "127.0.0.1:0", "logcfg_app:app")
    assert result.returncode == 1, result.stderr
    err = result.stderr
    assert err.startswith(
        "\nError: class uri 'nope.Nope' invalid or not found: \n\n"
        "[Traceback (most recent call last):\n"
    ), err
    assert "\nModuleNotFoundError: No module named 'nope'\n]\n" in err, err
    assert "Listening at" not in err


def test_hup_does_not_stack_handlers(serve, tmp_path):
    record = tmp_path / "calls.jsonl"
    server = serve("--logger-class", RECORDING, "--access-logfile", "-", "logcfg_app:app",
                   env={"LOGCFG_RECORD": str(record)}, ready_path="/before")
    old, new = hup_then_after_and_final(server)

    after = [line for line in lines_of(server.stdout_text()) if "GET /after" in line]
    assert len(after) == 1, server.stdout_text()
    assert re.fullmatch(DEFAULT_ACCESS_RE % ("GET", "/after", 200), after[0])
    booted = [m for m in server.log_lines() if m[2] == "Booting worker with pid: %d" % new]
    assert booted == [(new, "INFO", "Booting worker with pid: %d" % new)]
    assert [r["path"] for r in recorded(record, "access")] == ["/before", "/after", "/final"]


# ---------------------------------------------------------------------------
# --capture-output


def test_capture_output_sends_worker_output_to_the_error_log(serve, tmp_path):
    logfile = tmp_path / "error.log"
    # The log goes to the file: the port comes from a socket handed over.
    server = serve("--capture-output", "--error-logfile", logfile, "logcfg_app:app",
                   bind="fd", ready_path="/ready")
    requests.get(server.url + "/print?t=one", timeout=10)
    wanted = ("x-one\n", "raw-one\n", "err-one\n")
    wait_until(lambda: all(w in file_text(logfile) for w in wanted), timeout=10,
               what="the worker's output in the error log")
    text = file_text(logfile)
    assert re.search(r"\[INFO\] Booting worker with pid: \d+\n", text), text
    for w in wanted:
        assert w.strip() not in server.stdout_text() + server.stderr_text()


def test_capture_output_is_reopened_on_usr1(serve, tmp_path):
    logfile = tmp_path / "error.log"
    rotated = tmp_path / "error.log.1"
    server = serve("--capture-output", "--error-logfile", logfile, "logcfg_app:app",
                   bind="fd", ready_path="/ready")
    requests.get(server.url + "/print?t=before", timeout=10)
    wait_until(lambda: "err-before\n" in file_text(logfile), timeout=10, what="err-before")
    logfile.rename(rotated)
    server.send_signal(signal.SIGUSR1)

    attempt = [0]

    def after_lands():
        attempt[0] += 1
        requests.get(server.url + "/print?t=after%d" % attempt[0], timeout=10)
        return "x-after%d\n" % attempt[0] in file_text(logfile) and attempt[0]

    n = wait_until(after_lands, timeout=10, what="output in the re-opened file")
    wait_until(lambda: "err-after%d\n" % n in file_text(logfile), timeout=5, what="stderr too")
    new_text = file_text(logfile)
    assert "raw-after%d\n" % n in new_text
    assert "before" not in new_text
    old_text = file_text(rotated)
    assert all(w in old_text for w in ("x-before\n", "raw-before\n", "err-before\n"))
    # The master re-opened too: its later log lines go to the new file.
    wait_until(lambda: "Handling signal: usr1" in file_text(rotated) + file_text(logfile),
               timeout=5, what="the usr1 line")


@pytest.mark.ferrocorn_only
def test_capture_output_print_without_flush_is_line_buffered(serve, tmp_path):
    """ferrocorn makes stdout line-buffered under capture_output; Gunicorn leaves it
    block-buffered, so a print() without flush waits for the buffer to fill or exit."""
    logfile = tmp_path / "error.log"
    server = serve("--capture-output", "--error-logfile", logfile, "logcfg_app:app",
                   bind="fd", ready_path="/ready", env={"PYTHONUNBUFFERED": None})
    requests.get(server.url + "/noflush?t=nf", timeout=10)
    wait_until(lambda: "y-nf\n" in file_text(logfile), timeout=5, what="an unflushed print")
