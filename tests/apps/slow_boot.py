"""An app whose import takes BOOT_SLEEP seconds (a big model, a slow import)."""

import os
import time


def _load_model(seconds):
    time.sleep(seconds)


_load_model(float(os.environ.get("BOOT_SLEEP", "0")))


def app(environ, start_response):
    body = b"ready %d\n" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
