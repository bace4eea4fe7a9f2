"""Streams a body from a generator with no Content-Length.

`?n=COUNT` sets the number of chunks (default 5); each chunk is `chunk-<i>\\n`.
"""

import time
from urllib.parse import parse_qs


def app(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    count = int(query.get("n", ["5"])[0])
    delay = float(query.get("delay", ["0"])[0])
    start_response("200 OK", [("Content-Type", "text/plain")])

    def generate():
        for i in range(count):
            if delay:
                time.sleep(delay)
            yield ("chunk-%d\n" % i).encode()

    return generate()
