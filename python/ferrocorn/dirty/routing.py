"""Routing in the dirty arbiter: the client connections and the calls they send.

``Routing`` is a part of ``DirtyArbiter`` (arbiter.py), kept here so each file stays
small: it serves client connections (REQUEST, STASH, STATUS, MANAGE, END frames), keeps
the FIFO of calls waiting for a worker thread, gives each call to the least busy ready
worker that loads its app, forwards the worker's replies and chunks under the caller's
id, and cancels the calls of a client that leaves. It forks and reaps nothing: worker
life cycle, pool size and signals stay in arbiter.py (a worker that timed out a call is
handed to its ``retire``).
"""

import asyncio
import collections
import signal
import time

from . import protocol as P
from .errors import (
    DirtyAppNotFoundError,
    DirtyConnectionError,
    DirtyNoWorkersAvailableError,
    DirtyProtocolError,
    DirtyTimeoutError,
)
from .stash import handle_stash
from .worker import _secs

class _Client:
    __slots__ = ("writer", "closed", "_drain_lock")

    def __init__(self, writer):
        self.writer = writer
        self.closed = False
        self._drain_lock = asyncio.Lock()  # drain() from several tasks is unsafe on 3.9

    def send(self, data):
        if not self.closed:
            self.writer.write(data)

    def over_limit(self):
        """Whether its unsent output is above the transport's high-water mark."""
        if self.closed:
            return False
        transport = self.writer.transport
        return transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]

    async def writable(self):
        """Wait until its unsent output is back under the low-water mark, or it is closed
        (abort() wakes a pending drain)."""
        if self.closed:
            return
        try:
            async with self._drain_lock:
                await self.writer.drain()
        except (ConnectionError, OSError, RuntimeError):
            pass  # gone: its connection's task cleans up

    def close(self):
        if not self.closed:
            self.closed = True
            self.writer.close()

    def abort(self):
        # Gone (EOF) or never reading: unsent output would keep the transport, and any
        # drain waiting on it, alive forever.
        self.closed = True
        self.writer.transport.abort()


class _Call:
    __slots__ = (
        "client", "rid", "app_path", "body", "deadline", "cancelled",
        "worker", "aid", "held", "held_since", "waiter",
    )  # fmt: skip

    def __init__(self, client, rid, app_path, body, deadline):
        self.client = client
        self.rid = rid
        self.app_path = app_path
        self.body = body
        self.deadline = deadline
        self.cancelled = False
        self.worker = None  # set with aid when given to a worker
        self.aid = None
        # Why its stream is paused at the worker: "arbiter" (the client's socket is full)
        # and/or "client" (ferrocorn's async client is not consuming it).
        self.held = set()
        self.held_since = None
        self.waiter = None  # the task resuming it once the client's socket drains



class Routing:
    """Client-facing half of the dirty arbiter (mixed into DirtyArbiter)."""

    async def _adopt(self, conn):
        reader, writer = await asyncio.open_unix_connection(sock=conn)
        await self._serve_client(reader, writer)

    def _close_if_idle(self, client):
        if self.alive or client.closed:
            return
        if any(c.client is client for w in self.workers.values() for c in w.inflight.values()):
            return
        client.close()

    def _from_worker(self, worker, msg_type, aid, body):
        call = worker.inflight.get(aid)
        if msg_type != P.MSG_CHUNK:
            worker.inflight.pop(aid, None)
        if call is not None and not call.cancelled:
            client = call.client
            client.send(P.raw_frame(msg_type, call.rid, body))
            if msg_type == P.MSG_CHUNK:
                if "arbiter" not in call.held and client.over_limit():
                    # Flow control per call: this stream waits at its worker until the
                    # client reads; the link, and the worker's other calls, go on.
                    self._hold(call, "arbiter")
                    call.waiter = self._loop.create_task(self._resume_when_drained(call))
            elif not self.alive:
                self._close_if_idle(client)
        if (
            msg_type == P.MSG_ERROR
            and _error_type(body) == "DirtyTimeoutError"
            and not worker.retiring
        ):
            # The call's thread may run on forever: replace the worker.
            self.log.warning("Dirty worker (pid:%s) timed out a call; replacing it", worker.pid)
            self.retire(worker, signal.SIGTERM)
            self._guarded(self.manage_workers)
        elif msg_type != P.MSG_CHUNK:
            self._pump()

    async def _resume_when_drained(self, call):
        await call.client.writable()
        self._release(call, "arbiter")

    def _hold(self, call, reason):
        if call.cancelled or call.worker is None:
            return
        if not call.held:
            call.held_since = time.monotonic()
            self._to_worker(call.worker, P.frame(P.MSG_PAUSE, call.aid))
        call.held.add(reason)

    def _release(self, call, reason):
        if reason not in call.held:
            return
        call.held.discard(reason)
        if not call.held:
            call.held_since = None
            if not call.cancelled and call.worker.inflight.get(call.aid) is call:
                self._to_worker(call.worker, P.frame(P.MSG_RESUME, call.aid))

    def _to_worker(self, worker, data):
        if worker.writer is not None and not worker.gone:
            worker.writer.write(data)

    def _expire_held(self):
        """Cancel the streams paused longer than dirty_timeout: a client that never reads
        must not hold a worker thread forever."""
        if self.timeout <= 0:
            return
        now = time.monotonic()
        for w in list(self.workers.values()):
            for call in list(w.inflight.values()):
                if call.held_since is None or call.cancelled:
                    continue
                if now - call.held_since > self.timeout:
                    err = DirtyTimeoutError(
                        "Stream of %s paused for more than %ss: its client is not reading"
                        % (call.app_path, _secs(self.timeout)),
                        _secs(self.timeout),
                    )
                    self.log.warning(
                        "Dirty stream of %s (worker pid:%s) paused for more than %ss; "
                        "cancelled",
                        call.app_path,
                        w.pid,
                        _secs(self.timeout),
                    )
                    call.client.send(_error(call.rid, err))
                    call.cancelled = True
                    self._to_worker(w, P.frame(P.MSG_END, call.aid))

    async def _serve_client(self, reader, writer):
        client = _Client(writer)
        self._clients.add(client)
        try:
            # Connections stay served while stopping: the calls in flight get their replies.
            while True:
                msg_type, rid, body = await P.read_frame(reader)
                if msg_type == P.MSG_REQUEST:
                    self._submit(client, rid, body)
                elif msg_type in (P.MSG_STASH, P.MSG_MANAGE):
                    try:
                        msg = P.decode_payload(body)
                    except DirtyProtocolError as e:  # a bad payload in a whole frame
                        client.send(_error(rid, e))
                        continue
                    if msg_type == P.MSG_STASH:
                        client.send(handle_stash(self.stash_tables, rid, msg))
                    else:
                        client.send(self._manage(rid, msg))
                elif msg_type == P.MSG_STATUS:
                    client.send(P.frame(P.MSG_RESPONSE, rid, {"result": self.status()}))
                elif msg_type == P.MSG_END:
                    self._cancel(client, rid)
                elif msg_type in (P.MSG_PAUSE, P.MSG_RESUME):
                    self._client_flow(client, rid, msg_type == P.MSG_PAUSE)
                else:
                    client.send(
                        _error(rid, DirtyProtocolError("Unexpected message type 0x%02x" % msg_type))
                    )
        except (EOFError, ConnectionError, asyncio.CancelledError):
            pass  # cancelled: the arbiter is stopping
        except DirtyProtocolError as e:
            self.log.warning("Dirty client sent a bad frame: %s", e)
            client.send(_error(0, e))
        finally:
            self._clients.discard(client)
            client.abort()
            self._cancel(client, None)

    def _submit(self, client, rid, body):
        try:
            app_path = P.decode_payload(body).get("app_path")
        except DirtyProtocolError as e:
            client.send(_error(rid, e))
            return
        if not self.alive:
            client.send(_not_run(rid))
            self._close_if_idle(client)
            return
        if app_path not in self.app_specs:
            client.send(_error(rid, DirtyAppNotFoundError(app_path)))
            return
        if app_path in self._failing and not self._served(app_path):
            client.send(_error(rid, DirtyNoWorkersAvailableError(app_path)))
            return
        deadline = time.monotonic() + self.timeout if self.timeout > 0 else None
        self.waiting.append(_Call(client, rid, app_path, body, deadline))
        self._pump()

    def _pump(self):
        if not self.waiting:
            return
        keep = collections.deque()
        while self.waiting:
            call = self.waiting.popleft()
            if call.client.closed:
                continue
            worker = self._pick(call.app_path)
            if worker is None:
                keep.append(call)
                continue
            aid = next(self._ids)
            worker.inflight[aid] = call
            call.worker, call.aid = worker, aid
            worker.writer.write(P.raw_frame(P.MSG_REQUEST, aid, call.body))
        self.waiting = keep

    def _pick(self, app_path):
        best = None
        for w in self.workers.values():
            if (
                w.booted
                and not w.retiring
                and not w.gone
                and app_path in w.app_paths
                and len(w.inflight) < self.threads
            ):
                if best is None or len(w.inflight) < len(best[0].inflight):
                    best = [w]
                elif len(w.inflight) == len(best[0].inflight):
                    best.append(w)
        if best is None:
            return None
        return best[next(self._rr) % len(best)]

    def _served(self, app_path):
        """Whether a ready worker loads the app."""
        return any(
            w.booted and not w.gone and app_path in w.app_paths for w in self.workers.values()
        )

    def _expire_waiting(self):
        """Fail the waiting calls past dirty_timeout, and those for an app no worker can
        load (its last worker failed to boot and none is serving it), or no worker loads."""
        now = time.monotonic()
        keep = collections.deque()
        for call in self.waiting:
            if call.deadline is not None and now > call.deadline:
                call.client.send(
                    _error(
                        call.rid,
                        DirtyTimeoutError(
                            "Timed out waiting for a free dirty worker for %s" % call.app_path,
                            self.timeout,
                        ),
                    )
                )
            elif (call.app_path in self._failing and not self._served(call.app_path)) or not any(
                call.app_path in w.app_paths for w in self.workers.values()
            ):
                call.client.send(_error(call.rid, DirtyNoWorkersAvailableError(call.app_path)))
            else:
                keep.append(call)
        self.waiting = keep

    def _cancel(self, client, rid):
        """A client left (rid None) or dropped one stream: its calls' replies are dropped,
        and their workers told to stop streaming. Each call keeps its worker's slot until
        the worker's final frame for it."""
        for w in self.workers.values():
            for aid, call in w.inflight.items():
                if (
                    call.client is client
                    and (rid is None or call.rid == rid)
                    and not call.cancelled
                ):
                    call.cancelled = True
                    self._to_worker(w, P.frame(P.MSG_END, aid))

    def _client_flow(self, client, rid, pause):
        """A ferrocorn async client pausing (or resuming) one of its streams."""
        for w in self.workers.values():
            for call in w.inflight.values():
                if call.client is client and call.rid == rid and not call.cancelled:
                    if pause:
                        self._hold(call, "client")
                    else:
                        self._release(call, "client")
                    return


def _not_run(rid):
    # `not_run` tells the client the call never reached a worker: it may send it again.
    err = DirtyConnectionError("Dirty arbiter is shutting down", None)
    err.details["not_run"] = True
    return _error(rid, err)


def _error(rid, err):
    return P.frame(P.MSG_ERROR, rid, P.error_payload(err))


def _error_type(body):
    try:
        return (P.decode_payload(body).get("error") or {}).get("error_type")
    except DirtyProtocolError:
        return None
