"""The app behind tests/test_hardening_*.py: answers 200 with what the request looked like.

The body is JSON: ``host`` (HTTP_HOST, or null when the request had none), ``path``
(PATH_INFO), ``query`` (QUERY_STRING), ``protocol`` (SERVER_PROTOCOL) and ``body`` (what
was read from ``wsgi.input``, as latin-1 text). The body is read only when the query string
has ``read=1``; otherwise the app answers without touching ``wsgi.input``.

Every call appends ``PATH_INFO?QUERY_STRING`` as one line to the file named by the
``HARDENING_CALLS`` environment variable (when set), before anything else, so a test can
tell that a request it sent with a unique path never reached the app.
"""

import json
import os


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    calls = os.environ.get("HARDENING_CALLS")
    if calls:
        with open(calls, "a", encoding="latin-1") as f:
            f.write("%s?%s\n" % (path, query))
    body = b""
    if "read=1" in query.split("&"):
        body = environ["wsgi.input"].read()
    payload = json.dumps({
        "host": environ.get("HTTP_HOST"),
        "path": path,
        "query": query,
        "protocol": environ.get("SERVER_PROTOCOL"),
        "body": body.decode("latin-1"),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(payload)))])
    return [payload]
