"""A dirty app and a WSGI app that calls it, for the dirty arbiter's process-model tests.

`DIRTY_PROBE_DIR` (set by the test) receives one file per import of this module, named
after the importing process, so a test can tell which processes imported it.
"""

import json
import os
import time

try:
    from ferrocorn.dirty import DirtyApp, get_dirty_client
except ImportError:  # the suite's Gunicorn mode
    from gunicorn.dirty import DirtyApp, get_dirty_client

_PROBE = os.environ.get("DIRTY_PROBE_DIR")
if _PROBE:
    with open(os.path.join(_PROBE, "import-%d" % os.getpid()), "w") as f:
        f.write(os.environ.get("DIRTY_CODE_VERSION", ""))

VERSION = os.environ.get("DIRTY_CODE_VERSION", "v1")
if _PROBE and os.path.exists(os.path.join(_PROBE, "version")):
    with open(os.path.join(_PROBE, "version")) as f:
        VERSION = f.read().strip()


class Probe(DirtyApp):
    def init(self):
        self.version = VERSION

    def whoami(self):
        return {"pid": os.getpid(), "ppid": os.getppid(), "version": self.version}

    def nap(self, seconds):
        if _PROBE:
            with open(os.path.join(_PROBE, "events"), "a") as f:
                f.write("nap%g started\n" % seconds)
        time.sleep(seconds)
        return os.getpid()


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/":
        body = b"ok"
    else:
        client = get_dirty_client()
        if path == "/whoami":
            result = client.execute("dirty_proc_app:Probe", "whoami")
        elif path == "/nap":
            result = client.execute("dirty_proc_app:Probe", "nap", 0.2)
        elif path[4:].isdigit() and path.startswith("/nap"):
            result = client.execute("dirty_proc_app:Probe", "nap", int(path[4:]))
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no"]
        body = json.dumps(result).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
