"""Logger classes for ``--logger-class``.

They subclass the server's own Logger: ferrocorn's when it is importable, else
Gunicorn's (the reference runs in a virtualenv without ferrocorn). When
``LOGCFG_RECORD`` names a file, RecordingLogger appends one JSON line per call of
access(), info(), error(), warning() and exception().
"""

import datetime
import json
import os
import sys

try:
    from ferrocorn.glogging import Logger
except ImportError:
    from gunicorn.glogging import Logger


def _record(entry):
    path = os.environ.get("LOGCFG_RECORD")
    if not path:
        return
    entry["pid"] = os.getpid()
    with open(path, "a") as f:
        f.write(json.dumps(entry, default=repr) + "\n")


def _text(msg, args):
    try:
        return str(msg) % args if args else str(msg)
    except Exception:  # noqa: BLE001 - record what came, even if it does not format
        return repr((msg, args))


class RecordingLogger(Logger):
    def access(self, resp, req, environ, request_time):
        _record({
            "call": "access",
            "status": resp.status,
            "method": req.method,
            "path": req.path,
            "path_info": environ.get("PATH_INFO"),
            "request_time_type": type(request_time).__name__,
            "is_timedelta": isinstance(request_time, datetime.timedelta),
            "request_time_s": request_time.total_seconds()
            if isinstance(request_time, datetime.timedelta) else None,
        })
        super().access(resp, req, environ, request_time)

    def _note(self, call, msg, args):
        exc = sys.exc_info()[0]
        _record({"call": call, "message": _text(msg, args),
                 "exc_type": exc.__name__ if exc else None})

    def info(self, msg, *args, **kwargs):
        self._note("info", msg, args)
        super().info(msg, *args, **kwargs)

    def warning(self, msg, *args, **kwargs):
        self._note("warning", msg, args)
        super().warning(msg, *args, **kwargs)

    def error(self, msg, *args, **kwargs):
        self._note("error", msg, args)
        super().error(msg, *args, **kwargs)

    def exception(self, msg, *args, **kwargs):
        self._note("exception", msg, args)
        super().exception(msg, *args, **kwargs)


class AtomsLogger(Logger):
    """Adds an atom ``x`` and hides the client address in ``h``."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["h"] = "HIDDEN"
        atoms["x"] = "custom-atom"
        return atoms
