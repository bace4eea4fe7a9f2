"""A dirty worker: the process that imports the dirty apps and runs the calls.

Forked by the dirty arbiter (arbiter.py sets the process up right after fork and then
calls ``DirtyWorker.run``, which never returns). It talks to the arbiter over one end of a
socketpair: REQUEST frames in, RESPONSE / ERROR / CHUNK / END frames out with the same
request id, and once, after every app's ``init()``, a STATUS frame reporting its apps and
their ``workers`` class attributes ("ready"). An END frame from the arbiter cancels a
stream whose client went away; PAUSE / RESUME (ferrocorn-internal) hold one stream back
before its next chunk while its client is slow, the other calls running on. Up to ``dirty_threads`` calls run at once, each in the
worker's thread pool.

Heartbeat: with ``dirty_timeout`` > 0 the worker stamps a shared clock every
``dirty_timeout / 2`` seconds unless a call (or one step of a stream) has been running
longer than ``dirty_timeout``: the arbiter kills a worker whose stamp is older than that.
With ``dirty_timeout`` = 0 there is no limit, no timer and no stamp.

It never touches the arbiter's sockets or the HTTP listeners (arbiter.py closes them).
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor
import inspect
import mmap
import os
import signal
import struct
import sys
import time
import traceback

from . import protocol as P
from .app import load_dirty_app
from .errors import (
    DirtyAppError,
    DirtyAppNotFoundError,
    DirtyProtocolError,
    DirtyTimeoutError,
    DirtyWorkerError,
)

BOOT_ERROR = 3
_STAMP = struct.Struct("d")
_DONE = object()


class Heartbeat:
    """A clock shared by a worker and the arbiter: an anonymous shared mapping made before
    fork, holding the CLOCK_MONOTONIC time of the worker's last beat (system-wide clock)."""

    def __init__(self):
        self._map = mmap.mmap(-1, _STAMP.size)
        self.notify()

    def notify(self):
        _STAMP.pack_into(self._map, 0, time.monotonic())

    def last_update(self):
        return _STAMP.unpack_from(self._map, 0)[0]

    def close(self):
        self._map.close()


class DirtyWorker:
    """The ``worker`` object dirty hooks receive (Gunicorn's attributes) and the worker loop."""

    def __init__(self, age, ppid, app_paths, cfg, log, generation=0):
        self.age = age
        self.pid = "[booting]"
        self.ppid = ppid
        self.app_paths = list(app_paths)
        self.cfg = cfg
        self.log = log
        self.generation = generation
        self.booted = False
        self.aborted = False
        self.alive = True
        self.tmp = Heartbeat()
        self.apps = {}
        # Arbiter side only: the socket to this worker and the calls in flight on it.
        self.conn = None
        self.writer = None
        self.link_task = None
        self.stop_deadline = None
        self.inflight = {}
        self.retiring = False  # told to stop (or timed out): no new calls, not counted
        self.gone = False  # its link closed: no new calls, still counted until reaped
        self.started = time.monotonic()

    def __str__(self):
        return "<DirtyWorker %s>" % self.pid

    def notify(self):
        self.tmp.notify()

    # ---- child side ----------------------------------------------------------------------

    def run(self, sock):
        """Serve the arbiter on ``sock`` until told to stop; never returns."""
        code = 0
        try:
            self.pid = os.getpid()
            self._timeout = float(self.cfg.dirty_timeout or 0)
            self._busy = {}
            self._cancelled = set()
            self._gates = {}  # rid -> asyncio.Event, clear while the arbiter paused its stream
            self._tasks = set()
            self._loop = None
            self._stop = None
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
                signal.signal(sig, self._early_stop)
            signal.signal(signal.SIGUSR1, lambda *_: self.log.reopen_files())
            signal.signal(signal.SIGABRT, self._abort)
            for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
                signal.signal(sig, signal.SIG_IGN)
            for k, v in (getattr(self.cfg, "env", None) or {}).items():
                os.environ[k] = v
            try:
                _set_owner(self.cfg)
                # A credential change clears the parent-death signal: arm it again, and
                # leave if the arbiter died meanwhile.
                from ferrocorn import _ferrocorn

                if not _ferrocorn.set_parent_death_signal(signal.SIGKILL, self.ppid):
                    self.log.info("Dirty worker %s: arbiter gone before boot", self.pid)
                    os._exit(0)
                self._load_apps()
                self.cfg.dirty_worker_init(self)
            except BaseException:
                self.log.exception("Dirty worker %s failed to boot", self.pid)
                code = BOOT_ERROR
                return
            self.booted = True
            asyncio.run(self._serve(sock))
        except BaseException:
            self.log.exception("Dirty worker %s failed", self.pid)
            code = 1
        finally:
            if code != BOOT_ERROR:
                self._close_apps()
            self.log.info("Dirty worker %s exiting", self.pid)
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def _early_stop(self, *_):
        self.alive = False
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._maybe_stop)

    def _abort(self, *_):
        # The arbiter found this worker stuck; a stuck thread cannot be joined, so leave now.
        self.log.warning("Dirty worker %s aborted (timeout)", self.pid)
        os._exit(1)

    def _load_apps(self):
        for path in self.app_paths:
            app = load_dirty_app(path)
            self.apps[path] = app
            app.init()
            self.log.info("Initialized dirty app: %s", path)
            if not self.alive:
                return

    def _close_apps(self):
        for path, app in self.apps.items():
            try:
                app.close()
            except Exception:
                self.log.exception("Error closing dirty app %s", path)

    async def _serve(self, sock):
        self._loop = asyncio.get_running_loop()
        self._stop = self._loop.create_future()
        threads = max(1, int(self.cfg.dirty_threads or 1))
        self._executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="dirty-worker"
        )
        reader, self._writer = await asyncio.open_unix_connection(sock=sock)
        self._drain_lock = asyncio.Lock()  # drain() from several tasks is unsafe on 3.9
        attrs = {p: _workers_attribute(app) for p, app in self.apps.items()}
        self._writer.write(P.frame(P.MSG_STATUS, 0, {"pid": self.pid, "apps": attrs}))
        beat = self._loop.create_task(self._heartbeat()) if self._timeout > 0 else None
        read = self._loop.create_task(self._read_loop(reader))
        self._maybe_stop()
        try:
            await asyncio.wait([read, self._stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            if beat is not None:
                beat.cancel()
            read.cancel()
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._writer.close()

    def _maybe_stop(self):
        if not self.alive and not self._tasks and self._stop is not None and not self._stop.done():
            self._stop.set_result(None)

    async def _heartbeat(self):
        period = self._timeout / 2.0
        while True:
            now = time.monotonic()
            # A call stuck past the limit must show as a missed beat: the arbiter then
            # replaces this worker, the only way to stop a thread that never returns.
            # None: the call waits for the arbiter to take its output, not for app code.
            if all(
                started is None or now - started <= self._timeout
                for started in self._busy.values()
            ):
                self.notify()
            await asyncio.sleep(period)

    async def _read_loop(self, reader):
        while True:
            try:
                msg_type, rid, body = await P.read_frame(reader)
            except EOFError:
                # The arbiter is gone (its end closed): nothing is left to serve.
                self.alive = False
                if self._stop is not None and not self._stop.done():
                    self._stop.set_result(None)
                return
            if msg_type == P.MSG_END:
                if rid in self._busy:  # still running: stop its stream at the next chunk
                    self._cancelled.add(rid)
                    self._gate(rid).set()
                continue
            if msg_type in (P.MSG_PAUSE, P.MSG_RESUME):
                if rid in self._busy:
                    gate = self._gate(rid)
                    if msg_type == P.MSG_PAUSE and rid not in self._cancelled:
                        gate.clear()
                    else:
                        gate.set()
                continue
            if msg_type != P.MSG_REQUEST:
                self._send_error(rid, DirtyWorkerError("Unknown message type: 0x%02x" % msg_type))
                continue
            if not self.alive:
                self._send_error(
                    rid, DirtyWorkerError("Dirty worker %s is shutting down" % self.pid, self.pid)
                )
                continue
            task = self._loop.create_task(self._handle(rid, body))
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    def _gate(self, rid):
        gate = self._gates.get(rid)
        if gate is None:
            gate = self._gates[rid] = asyncio.Event()
            gate.set()
        return gate

    async def _paused(self, rid):
        # The arbiter holds this stream back until its client reads: no app code runs for
        # it meanwhile (so the heartbeat ignores it), and the arbiter bounds the wait.
        gate = self._gates.get(rid)
        if gate is not None and not gate.is_set():
            self._busy[rid] = None
            await gate.wait()

    def _task_done(self, task):
        self._tasks.discard(task)
        self._maybe_stop()

    def _send(self, data):
        self._writer.write(data)

    async def _drain(self, rid):
        # Backpressure: a stream runs no further than the arbiter (and its client) reads.
        if rid in self._busy:
            self._busy[rid] = None
        async with self._drain_lock:
            await self._writer.drain()

    def _send_error(self, rid, error):
        self._send(P.frame(P.MSG_ERROR, rid, P.error_payload(error)))

    async def _handle(self, rid, body):
        app_path = action = None
        try:
            req = P.decode_payload(body)
            app_path, action = req.get("app_path"), req.get("action")
            app = self.apps.get(app_path)
            if app is None:
                raise DirtyAppNotFoundError(app_path)
            args, kwargs = req.get("args") or [], req.get("kwargs") or {}
            result = await self._step(rid, app_path, action, lambda: app(action, *args, **kwargs))
            if inspect.iscoroutine(result):
                result = await self._bounded(rid, app_path, action, result)
            if inspect.isgenerator(result):
                await self._stream_sync(rid, app_path, action, result)
            elif inspect.isasyncgen(result):
                await self._stream_async(rid, app_path, action, result)
            else:
                self._reply(rid, P.MSG_RESPONSE, {"result": result})
                await self._drain(rid)
        except DirtyTimeoutError as e:
            self._send_error(rid, e)
        except (DirtyAppNotFoundError, DirtyProtocolError) as e:
            self._send_error(rid, e)
        except Exception as e:
            tb = traceback.format_exc()
            self.log.error("Error executing %s.%s: %s\n%s", app_path, action, e, tb)
            self._send_error(
                rid, DirtyAppError(str(e), app_path=app_path, action=action, traceback=tb)
            )
        finally:
            self._busy.pop(rid, None)
            self._cancelled.discard(rid)
            self._gates.pop(rid, None)

    def _reply(self, rid, msg_type, payload):
        try:
            data = P.frame(msg_type, rid, payload)
        except DirtyProtocolError as e:
            raise DirtyProtocolError("Result cannot be sent: %s" % e.message) from None
        self._send(data)

    def _timed_out(self, app_path, action):
        self.log.warning(
            "Execution timeout for %s.%s after %ss", app_path, action, _secs(self._timeout)
        )
        return DirtyTimeoutError(
            "Execution of %s.%s timed out after %ss" % (app_path, action, _secs(self._timeout)),
            timeout=_secs(self._timeout),
        )

    async def _step(self, rid, app_path, action, fn):
        """Run ``fn`` in the pool, bounded by dirty_timeout (none when 0)."""
        fut = self._loop.run_in_executor(self._executor, fn)
        return await self._bounded(rid, app_path, action, fut)

    async def _bounded(self, rid, app_path, action, awaitable):
        self._busy[rid] = time.monotonic()
        try:
            if self._timeout <= 0:
                return await awaitable
            return await asyncio.wait_for(awaitable, self._timeout)
        except asyncio.TimeoutError:
            raise self._timed_out(app_path, action) from None

    async def _stream_sync(self, rid, app_path, action, gen):
        def advance():
            try:
                return next(gen)
            except StopIteration:
                return _DONE

        try:
            while rid not in self._cancelled:
                # Each step gets the whole limit: a stream may run long while it progresses.
                chunk = await self._step(rid, app_path, action, advance)
                if chunk is _DONE:
                    break
                await self._chunk(rid, chunk)
            # Also when cancelled: every call ends with one final frame, which frees its
            # slot in the arbiter.
            self._send(P.frame(P.MSG_END, rid))
        finally:
            # close() runs the generator's finally blocks, in the pool: behind a step still
            # running there (threads=1) rather than beside it.
            try:
                self._executor.submit(gen.close)
            except RuntimeError:
                pass

    async def _chunk(self, rid, chunk):
        """Send one chunk of a stream, then wait while the link or the caller lags."""
        self._reply(rid, P.MSG_CHUNK, {"data": chunk})
        await self._drain(rid)
        await self._paused(rid)

    async def _stream_async(self, rid, app_path, action, agen):
        try:
            while rid not in self._cancelled:
                try:
                    chunk = await self._bounded(rid, app_path, action, agen.__anext__())
                except StopAsyncIteration:
                    break
                await self._chunk(rid, chunk)
            self._send(P.frame(P.MSG_END, rid))
        finally:
            await agen.aclose()


def _set_owner(cfg):
    """Become ``user``/``group`` (``--user``, ``--group``) as request workers do."""
    uid, gid = int(getattr(cfg, "uid", 0) or 0), int(getattr(cfg, "gid", 0) or 0)
    if gid:
        if getattr(cfg, "initgroups", False) and uid:
            import pwd

            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = None
            if name is not None:
                os.initgroups(name, gid)
                os.setgid(gid)
        if os.getgid() != gid:
            os.setgid(gid)
    if uid and os.getuid() != uid:
        os.setuid(uid)


def _workers_attribute(app):
    value = getattr(type(app), "workers", None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def _secs(t):
    return int(t) if float(t).is_integer() else t


# Signals the arbiter handles; a new worker puts the stopping ones back to their defaults
# and ignores the others until its own handlers are in place (a log reopen's USR1 or a
# HUP/TTIN/TTOU sent to the group must not kill a worker still booting).
_DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGCHLD)
_IGNORED_SIGNALS = (signal.SIGHUP, signal.SIGUSR1, signal.SIGTTIN, signal.SIGTTOU)


def become_worker(worker, arbiter_pid, loop, arbiter_socks, sock):
    """In a child just forked by the arbiter: drop everything of the arbiter's, then serve
    as ``worker`` on ``sock``. Never returns."""
    try:
        from ferrocorn import _ferrocorn

        # SIGKILL: an arbiter that dies abnormally cannot stop its workers, and a worker
        # stuck in app code would ignore a TERM; the link's EOF covers the rest.
        if not _ferrocorn.set_parent_death_signal(signal.SIGKILL, arbiter_pid):
            os._exit(0)  # the arbiter died before the death signal was armed
        signal.set_wakeup_fd(-1)
        for sig in _IGNORED_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        for sig in _DEFAULT_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        _close_inherited(loop, arbiter_socks)
        asyncio.events._set_running_loop(None)
        _ferrocorn.set_proc_title("dirty-worker [%s]" % worker.cfg.proc_name)
    except BaseException:
        worker.log.exception("Dirty worker setup failed")
        os._exit(BOOT_ERROR)
    worker.run(sock)


def _close_inherited(loop, socks):
    """Close, in a just-forked child, the arbiter's sockets and its event loop's fds.

    Raw ``os.close`` only: going through asyncio would edit the epoll set the child shares
    with the arbiter. The objects stay referenced (the arbiter's frames never unwind in the
    child, which leaves by ``os._exit``), so nothing closes these numbers a second time.
    """
    fds = set()
    selector = getattr(loop, "_selector", None)
    if selector is not None:
        fds.add(selector.fileno())
        fds.update(key.fd for key in selector.get_map().values())
    for name in ("_ssock", "_csock"):
        s = getattr(loop, name, None)
        if s is not None:
            fds.add(s.fileno())
    for s in socks:
        if s is not None:
            s.close()
    for fd in fds:
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass
