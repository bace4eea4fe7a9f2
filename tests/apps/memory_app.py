"""Grows by `?kib=N` KiB per request, kept for the worker's life (a leak), after sleeping
`?s=SECONDS`; reports the worker pid. ``MEMORY_APP_BOOT_MIB`` makes the module hold that
many MiB from import on (an app that is big at boot; with ``--preload`` the master holds
them and the workers share them).
"""

import os
import time
from urllib.parse import parse_qs

# Filled bytes, not bytearray(n): every page is written, so it is resident at once.
AT_IMPORT = b"\x01" * (int(os.environ.get("MEMORY_APP_BOOT_MIB", "0")) << 20)
LEAKED = []


def app(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    kib = int(query.get("kib", ["0"])[0])
    seconds = float(query.get("s", ["0"])[0])
    if kib:
        LEAKED.append(b"\x01" * (kib << 10))
    if seconds:
        time.sleep(seconds)
    body = ("pid %d leaked %d KiB\n" % (os.getpid(), kib * len(LEAKED))).encode()
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(body))),
            ("X-Worker-Pid", str(os.getpid())),
        ],
    )
    return [body]
