"""--reload with both engines: a changed module or extra file restarts the worker with the
new code; a syntax error is served as a 500 with its traceback until it is fixed. With
inotify, any event in a watched directory (a new file too) restarts it, and directories of
modules imported after boot are watched from the next idle tick on.

The apps live in `tmp_path/app`, never in `tmp_path` itself: the server's log files are
written there, and with inotify every log line would be an event in a watched directory
(Gunicorn behaves the same way)."""

import os
import re
import time

import pytest
import requests

from conftest import pid_alive, wait_until

APP = (
    "def app(environ, start_response):\n"
    "    start_response('200 OK', [('Content-Length', '%d')])\n"
    "    return [b'%s']\n"
)

# The app imports `helper` from `lib/` at its first request, after the reloader started.
LAZY_APP = (
    "import os, sys\n"
    "LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'lib')\n"
    "def app(environ, start_response):\n"
    "    if LIB not in sys.path:\n"
    "        sys.path.insert(0, LIB)\n"
    "    import helper\n"
    "    body = helper.TEXT.encode()\n"
    "    start_response('200 OK', [('Content-Length', str(len(body)))])\n"
    "    return [body]\n"
)

ENGINES = ["poll", "inotify"]


def _app_dir(tmp_path):
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    return app_dir


def _write(path, text):
    # A clearly newer mtime, so the 1 s poll sees the change without sleeping past a tick.
    path.write_text(text)
    later = time.time() + 2
    os.utime(path, (later, later))


def _watched_inodes(pids) -> set:
    """Inodes of everything the inotify instances of `pids` watch (from /proc fdinfo)."""
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) != "anon_inode:inotify":
                    continue
                with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                    info = f.read()
            except OSError:
                continue
            inodes.update(int(ino, 16) for ino in re.findall(r"^inotify wd:\S+ ino:([0-9a-f]+)",
                                                             info, re.M))
    return inodes


def _wait_watched(server, directory, timeout=15.0):
    """Wait until the newest worker's inotify reloader watches `directory`."""
    inode = directory.stat().st_ino

    def watched():
        pids = [p for p in server.worker_pids()[-1:] if pid_alive(p)]
        return inode in _watched_inodes(pids)

    wait_until(watched, timeout, "the reloader to watch %s" % directory)


def _change(server, engine, path, text, pattern, timeout=15.0):
    """Write `text` to `path` once the reloader can see the change, and wait until the
    log reports it (one more `pattern` line than before).

    inotify: the write waits for the watch on the file's directory (read from /proc).
    poll: the reloader records each file's mtime on its first pass, which may come after
    the write; the file is therefore given an ever newer mtime until a pass reports it."""
    regex = re.compile(pattern, re.M)
    before = len(regex.findall(server.stderr_text()))
    if engine == "inotify":
        _wait_watched(server, path.parent)
        _write(path, text)
        server.wait_for_log(pattern, count=before + 1, timeout=timeout)
        return
    _write(path, text)

    def reported():
        if len(regex.findall(server.stderr_text())) > before:
            return True
        later = time.time() + 2
        os.utime(path, (later, later))
        return False

    wait_until(reported, timeout, "the reloader to report %s" % path)


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
        time.sleep(0.1)  # poll interval
    raise AssertionError("never got %r; last: %r" % (expected, getattr(last, "text", last)))


@pytest.mark.parametrize("engine", ENGINES)
def test_changed_module_reloads_the_worker(serve, tmp_path, engine):
    app_dir = _app_dir(tmp_path)
    mod = app_dir / "reload_app.py"
    mod.write_text(APP % (2, "v1"))
    server = serve("--reload", "--reload-engine", engine, "reload_app:app", cwd=app_dir)
    assert requests.get(server.url, timeout=10).text == "v1"
    server.wait_for_log(r"\[WARNING\] Reloader is on\. Use in development only!")
    _change(server, engine, mod, APP % (2, "v2"), r"Worker reloading: .*reload_app\.py modified")
    _wait_text(server.url, "v2")
    server.wait_for_log(r"Booting worker with pid", count=2)


@pytest.mark.parametrize("engine", ENGINES)
def test_extra_files_and_globs_are_watched(serve, tmp_path, engine):
    app_dir = _app_dir(tmp_path)
    (app_dir / "reload_app.py").write_text(APP % (2, "v1"))
    # Outside the app's directory, so only the glob can make the reloader see it.
    tpl = tmp_path / "templates"
    tpl.mkdir()
    page = tpl / "page.html"
    page.write_text("<p>one</p>")
    server = serve("--reload", "--reload-engine", engine,
                   "--reload-extra-file", str(tpl / "*.html"), "reload_app:app", cwd=app_dir)
    assert requests.get(server.url, timeout=10).text == "v1"
    _change(server, engine, page, "<p>two</p>", r"Worker reloading: .*page\.html modified")
    server.wait_for_log(r"Booting worker with pid", count=2)


@pytest.mark.parametrize("engine", ENGINES)
def test_syntax_error_is_served_until_fixed(serve, tmp_path, engine):
    app_dir = _app_dir(tmp_path)
    mod = app_dir / "reload_app.py"
    mod.write_text(APP % (2, "v1"))
    server = serve("--reload", "--reload-engine", engine, "reload_app:app", cwd=app_dir)
    _change(server, engine, mod, "def app(environ, start_response):\n    return [b'oops'\n",
            r"Worker reloading: .*reload_app\.py modified")
    deadline = time.monotonic() + 20
    while True:
        resp = requests.get(server.url, timeout=5)
        if resp.status_code == 500 and "SyntaxError" in resp.text:
            break
        assert time.monotonic() < deadline, resp.text
        time.sleep(0.1)  # poll interval
    assert server.alive()
    # The broken worker watches the file it failed on: the fix reloads it.
    _change(server, engine, mod, APP % (2, "v3"), r"Worker reloading: .*reload_app\.py modified")
    _wait_text(server.url, "v3")


def test_inotify_reloads_on_a_file_created_in_a_watched_directory(serve, tmp_path):
    app_dir = _app_dir(tmp_path)
    (app_dir / "reload_app.py").write_text(APP % (2, "v1"))
    server = serve("--reload", "--reload-engine", "inotify", "reload_app:app", cwd=app_dir)
    assert requests.get(server.url, timeout=10).text == "v1"
    _wait_watched(server, app_dir)
    (app_dir / "notes.txt").write_text("not even Python")
    server.wait_for_log(r"Worker reloading: (.*/)?notes\.txt modified")
    server.wait_for_log(r"Booting worker with pid", count=2)
    _wait_text(server.url, "v1")


def test_inotify_watches_modules_imported_after_boot(serve, tmp_path):
    app_dir = _app_dir(tmp_path)
    lib = app_dir / "lib"
    lib.mkdir()
    helper = lib / "helper.py"
    helper.write_text("TEXT = 'one'\n")
    (app_dir / "lazy_app.py").write_text(LAZY_APP)
    server = serve("--reload", "--reload-engine", "inotify", "lazy_app:app", cwd=app_dir)
    assert requests.get(server.url, timeout=10).text == "one"  # imports helper now
    _wait_watched(server, lib)  # from the next idle tick on
    helper.write_text("TEXT = 'two'\n")
    server.wait_for_log(r"Worker reloading: (.*/)?helper\.py modified")
    _wait_text(server.url, "two")


@pytest.mark.ferrocorn_only
@pytest.mark.parametrize("flags, engine", [
    ((), "inotify"),
    (("--reload-engine", "auto"), "inotify"),
    (("--reload-engine", "inotify"), "inotify"),
    (("--reload-engine", "poll"), "poll"),
])
def test_the_chosen_engine_is_logged(serve, tmp_path, flags, engine):
    app_dir = _app_dir(tmp_path)
    (app_dir / "reload_app.py").write_text(APP % (2, "v1"))
    server = serve("--reload", "--log-level", "debug", *flags, "reload_app:app", cwd=app_dir)
    server.wait_for_log(r"\[DEBUG\] Reloader engine: %s$" % engine)
    assert len(server.wait_for_log(r"Reloader engine: ")) == 1



@pytest.mark.ferrocorn_only
def test_auto_falls_back_to_polling_when_the_kernel_refuses_inotify(serve, tmp_path):
    app_dir = _app_dir(tmp_path)
    mod = app_dir / "reload_app.py"
    mod.write_text(APP % (2, "v1"))
    # The config file runs in the master before the fork, so the workers inherit a
    # watcher class that fails the way inotify_init1 does at max_user_instances.
    conf = tmp_path / "refuse_inotify.py"
    conf.write_text(
        "import errno, os\n"
        "import ferrocorn._ferrocorn as native\n"
        "class Refused:\n"
        "    def __init__(self):\n"
        "        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))\n"
        "native.Inotify = Refused\n"
    )
    server = serve("-c", str(conf), "--reload", "--log-level", "debug", "reload_app:app",
                   cwd=app_dir)
    server.wait_for_log(r"\[WARNING\] inotify reloader unavailable \(.*\), falling back to polling")
    server.wait_for_log(r"\[DEBUG\] Reloader engine: poll$")
    _change(server, "poll", mod, APP % (2, "v2"), r"Worker reloading: .*reload_app\.py modified")
    _wait_text(server.url, "v2")
