"""``--spew``: a trace function printing every Python line the server runs, to stdout.

ferrocorn's master and request handling are Rust, so what shows up is the Python that does
run: hooks, the config file when HUP reads it again, logging glue and, in workers, the
application. ``sys.settrace`` is per thread, as in Gunicorn: the thread that installs it
(the master's main thread, and with it every worker's main thread after fork) is traced;
thread pools are not.

Each line is printed as ``module:lineno: source`` (Gunicorn's format); with
``show_values`` the globals and locals the line names follow on a tab-indented line.
"""

import linecache
import re
import sys

__all__ = ["spew", "unspew"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _source(frame):
    """The module name and source text of the line a frame is on."""
    module = frame.f_globals.get("__name__", "[unknown]")
    filename = frame.f_code.co_filename
    text = linecache.getline(filename, frame.f_lineno)
    if not text:
        text = "<no source: %s in %s>" % (frame.f_code.co_name, filename)
    return module, text.rstrip()


class Spew:
    """The trace function; ``trace_names`` limits it to those module names."""

    def __init__(self, trace_names=None, show_values=True):
        self.trace_names = None if trace_names is None else set(trace_names)
        self.show_values = show_values

    def __call__(self, frame, event, arg):
        if event == "line":
            module, text = _source(frame)
            if self.trace_names is None or module in self.trace_names:
                print("%s:%s: %s" % (module, frame.f_lineno, text))
                if self.show_values:
                    self._values(frame, text)
        return self

    @staticmethod
    def _values(frame, text):
        shown = []
        for name in dict.fromkeys(_NAME.findall(text)):
            for scope in (frame.f_globals, frame.f_locals):
                if name in scope:
                    shown.append("%s=%r" % (name, scope[name]))
        if shown:
            print("\t" + " ".join(shown))


def spew(trace_names=None, show_values=False):
    """Trace every line this thread runs from now on."""
    sys.settrace(Spew(trace_names, show_values))


def unspew():
    sys.settrace(None)
