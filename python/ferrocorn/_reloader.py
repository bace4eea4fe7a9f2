"""`--reload`: Gunicorn's reloaders, run in a daemon thread of each worker.

The watched files are those of every imported module (`.pyc` mapped to its `.py`) plus
`reload_extra_files`: literal paths as given, glob patterns expanded again on every pass so
files created after boot count too. A change calls `callback(name)` once and the thread
ends; the worker's callback stops that worker gracefully, and the master starts a fresh one
that imports the new code.

- `Reloader` (`--reload-engine poll`) stats every file once a second. The first sighting of
  a file records its mtime; a later, newer mtime is a change.
- `InotifyReloader` (`inotify`, and `auto`) watches the *directories* of those files (and
  of symlink targets) through the kernel. Any event there is a change, reported by the
  entry's file name as Gunicorn does; after each idle second the directory set is refreshed,
  so modules imported later get their directories watched.
"""

import glob
import os
import re
import sys
import threading
import time

_COMPILED_EXT = re.compile(r"py[co]$")


def _is_glob_pattern(entry):
    return any(c in entry for c in "*?[")


def _symlink_target_dir(filename):
    # Editing a symlink's target produces events in the target's directory only.
    if not os.path.islink(filename):
        return None
    return os.path.dirname(os.path.realpath(filename))


class ReloaderBase(threading.Thread):
    def __init__(self, extra_files=(), interval=1.0, callback=None):
        super().__init__(name="ferrocorn-reloader", daemon=True)
        self._extra_files = set()
        self._extra_patterns = set()
        for entry in extra_files or ():
            if _is_glob_pattern(entry):
                self._extra_patterns.add(entry)
            else:
                self._extra_files.add(entry)
        self._interval = interval
        self._callback = callback

    def add_extra_file(self, filename):
        self._extra_files.add(filename)

    def get_files(self):
        names = [
            _COMPILED_EXT.sub("py", module.__file__)
            for module in tuple(sys.modules.values())
            if getattr(module, "__file__", None)
        ]
        names.extend(self._extra_files)
        for pattern in self._extra_patterns:
            names.extend(sorted(glob.glob(pattern, recursive=True)))
        return names

    def _changed(self, name):
        if self._callback:
            self._callback(name)


class Reloader(ReloaderBase):
    """The poll engine."""

    def run(self):
        mtimes = {}
        while True:
            for path in self.get_files():
                try:
                    mtime = os.stat(path).st_mtime
                except OSError:
                    continue
                old = mtimes.setdefault(path, mtime)
                if mtime > old:
                    self._changed(path)
                    return
            time.sleep(self._interval)


class InotifyReloader(ReloaderBase):
    """The inotify engine. Creating it raises OSError when the kernel refuses an inotify
    instance (for example fs.inotify.max_user_instances reached)."""

    def __init__(self, extra_files=(), interval=1.0, callback=None):
        super().__init__(extra_files=extra_files, interval=interval, callback=callback)
        from ferrocorn._ferrocorn import Inotify

        self._watcher = Inotify()

    def _watch(self, dirname):
        if self._watcher.watching(dirname) or not os.path.isdir(dirname):
            return
        try:
            self._watcher.add_watch(dirname)
        except OSError:
            # Unreadable, or removed since the isdir check: it is retried on the next refresh.
            pass

    def add_extra_file(self, filename):
        super().add_extra_file(filename)
        self._watch(os.path.dirname(os.path.abspath(filename)))
        target = _symlink_target_dir(filename)
        if target is not None:
            self._watch(target)

    def get_dirs(self):
        dirs = set()
        for name in self.get_files():
            dirs.add(os.path.dirname(os.path.abspath(name)))
            target = _symlink_target_dir(name)
            if target is not None:
                dirs.add(target)
        return dirs

    def refresh_dirs(self):
        for dirname in self.get_dirs():
            self._watch(dirname)

    def run(self):
        self.refresh_dirs()
        while True:
            names = self._watcher.read(self._interval)
            if not names:
                self.refresh_dirs()
                continue
            self._changed(names[0])
            return


def make_fail_app(text, asgi=False):
    """The app a worker serves when `--reload` is on and the real one has a SyntaxError:
    every request gets the traceback, until the file is fixed and the worker reloads."""
    body = text.encode("utf-8", "replace")
    if asgi:
        return _fail_asgi_app(body)

    def app(environ, start_response):
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app


def _fail_asgi_app(body):
    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({
                "type": "http.response.start",
                "status": 500,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())],
            })
            await send({"type": "http.response.body", "body": body})
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1011})
        elif scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    return app
