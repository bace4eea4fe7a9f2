"""Gunicorn's documented "Custom Application": a BaseApplication subclass fed an options
dict; only the import of the server package differs between the two servers.

    standalone.py OUTDIR [JSON]

OUTDIR receives the hooks' markers and the access log; JSON (an object) updates the
options before the application is built, so a test can pass a bad value.
"""

import json
import os
import sys

from _impl import SERVER, dump

if SERVER == "gunicorn":
    import gunicorn.app.base as server_base
else:
    import ferrocorn.app.base as server_base


def handler_app(environ, start_response):
    body = b"standalone pid %d\n" % os.getpid()
    start_response("200 OK", [
        ("Content-Type", "text/plain"),
        ("Content-Length", str(len(body))),
        ("X-Worker-Pid", str(os.getpid())),
    ])
    return [body]


class StandaloneApplication(server_base.BaseApplication):

    def __init__(self, app, options=None):
        self.options = options or {}
        self.application = app
        super().__init__()

    def load_config(self):
        config = {key: value for key, value in self.options.items()
                  if key in self.cfg.settings and value is not None}
        for key, value in config.items():
            self.cfg.set(key.lower(), value)

    def load(self):
        return self.application


OUTDIR = sys.argv[1]


def when_ready(server):
    dump(os.path.join(OUTDIR, "when_ready.json"), {
        "pid": os.getpid(),
        "app_is_instance": isinstance(server.app, StandaloneApplication),
        "app_is_the_one": server.app is APPLICATION,
        "workers": server.cfg.workers,
        "timeout": server.cfg.timeout,
        "accesslog": server.cfg.accesslog,
    })


def post_fork(server, worker):
    dump(os.path.join(OUTDIR, "post_fork.%d.json" % os.getpid()), {
        "pid": os.getpid(),
        "worker_pid": worker.pid,
        "server_app_is_instance": isinstance(server.app, StandaloneApplication),
        "worker_app_is_server_app": worker.app is server.app,
        "workers": server.cfg.workers,
    })


if __name__ == "__main__":
    options = {
        "bind": "127.0.0.1:0",
        "workers": 2,
        "timeout": 17,
        "accesslog": os.path.join(OUTDIR, "access.log"),
        "when_ready": when_ready,
        "post_fork": post_fork,
        # The example skips names that are not settings and values that are None.
        "not_a_setting": "ignored",
        "proc_name": None,
    }
    if len(sys.argv) > 2:
        options.update(json.loads(sys.argv[2]))
    APPLICATION = StandaloneApplication(handler_app, options)
    APPLICATION.run()
