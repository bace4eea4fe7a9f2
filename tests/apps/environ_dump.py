"""Answers with the JSON of the WSGI environ (string values only) plus the process state.

`/env` adds `os_environ` (the process environment) and `cwd`; every response carries the
worker pid so tests can tell workers apart.
"""

import json
import os
import sys


def app(environ, start_response):
    data = {k: v for k, v in environ.items() if isinstance(v, str)}
    data["wsgi.multiprocess"] = environ.get("wsgi.multiprocess")
    data["wsgi.multithread"] = environ.get("wsgi.multithread")
    data["wsgi.version"] = list(environ.get("wsgi.version", ()))
    data["pid"] = os.getpid()
    if environ.get("PATH_INFO") == "/env":
        data["os_environ"] = dict(os.environ)
        data["cwd"] = os.getcwd()
        data["sys_path"] = list(sys.path)
    body = json.dumps(data, sort_keys=True).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
