"""A BaseApplication that records every call the server makes into it.

    recorder.py OPTIONS_JSON RECORD_JSONL

``load_config`` reads OPTIONS_JSON (an object) and hands every item to ``cfg.set`` as it
is, so an unknown name or a bad value reaches the server's own error, and a HUP picks up
whatever the test wrote there since. Each call (``load_default_config``, ``load_config``,
``load``, ``wsgi``, ``reload``, ``run``) appends a line to RECORD_JSONL with the pid that
made it, and so does the ``post_worker_init`` hook the application adds, which marks a
worker that has its app and is about to serve (with the worker count its ``worker.cfg``
and its ``worker.app.cfg`` show). The app is tests/apps/slow.py
(``?s=SECONDS``, ``X-Worker-Pid``).
"""

import json
import sys

from _impl import base, record


def post_worker_init(worker):
    record(sys.argv[2], "post_worker_init", app_workers=worker.app.cfg.workers,
           cfg_workers=worker.cfg.workers)


class Recorder(base.BaseApplication):

    def __init__(self, options_path, record_path):
        self.options_path = options_path
        self.record_path = record_path
        super().__init__()
        record(self.record_path, "constructed")

    def load_default_config(self):
        record(self.record_path, "load_default_config")
        super().load_default_config()

    def load_config(self):
        record(self.record_path, "load_config")
        with open(self.options_path) as f:
            options = json.load(f)
        for name, value in options.items():
            self.cfg.set(name, value)
        self.cfg.set("post_worker_init", post_worker_init)

    def load(self):
        record(self.record_path, "load")
        from slow import app

        return app

    def wsgi(self):
        record(self.record_path, "wsgi")
        return super().wsgi()

    def reload(self):
        record(self.record_path, "reload")
        super().reload()

    def run(self):
        record(self.record_path, "run")
        super().run()


if __name__ == "__main__":
    Recorder(sys.argv[1], sys.argv[2]).run()
