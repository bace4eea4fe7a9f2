"""--reload (poll engine): a changed module or extra file restarts the worker with the new
code; a syntax error is served as a 500 with its traceback until it is fixed."""

import os
import time

import pytest
import requests

APP = (
    "def app(environ, start_response):\n"
    "    start_response('200 OK', [('Content-Length', '%d')])\n"
    "    return [b'%s']\n"
)


def _write(path, text):
    # A clearly newer mtime, so the 1 s poll sees the change without sleeping past a tick.
    path.write_text(text)
    later = time.time() + 2
    os.utime(path, (later, later))


def _wait_text(url, expected, timeout=20.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = requests.get(url, timeout=5)
            if last.text == expected:
                return last
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError("never got %r; last: %r" % (expected, getattr(last, "text", last)))


def test_changed_module_reloads_the_worker(serve, tmp_path):
    mod = tmp_path / "reload_app.py"
    mod.write_text(APP % (2, "v1"))
    server = serve("--reload", "reload_app:app", cwd=tmp_path)
    assert requests.get(server.url, timeout=10).text == "v1"
    server.wait_for_log(r"\[WARNING\] Reloader is on\. Use in development only!")
    time.sleep(1.2)  # let the reloader's first pass record the module's mtime
    _write(mod, APP % (2, "v2"))
    server.wait_for_log(r"Worker reloading: .*reload_app\.py modified")
    _wait_text(server.url, "v2")
    server.wait_for_log(r"Booting worker with pid", count=2)


def test_extra_files_and_globs_are_watched(serve, tmp_path):
    (tmp_path / "reload_app.py").write_text(APP % (2, "v1"))
    tpl = tmp_path / "templates"
    tpl.mkdir()
    page = tpl / "page.html"
    page.write_text("<p>one</p>")
    server = serve("--reload", "--reload-extra-file", str(tpl / "*.html"), "reload_app:app",
                   cwd=tmp_path)
    assert requests.get(server.url, timeout=10).text == "v1"
    time.sleep(1.2)  # let the reloader record the file's first mtime
    _write(page, "<p>two</p>")
    server.wait_for_log(r"Worker reloading: .*page\.html modified")
    server.wait_for_log(r"Booting worker with pid", count=2)


def test_syntax_error_is_served_until_fixed(serve, tmp_path):
    mod = tmp_path / "reload_app.py"
    mod.write_text(APP % (2, "v1"))
    server = serve("--reload", "reload_app:app", cwd=tmp_path)
    time.sleep(1.2)  # let the reloader's first pass record the module's mtime
    _write(mod, "def app(environ, start_response):\n    return [b'oops'\n")
    deadline = time.monotonic() + 20
    while True:
        resp = requests.get(server.url, timeout=5)
        if resp.status_code == 500 and "SyntaxError" in resp.text:
            break
        assert time.monotonic() < deadline, resp.text
        time.sleep(0.1)
    assert server.alive()
    _write(mod, APP % (2, "v3"))
    _wait_text(server.url, "v3")


@pytest.mark.ferrocorn_only
def test_inotify_engine_is_refused_loudly(run):
    result = run("--reload", "--reload-engine", "inotify", "hello:app")
    assert result.returncode == 1
    assert "reload_engine" in result.stderr and "not supported yet" in result.stderr
