"""What the embedding scripts share: the server package under test and the recorders.

``EMBEDDING_SERVER`` (set by tests/test_embedding.py) is ``ferrocorn`` or ``gunicorn``; the
scripts import that package's ``app.base`` / ``app.wsgiapp`` / ``config`` and nothing else
of it, so one script runs unchanged against both.
"""

import importlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# tests/apps: the plain WSGI apps (slow, hello) and the marker writer.
sys.path.insert(0, os.path.dirname(HERE))

from marker import write_marker  # noqa: E402

SERVER = os.environ["EMBEDDING_SERVER"]
if SERVER not in ("ferrocorn", "gunicorn"):
    raise SystemExit("EMBEDDING_SERVER must be ferrocorn or gunicorn, not %r" % SERVER)

base = importlib.import_module(SERVER + ".app.base")
wsgiapp = importlib.import_module(SERVER + ".app.wsgiapp")
config = importlib.import_module(SERVER + ".config")


def record(path, event, **fields):
    """Append one JSON line (event, pid, fields) to `path`; one write() per line, so the
    lines of concurrent processes never interleave."""
    fields.update(event=event, pid=os.getpid())
    line = (json.dumps(fields, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def dump(path, data):
    write_marker(path, json.dumps(data, sort_keys=True))
