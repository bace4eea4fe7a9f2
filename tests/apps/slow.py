"""Sleeps `?s=SECONDS` (default 0) before answering, and reports the worker pid.

``?started=PATH`` first writes the worker's pid to PATH, so a test can wait until the
request is in the app instead of guessing how long that takes.
"""

import os
import time
from urllib.parse import parse_qs

from marker import write_marker


def app(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    seconds = float(query.get("s", ["0"])[0])
    if "started" in query:
        write_marker(query["started"][0], str(os.getpid()))
    if seconds:
        time.sleep(seconds)
    body = ("slept %s pid %d\n" % (seconds, os.getpid())).encode()
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(body))),
            ("X-Worker-Pid", str(os.getpid())),
        ],
    )
    return [body]
