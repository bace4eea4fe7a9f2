"""Objects handed to user code: the ``server``/``worker``/``req``/``resp`` arguments of hooks,
and ``wsgi.file_wrapper``.

They carry the attributes and methods Gunicorn's hooks use, with Gunicorn's types. The Rust
side fills and updates them; what they do themselves is limited to what a hook can ask of
Gunicorn's objects (signal a worker, beat the heartbeat, read the body). The master loop,
the worker loop and the HTTP connection stay in Rust: methods that would run them here
(``reload``, ``reexec``, ``wakeup``) ask the Rust master by signal instead.
"""

import errno
import os
import signal
import socket
import sys
import time


class _Namespace:
    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self):
        keys = ("pid", "age", "method", "path", "status")
        shown = ", ".join(
            "%s=%r" % (k, self.__dict__[k]) for k in keys if k in self.__dict__
        )
        return "<%s %s>" % (type(self).__name__, shown)


class _Derived:
    """An attribute computed from others unless something assigned it explicitly.

    The Rust side may set any attribute at any time; an assignment wins over the computed
    value, as it would on Gunicorn's plain attributes.
    """

    def __init__(self, compute):
        self.compute = compute
        self.name = compute.__name__

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        if self.name in obj.__dict__:
            return obj.__dict__[self.name]
        return self.compute(obj)

    def __set__(self, obj, value):
        obj.__dict__[self.name] = value


class Application:
    """``server.app`` / ``worker.app``: Gunicorn's ``WSGIApplication`` surface.

    ``callable`` is the app once loaded (at start with ``preload_app``); ``wsgi()`` loads it
    in the calling process when it is not, as Gunicorn's does: from the PasteDeploy ini
    with ``--paste``, else from the APP_MODULE.
    """

    def __init__(self, cfg, app_uri, callable=None):
        self.cfg = cfg
        self.app_uri = app_uri
        self.callable = callable

    def load_wsgiapp(self):
        from ferrocorn._loader import import_app

        return import_app(self.app_uri)

    def load_pasteapp(self):
        # The step the workers take for --paste, so a hook that loads the app gets the
        # same app and the same error for a bad --paste-global item.
        from ferrocorn._loader import load_pasteapp

        return load_pasteapp(self.app_uri, self.cfg.raw_paste_global_conf)

    def load(self):
        if self.cfg.paste is not None:
            return self.load_pasteapp()
        return self.load_wsgiapp()

    def wsgi(self):
        if self.callable is None:
            self.callable = self.load()
        return self.callable

    def reload(self):
        self.callable = None

    def __repr__(self):
        return "<ferrocorn Application %r>" % (self.app_uri,)


class Listener:
    """An entry of ``server.LISTENERS`` / ``worker.sockets`` (Gunicorn's ``BaseSocket``).

    ``str()`` is the address Gunicorn prints ("http://127.0.0.1:8000", "unix:/path");
    ``fileno()`` is the real listening descriptor. Socket methods (``getsockname()``, ...)
    go to a Python socket over a duplicate of it, so closing or collecting that socket can
    never close the descriptor the Rust side accepts on.
    """

    def __init__(self, fd, name):
        self._fd = fd
        self._name = name
        self._sock = None

    @property
    def sock(self):
        if self._sock is None:
            self._sock = socket.socket(fileno=os.dup(self._fd))
        return self._sock

    def fileno(self):
        return self._fd

    def getsockname(self):
        return self.sock.getsockname()

    def close(self):
        # Only our duplicate: the listener itself belongs to the Rust master.
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.sock, name)

    def __str__(self):
        return self._name

    def __repr__(self):
        return "<ferrocorn Listener %s fd=%d>" % (self._name, self._fd)


class Pidfile:
    """``server.pidfile``: which file holds the master's pid (Gunicorn's ``Pidfile``)."""

    def __init__(self, fname, pid):
        self.fname = fname
        self.pid = pid

    def validate(self):
        """The pid in the file if that process exists, else None (Gunicorn's rule)."""
        try:
            with open(self.fname) as f:
                wpid = int(f.read() or 0)
        except (OSError, ValueError):
            return None
        if wpid <= 0:
            return None
        try:
            os.kill(wpid, 0)
        except OSError as e:
            if e.errno == errno.EPERM:
                return wpid
            return None
        return wpid

    def __repr__(self):
        return "<ferrocorn Pidfile %r>" % (self.fname,)


class Arbiter(_Namespace):
    """``server`` in hooks: pid, cfg, log, app, num_workers, WORKERS, LISTENERS, ...

    The master loop is Rust. ``kill_worker``/``kill_workers`` signal workers directly, as
    Gunicorn's do; ``reload()``, ``reexec()`` and ``wakeup()`` are asynchronous: they send
    the master HUP, USR2 or CHLD and return at once, and the master acts on the signal in
    its loop (Gunicorn's run the work before returning, when called in the master).
    """

    @_Derived
    def address(self):
        return list(self.cfg.address)

    @_Derived
    def pidfile(self):
        fname = self.cfg.pidfile
        if not fname:
            return None
        # The new master of a USR2 upgrade writes beside the old one's file.
        if self.master_pid:
            fname = "%s.2" % fname
        return Pidfile(fname, self.pid)

    def kill_worker(self, pid, sig):
        try:
            os.kill(pid, sig)
        except OSError as e:
            if e.errno != errno.ESRCH:
                raise
            # Already gone: forget it and report it, as Gunicorn does.
            worker = self.WORKERS.pop(pid, None)
            if worker is not None:
                try:
                    self.cfg.worker_exit(self, worker)
                except OSError:
                    pass

    def kill_workers(self, sig):
        for pid in list(self.WORKERS.keys()):
            self.kill_worker(pid, sig)

    def wakeup(self):
        # A CHLD makes the master reap, check timeouts and manage the worker count now
        # instead of at its next one-second tick, which is what a wakeup is for.
        os.kill(self.pid, signal.SIGCHLD)

    def reload(self):
        os.kill(self.pid, signal.SIGHUP)

    def reexec(self):
        os.kill(self.pid, signal.SIGUSR2)


class WorkerTmp:
    """``worker.tmp``: the heartbeat. Gunicorn stamps a file's mtime; ferrocorn a shared-memory
    slot the master reads, so ``notify()`` beats that slot. ``last_update()`` has Gunicorn's
    values: the ``time.monotonic()`` of the last beat, and before the first beat the file's
    creation time, which is wall-clock time."""

    def __init__(self, beat, silent_ms):
        self._beat = beat
        self._silent_ms = silent_ms
        self._created = time.time()

    def notify(self):
        self._beat()

    def last_update(self):
        silent = self._silent_ms()
        if silent is None:
            return self._created
        return time.monotonic() - silent / 1000.0


class Worker(_Namespace):
    """``worker`` in hooks: pid, ppid, age, alive, booted, aborted, nr, cfg, log, tmp, ...

    In the worker process ``alive`` reads and writes the flag the Rust loop checks, so it
    turns False when the worker is told to stop, and setting it False stops the worker
    after the current request, as under Gunicorn.
    """

    @property
    def alive(self):
        cell = self.__dict__.get("_alive_cell")
        if cell is not None:
            return cell[0]()
        return self.__dict__.get("alive", True)

    @alive.setter
    def alive(self, value):
        cell = self.__dict__.get("_alive_cell")
        if cell is not None:
            cell[1](bool(value))
        else:
            self.__dict__["alive"] = bool(value)

    def notify(self):
        self.tmp.notify()


class Request(_Namespace):
    """``req`` in pre_request/post_request: method, uri, path, query, version, headers, body..."""

    def should_close(self):
        if self.must_close:
            return True
        return self._head_close

    def force_close(self):
        self.must_close = True


class Response(_Namespace):
    """``resp`` in post_request: status, status_code, headers, sent, response_length, ..."""

    def should_close(self):
        if self.must_close or self._req.should_close():
            return True
        if self.response_length is not None or self.chunked:
            return False
        if self._req.method == "HEAD":
            return False
        code = self.status_code
        if code is not None and (code < 200 or code in (204, 304)):
            return False
        return True


def start_ctx(cwd):
    """Gunicorn's ``START_CTX``: what the USR2 re-exec runs, and where."""
    return {"args": [sys.executable] + list(sys.argv), "cwd": cwd, 0: sys.executable}


class FileWrapper:
    """``wsgi.file_wrapper``: iterates a file-like object in blocks."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __getitem__(self, key):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise IndexError

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration
