"""``--spew``: a trace function printing every Python line the server runs, to stdout.

ferrocorn's master and request handling are Rust, so what shows up is the Python that does
run: the config file, hooks, logging glue and, in workers, the application. As with
Gunicorn, ``sys.settrace`` is per thread: the thread that installs it (the master's main
thread, and with it every worker's main thread after fork) is traced, thread pools are not.
"""

import inspect
import linecache
import re
import sys

__all__ = ["spew", "unspew"]

_TOKENS = re.compile(r"\W+")


class Spew:
    def __init__(self, trace_names=None, show_values=True):
        self.trace_names = trace_names
        self.show_values = show_values

    def _where(self, frame):
        lineno = frame.f_lineno
        filename = frame.f_globals.get("__file__")
        if filename:
            if filename.endswith((".pyc", ".pyo")):
                filename = filename[:-1]
            return frame.f_globals.get("__name__", "[unknown]"), linecache.getline(filename, lineno)
        try:
            lines, start = inspect.getsourcelines(frame)
            return "[unknown]", lines[lineno - start]
        except (OSError, TypeError, IndexError):
            return "[unknown]", "Unknown code named [%s].  VM instruction #%d" % (
                frame.f_code.co_name, frame.f_lasti)

    def __call__(self, frame, event, arg):
        if event != "line":
            return self
        name, line = self._where(frame)
        if self.trace_names is not None and name not in self.trace_names:
            return self
        print("%s:%s: %s" % (name, frame.f_lineno, line.rstrip()))
        if self.show_values:
            values = []
            for token in _TOKENS.split(line):
                for scope in (frame.f_globals, frame.f_locals):
                    if token in scope:
                        values.append("%s=%r" % (token, scope[token]))
            if values:
                print("\t%s" % " ".join(values))
        return self


def spew(trace_names=None, show_values=False):
    """Trace every line this thread runs from now on."""
    sys.settrace(Spew(trace_names, show_values))


def unspew():
    sys.settrace(None)
