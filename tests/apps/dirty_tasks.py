"""Dirty apps for tests/test_dirty_api.py (loaded by dirty workers only).

Importing this module appends ``<pid>`` to the file named by ``$DIRTY_IMPORT_LOG`` (when
set), so a test can see which processes imported it: the master never must.
"""

import asyncio
import os
import threading
import time

try:
    from ferrocorn.dirty import DirtyApp, stash
except ImportError:  # the suite also runs against Gunicorn
    from gunicorn.dirty import DirtyApp, stash

if os.environ.get("DIRTY_IMPORT_LOG"):
    with open(os.environ["DIRTY_IMPORT_LOG"], "a") as f:
        f.write("%d\n" % os.getpid())


class Tasks(DirtyApp):
    def init(self):
        self.calls = 0
        self.inside = self.peak = 0
        self.cond = threading.Condition()

    def add(self, a, b):
        self.calls += 1
        return a + b

    def echo(self, *args, **kwargs):
        return {"args": list(args), "kwargs": kwargs}

    def whoami(self):
        """This dirty worker's pid and its parent's (the arbiter)."""
        return {"pid": os.getpid(), "ppid": os.getppid(), "calls": self.calls}

    def sleep(self, seconds):
        time.sleep(seconds)
        return seconds

    def boom(self, text):
        raise RuntimeError("dirty failure: %s" % text)

    def countdown(self, n):
        for i in range(n, 0, -1):
            yield "tick %d" % i

    async def acountdown(self, n):
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    def ticker(self, path):
        """An endless stream; each chunk appends a byte to ``path``."""
        i = 0
        while True:
            with open(path, "ab") as f:
                f.write(b".")
            time.sleep(0.02)
            i += 1
            yield i

    async def block_loop(self, seconds):
        """A stream that blocks the dirty worker's event loop (a blocking call in an async
        generator, which runs on the loop)."""
        time.sleep(seconds)
        yield seconds

    def blobs(self, n, size, progress):
        """``n`` chunks of ``size`` bytes; each one made appends a byte to ``progress``."""
        for i in range(n):
            with open(progress, "ab") as f:
                f.write(b".")
            yield bytes([i % 256]) * size

    def selfref(self):
        """A result no wire format can carry: a list that holds itself."""
        out = []
        out.append(out)
        return out

    async def hold_loop(self, marker, seconds):
        """Like block_loop, creating ``marker`` first (once the loop is about to block)."""
        with open(marker, "w"):
            pass
        time.sleep(seconds)
        yield seconds

    def table_ops(self, name):
        """Exercise stash.table()'s dict interface from inside a dirty worker."""
        t = stash.table(name)
        t["a"] = 1
        t["b"] = [2, "two"]
        out = {"a": t["a"], "b": t["b"], "has_a": "a" in t, "len": len(t), "keys": sorted(t)}
        del t["a"]
        out["after_del"] = sorted(t.keys())
        out["items"] = sorted((k, v) for k, v in t.items() if isinstance(v, int))
        return out

    def read_stash(self, table, key):
        return stash.get(table, key)

    def overlap(self, n):
        """Wait (10 s at most) until ``n`` calls of this action run at once in this worker;
        whether they did."""
        with self.cond:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
            self.cond.notify_all()
            reached = self.cond.wait_for(lambda: self.peak >= n, timeout=10)
            self.inside -= 1
        return reached

    def _private(self):
        return "should never run"


class Single(DirtyApp):
    """Loaded by one dirty worker only (its class says so)."""

    workers = 1

    def whoami(self):
        return {"pid": os.getpid(), "ppid": os.getppid()}
