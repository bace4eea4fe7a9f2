"""Reports the worker's user, group and supplementary groups.

Only `os` is used: after a worker drops privileges it may not be able to read the
interpreter's library directory (this machine's Python lives under /root), so the app must
not import anything the server did not already import.
"""

import os


def app(environ, start_response):
    body = ('{"uid": %d, "gid": %d, "groups": [%s]}' % (
        os.getuid(), os.getgid(), ", ".join(str(g) for g in sorted(os.getgroups())))).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
