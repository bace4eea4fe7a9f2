"""The dirty arbiter: the process between the master and the dirty workers.

The Rust master forks it (listeners closed, signals reset, parent-death signal set, title
set) and calls ``run(cfg, log, socket_path, master_pid)``. It binds ``socket_path`` (the
same path for the master's whole life, so request workers reconnect to a respawned
arbiter), forks the dirty workers (each linked by a socketpair) and routes calls: a call
waits in one FIFO until a ready worker that loads its app has a free thread, then goes to
the least busy such worker; replies and stream chunks come back under the caller's id.
It also keeps the stash tables and answers STATUS / MANAGE for the control socket.

Routing (client connections, the waiting calls, replies) lives in routing.py. It never
imports an app module: workers report each app's ``workers`` attribute when
ready, so HUP (a new generation of workers, then all old ones stopped) loads new code.
Signals: TERM/INT/QUIT graceful stop, HUP reload, USR1 reopen logs, TTIN/TTOU resize;
the master is checked every second.
"""

import asyncio
import collections
import errno
import itertools
import os
import signal
import socket
import stat
import time

from . import protocol as P
from .app import validate_specs
from .errors import (
    DirtyError,
    DirtyProtocolError,
    DirtyTimeoutError,
    DirtyWorkerError,
)
from . import control
from .routing import Routing, _error, _not_run
from .worker import BOOT_ERROR, DirtyWorker, _secs, become_worker


# Signals the master forwards, or a user sends, that may arrive before the loop handles
# them (during on_dirty_starting, say): the master's fork leaves them ignored, and from
# `run` on they are remembered here, then raised again once the loop's handlers are in.
EARLY_SIGNALS = (signal.SIGHUP, signal.SIGUSR1, signal.SIGTTIN, signal.SIGTTOU)
_early = []


def _remember_early(signum, frame):
    _early.append(signum)


def run(cfg, log, socket_path, master_pid):
    """Serve as the dirty arbiter until stopped; returns the process exit status."""
    for sig in EARLY_SIGNALS:
        signal.signal(sig, _remember_early)
    return DirtyArbiter(cfg, log, socket_path, master_pid).run()


class DirtyArbiter(Routing):
    """The ``arbiter`` object dirty hooks receive, and the arbiter's loop."""

    def __init__(self, cfg, log, socket_path, master_pid):
        self.cfg = cfg
        self.log = log
        self.socket_path = socket_path
        self.ppid = master_pid
        self.pid = os.getpid()
        self.alive = True
        self.num_workers = int(cfg.dirty_workers)
        self.timeout = float(cfg.dirty_timeout or 0)
        self.threads = max(1, int(cfg.dirty_threads or 1))
        self.graceful_timeout = float(cfg.dirty_graceful_timeout)
        self.app_specs = {
            path: {"import_path": path, "worker_count": count, "original_spec": spec}
            for spec, (path, count) in zip(cfg.dirty_apps, validate_specs(cfg.dirty_apps))
        }
        self.workers = {}
        self.worker_age = 0
        self.generation = 0
        # app path -> `workers` class attribute (None: no limit), from this generation's workers
        self.learned = {}
        self.stash_tables = {}
        self.waiting = collections.deque()
        self._failing = set()  # apps whose latest worker failed to boot
        # app path -> (boot failures in a row, no new worker for it before this time)
        self._backoff = {}
        self._clients = set()
        self._ids = itertools.count(1)
        self._rr = itertools.count()
        self._listener = None
        self._server = None
        self._loop = None
        self._stopped = None

    # ---- life cycle ----------------------------------------------------------------------

    def run(self):
        self.log.info("Dirty arbiter starting (pid: %s)", self.pid)
        # Dirty apps may use the stash and the client too (workers inherit this).
        os.environ["GUNICORN_DIRTY_SOCKET"] = self.socket_path
        self._call_hook("on_dirty_starting", self)
        self._listener = self._bind()
        try:
            asyncio.run(self._main())
        finally:
            self._unlink_socket()
            if os.getppid() != self.ppid:
                self._remove_socket_dir()
            self.log.info("Dirty arbiter exiting (pid: %s)", self.pid)
        return 0

    def _bind(self):
        path = self.socket_path
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISSOCK(st.st_mode):
                raise RuntimeError("%s exists and is not a socket; not replacing it" % path)
            os.unlink(path)  # a previous arbiter's socket
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        uid, gid = int(getattr(self.cfg, "uid", 0) or 0), int(getattr(self.cfg, "gid", 0) or 0)
        if os.getuid() == 0 and (uid or gid):
            # Request workers run as --user/--group and must be able to connect: to the
            # socket and through the master's private (0700) directory holding it.
            os.chown(path, uid or -1, gid or -1)
            os.chown(os.path.dirname(path), uid or -1, gid or -1)
        sock.listen(1024)
        sock.setblocking(False)  # asyncio's way, and _drain_listener's before asyncio has it
        st = os.stat(path)
        self._socket_id = (st.st_dev, st.st_ino)
        st = os.stat(os.path.dirname(path))
        self._dir_id = (st.st_dev, st.st_ino)
        return sock

    def _unlink_socket(self):
        try:
            st = os.lstat(self.socket_path)
            if (st.st_dev, st.st_ino) == self._socket_id:
                os.unlink(self.socket_path)
        except OSError:
            pass

    def _remove_socket_dir(self):
        # The master is gone (killed: it could not clean up): its socket directory would
        # be left behind. Only the directory this arbiter was given, and only when empty.
        path = os.path.dirname(self.socket_path)
        try:
            st = os.lstat(path)
            if (st.st_dev, st.st_ino) == self._dir_id:
                os.rmdir(path)
                self.log.info("Dirty arbiter removed %s (its master is gone)", path)
        except OSError:
            pass

    async def _main(self):
        loop = self._loop = asyncio.get_running_loop()
        self._stopped = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            loop.add_signal_handler(sig, self._guarded, self._begin_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._guarded, self.reload)
        loop.add_signal_handler(signal.SIGUSR1, self._guarded, self._reopen)
        loop.add_signal_handler(signal.SIGTTIN, self._guarded, self._ttin)
        loop.add_signal_handler(signal.SIGTTOU, self._guarded, self._ttou)
        loop.add_signal_handler(signal.SIGCHLD, self._guarded, self._reap)
        while _early:
            os.kill(os.getpid(), _early.pop(0))
        server = self._server = await asyncio.start_unix_server(
            self._serve_client, sock=self._listener
        )
        self.log.info("Dirty arbiter listening on %s", self.socket_path)
        self._guarded(self.manage_workers)
        monitor = loop.create_task(self._monitor())
        await self._stopped
        server.close()
        monitor.cancel()
        await self._stop_workers()
        for client in list(self._clients):
            client.close()

    def _begin_stop(self, sig=None):
        if not self.alive:
            return
        self.alive = False
        if sig is not None:
            self.log.info("Dirty arbiter: %s received, stopping", signal.Signals(sig).name)
        if not self._stopped.done():
            self._stopped.set_result(None)
        # No connection may be left in the listener's backlog when it closes (it would be
        # reset, and its client could not tell whether its call ran): take the path away,
        # serve what is queued, then close. Clients retry the connect meanwhile, until the
        # master's next arbiter binds the path.
        self._unlink_socket()
        self._drain_listener()
        if self._server is not None:
            self._server.close()
        # Calls not yet given to a worker are refused as not run (the client sends them
        # again, to whatever arbiter now holds the socket); idle connections are closed,
        # so their clients reconnect before their next call.
        waiting, self.waiting = self.waiting, collections.deque()
        for call in waiting:
            call.client.send(_not_run(call.rid))
        for client in list(self._clients):
            self._close_if_idle(client)

    def _drain_listener(self):
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # BlockingIOError: nothing left
                return
            self._loop.create_task(self._adopt(conn))

    async def _stop_workers(self):
        deadline = time.monotonic() + self.graceful_timeout
        for w in list(self.workers.values()):
            self.retire(w, signal.SIGTERM)
        while self.workers and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            self._reap()
        for pid in list(self.workers):
            self._kill(pid, signal.SIGKILL)
        for pid in list(self.workers):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            self._forget(pid, "Dirty worker (pid:%s) killed at shutdown" % pid)

    def _guarded(self, fn, *args):
        # A failure in one tick or signal (EMFILE from socketpair or fork, say) is logged;
        # supervision goes on, and the next tick tries again.
        try:
            fn(*args)
        except Exception:
            self.log.exception("Dirty arbiter: error in %s", getattr(fn, "__name__", fn))

    async def _monitor(self):
        while self.alive:
            await asyncio.sleep(1.0)
            if os.getppid() != self.ppid:
                self.log.warning("Dirty arbiter: master (pid:%s) is gone, stopping", self.ppid)
                self._begin_stop()
                return
            self._guarded(self._tick)

    def _tick(self):
        self._murder()
        self._expire_held()
        self._reap()  # a SIGCHLD handler that failed leaves children to collect
        self._expire_waiting()

    def _reopen(self):
        self.log.reopen_files()
        for pid in list(self.workers):
            self._kill(pid, signal.SIGUSR1)

    # ---- pool size -----------------------------------------------------------------------

    def app_limit(self, path):
        count = self.app_specs[path]["worker_count"]
        return count if count is not None else self.learned.get(path)

    def minimum_workers(self):
        return max([1] + [n for n in (self.app_limit(p) for p in self.app_specs) if n])

    def current_workers(self):
        return [
            w for w in self.workers.values() if w.generation == self.generation and not w.retiring
        ]

    def learning(self, current):
        # An app whose limit only its class knows: let one worker load it and report
        # before more workers are given apps.
        return any(
            self.app_specs[p]["worker_count"] is None
            and p not in self.learned
            and any(not w.booted and p in w.app_paths for w in current)
            for p in self.app_specs
        )

    def apps_for_new_worker(self, current=None):
        current = self.current_workers() if current is None else current
        out = []
        for path in self.app_specs:
            limit = self.app_limit(path)
            if limit is None or sum(path in w.app_paths for w in current) < limit:
                out.append(path)
        return out

    def manage_workers(self):
        if not self.alive:
            return
        current = self.current_workers()
        while len(current) < self.num_workers and not self.learning(current):
            apps = self.apps_for_new_worker(current)
            if not apps or self._backing_off(apps):
                break
            current.append(self.spawn_worker(apps))
        while len(current) > self.num_workers:
            victim = self.victim(current)
            current.remove(victim)
            self.retire(victim, signal.SIGTERM)
        # Old generation (before a HUP): stopped once the new one serves every app.
        old = [
            w for w in self.workers.values() if w.generation != self.generation and not w.retiring
        ]
        if old and current and all(w.booted for w in current) and not self.learning(current):
            self.log.info("Dirty workers reloaded; stopping %d old worker(s)", len(old))
            for w in old:
                self.retire(w, signal.SIGTERM)
        self._pump()

    def _backing_off(self, apps):
        now = time.monotonic()
        return any(self._backoff.get(p, (0, 0.0))[1] > now for p in apps)

    def _boot_failed(self, apps):
        # An app that cannot load would otherwise be forked for in a tight loop: wait
        # 1 s after the first failure in a row, doubling up to 30 s (the monitor retries).
        for path in apps:
            count = self._backoff.get(path, (0, 0.0))[0] + 1
            delay = min(30.0, 2.0 ** (count - 1))
            self._backoff[path] = (count, time.monotonic() + delay)
            self.log.warning(
                "Dirty app %s failed to boot %d time(s) in a row; next worker for it in %ss",
                path,
                count,
                _secs(delay),
            )

    def victim(self, current):
        """The worker to stop when shrinking: the oldest whose apps all stay served."""

        def spare(w):
            return all(sum(p in o.app_paths for o in current) > 1 for p in w.app_paths)

        return min(current, key=lambda w: (not spare(w), w.age))

    def _ttin(self):
        if self.num_workers >= control.MAX_DIRTY_WORKERS:
            self.log.warning(
                "SIGTTIN: Cannot increase above %s dirty workers", control.MAX_DIRTY_WORKERS
            )
            return
        self.num_workers += 1
        self.log.info("SIGTTIN: Increasing dirty workers to %s", self.num_workers)
        self.manage_workers()

    def _ttou(self):
        floor = self.minimum_workers()
        if self.num_workers <= floor:
            self.log.warning(
                "SIGTTOU: Cannot decrease below %s workers (required by app specs)", floor
            )
            return
        self.num_workers -= 1
        self.log.info("SIGTTOU: Decreasing dirty workers to %s", self.num_workers)
        self.manage_workers()

    def reload(self):
        self.log.info("Reloading dirty workers")
        self.generation += 1
        self.learned = {}
        self._backoff = {}  # new code may load now
        self.manage_workers()

    # ---- workers -------------------------------------------------------------------------

    def spawn_worker(self, app_paths):
        self.worker_age += 1
        worker = DirtyWorker(
            self.worker_age, self.pid, app_paths, self.cfg, self.log, self.generation
        )
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid = os.fork()
        except BaseException:
            mine.close()
            theirs.close()
            raise
        if pid == 0:
            socks = [mine, self._listener] + [w.conn for w in self.workers.values()]
            become_worker(worker, self.pid, self._loop, socks, theirs)  # never returns
        theirs.close()
        worker.pid = pid
        worker.conn = mine
        self.workers[pid] = worker
        worker.link_task = self._loop.create_task(self._worker_link(worker))
        self._call_hook("dirty_post_fork", self, worker)
        self.log.info("Spawned dirty worker (pid: %s) with apps: %s", pid, app_paths)
        return worker

    async def _worker_link(self, worker):
        try:
            reader, worker.writer = await asyncio.open_unix_connection(sock=worker.conn)
            # Never paused: a slow client's stream is paused at the worker per call
            # (routing.py), so this worker's other calls keep flowing.
            while True:
                msg_type, aid, body = await P.read_frame(reader)
                if msg_type == P.MSG_STATUS:
                    self._guarded(self._worker_ready, worker, P.decode_payload(body))
                    continue
                self._from_worker(worker, msg_type, aid, body)
        except (EOFError, ConnectionError, OSError, asyncio.CancelledError):
            pass
        except DirtyProtocolError as e:
            self.log.error("Dirty worker (pid:%s) sent a bad frame: %s", worker.pid, e)
            self._kill(worker.pid, signal.SIGKILL)
        finally:
            # The worker is exiting (or broke the link): route nothing more to it; its
            # calls in flight are failed, and it is replaced, when it is reaped.
            worker.gone = True
            if worker.writer is not None:
                worker.writer.close()

    def _worker_ready(self, worker, info):
        worker.booted = True
        self._failing.difference_update(worker.app_paths)
        for path in worker.app_paths:
            self._backoff.pop(path, None)
        if worker.generation == self.generation:
            for path, count in (info.get("apps") or {}).items():
                # None is learned too: the class sets no limit.
                if path in self.app_specs:
                    self.learned[path] = count
        self.log.debug("Dirty worker (pid:%s) ready", worker.pid)
        self.manage_workers()

    def retire(self, worker, sig):
        worker.retiring = True
        if worker.stop_deadline is None:
            worker.stop_deadline = time.monotonic() + self.graceful_timeout
        self._kill(worker.pid, sig)

    def _kill(self, pid, sig):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def _murder(self):
        now = time.monotonic()
        for pid, w in list(self.workers.items()):
            if w.retiring and w.stop_deadline and now > w.stop_deadline:
                self._kill(pid, signal.SIGKILL)
            elif self.timeout > 0 and now - w.tmp.last_update() > self.timeout:
                if not w.aborted:
                    self.log.critical("DIRTY WORKER TIMEOUT (pid:%s)", pid)
                    w.aborted = True
                    w.retiring = True
                    self._kill(pid, signal.SIGABRT)
                else:
                    self._kill(pid, signal.SIGKILL)

    def _reap(self):
        deferred = failed = False
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                raise
            if not pid:
                break
            worker = self.workers.get(pid)
            if worker is None:
                continue
            if (
                os.WIFEXITED(status)
                and os.WEXITSTATUS(status) == 0
                and worker.stop_deadline is None
            ):
                # A clean exit nobody asked for is a signal sent to the whole process
                # group (a terminal's ^C, a service manager's stop): the arbiter's own
                # is on its way, so the replacement waits for the next check.
                deferred = True
            if os.WIFSIGNALED(status):
                self.log.warning(
                    "Dirty worker (pid:%s) killed by signal %s", pid, os.WTERMSIG(status)
                )
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == BOOT_ERROR:
                self.log.error("Dirty worker failed to boot (pid:%s)", pid)
            if (
                not worker.booted
                and worker.stop_deadline is None
                and not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0)
            ):
                # Died before it was ready (BOOT_ERROR, a crash or OOM kill in init): the
                # next worker for its apps waits, or a broken init forks in a storm.
                self._failing.update(worker.app_paths)
                self._boot_failed(worker.app_paths)
                failed = True
            self._forget(pid, "Dirty worker (pid:%s) exited before replying" % pid)
            self.log.info("Dirty worker exited (pid:%s)", pid)
        if failed:
            self._expire_waiting()
        if self.alive and not deferred:
            self.manage_workers()
        else:
            self._pump()

    def _forget(self, pid, why):
        worker = self.workers.pop(pid, None)
        if worker is None:
            return
        if worker.aborted:
            err = DirtyTimeoutError(
                "Dirty worker (pid:%s) was stuck for more than %ss and was killed"
                % (pid, _secs(self.timeout)),
                _secs(self.timeout),
            )
        else:
            err = DirtyWorkerError(why, worker_id=pid)
        for call in worker.inflight.values():
            if not call.cancelled:
                call.client.send(_error(call.rid, err))
        worker.inflight.clear()
        # Through its transport: closing the socket under it would free the fd number
        # while the loop still watches it, and the replacement's socketpair reuses it.
        if worker.link_task is not None:
            worker.link_task.cancel()
        if worker.writer is not None:
            worker.writer.transport.abort()
        else:
            try:
                worker.conn.close()
            except OSError:
                pass
        worker.tmp.close()
        self._call_hook("dirty_worker_exit", self, worker)

    # ---- control -------------------------------------------------------------------------

    def status(self):
        return control.arbiter_status(self)

    def _manage(self, rid, msg):
        try:
            result = control.arbiter_manage(self, msg)
        except DirtyError as e:
            return _error(rid, e)
        return P.frame(P.MSG_RESPONSE, rid, {"result": result})

    def _call_hook(self, name, *args):
        hook = getattr(self.cfg, name, None)
        if hook is None:
            return
        try:
            hook(*args)
        except Exception:
            self.log.exception("Exception in %s hook", name)
