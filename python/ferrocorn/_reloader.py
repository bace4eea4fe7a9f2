"""`--reload`: Gunicorn's poll reloader, run in a daemon thread of each worker.

Every second it stats the files of every imported module (`.pyc` mapped to its `.py`), plus
`reload_extra_files` (glob patterns are expanded again on every pass). The first sighting of
a file records its mtime; a later, newer mtime calls `callback(path)` once, and the thread
ends. The worker's callback stops that worker gracefully, and the master starts a fresh one
that imports the new code.
"""

import glob
import os
import sys
import threading
import time


class Reloader(threading.Thread):
    def __init__(self, extra_files=(), interval=1.0, callback=None):
        super().__init__(name="ferrocorn-reloader", daemon=True)
        self._extra = list(extra_files)
        self._interval = interval
        self._callback = callback
        self._watched = set()

    def add_extra_file(self, filename):
        self._extra.append(filename)

    def _files(self):
        names = set()
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if not path:
                continue
            if path.endswith(".pyc"):
                path = path[:-1]
            names.add(path)
        for pattern in self._extra:
            names.update(glob.glob(pattern, recursive=True) or [pattern])
        return names

    def run(self):
        mtimes = {}
        while True:
            for path in self._files():
                try:
                    mtime = os.stat(path).st_mtime
                except OSError:
                    continue
                old = mtimes.setdefault(path, mtime)
                if mtime > old:
                    if self._callback:
                        self._callback(path)
                    return
            time.sleep(self._interval)


def make_fail_app(text):
    """The app a worker serves when `--reload` is on and the real one has a SyntaxError:
    every request gets the traceback, until the file is fixed and the worker reloads."""
    body = text.encode("utf-8", "replace")

    def app(environ, start_response):
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app
