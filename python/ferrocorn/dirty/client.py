"""The client HTTP workers use to call dirty apps: ``get_dirty_client()`` (one per thread,
blocking; fine under gevent's patched sockets) and ``await get_dirty_client_async()`` (one
per event loop: its tasks share one connection, their calls told apart by request id, and
run at once).

Timeouts: the default follows the server's ``dirty_timeout`` (``FERROCORN_DIRTY_TIMEOUT``,
exported by the master): a call may wait that long for a free dirty worker and run that
long, so the client waits both plus a 5 s margin, and never gives up on its own with
``dirty_timeout = 0``. Outside ferrocorn (no variable) it is Gunicorn's 30 s.

Reconnection: the arbiter's socket path never changes, so a connection found closed
before a call (the arbiter was respawned) is replaced, and the connect is retried for a
while. A call is sent again only if it is known not to have run: the send itself failed,
or a stopping arbiter refused it (``not_run``: a HUP with new dirty settings hands the
socket path to a new arbiter). A connection lost after the call was sent raises
DirtyConnectionError, as the call may have run.
"""

import asyncio
import errno
import itertools
import os
import select
import socket
import threading
import time
import weakref

from . import protocol as P
from .errors import DirtyConnectionError, DirtyError, DirtyProtocolError, DirtyTimeoutError
from .multiplex import _STREAM_LOW, _Draining, _Multiplexed, _remaining, _StreamQueue

_MARGIN = 5.0
_CONNECT_WINDOW = 30.0
_UNSET = object()


def default_timeout():
    """The client timeout that follows the server's dirty_timeout (None: no limit)."""
    value = os.environ.get("FERROCORN_DIRTY_TIMEOUT")
    if value is None:
        return 30.0
    seconds = float(value)
    return None if seconds <= 0 else 2 * seconds + _MARGIN


def _connect_deadline(deadline):
    window = time.monotonic() + _CONNECT_WINDOW
    return window if deadline is None else min(deadline, window)


def _no_permission(err, path):
    # Waiting does not grant a permission: say so at once rather than after the window.
    if err.errno in (errno.EACCES, errno.EPERM):
        raise DirtyConnectionError(
            "Permission denied connecting to dirty arbiter socket %s: %s "
            "(does this process run as the server's --user/--group?)" % (path, err.strerror),
            socket_path=path,
        ) from err


def _not_run(msg_type, reply):
    """Whether the arbiter refused the call before any worker saw it (it is stopping)."""
    if msg_type != P.MSG_ERROR:
        return False
    return bool(((reply.get("error") or {}).get("details") or {}).get("not_run"))


def _reply(msg_type, reply):
    if msg_type == P.MSG_RESPONSE:
        return reply.get("result")
    if msg_type == P.MSG_ERROR:
        raise DirtyError.from_dict(reply.get("error") or {})
    raise DirtyProtocolError("Unexpected message type 0x%02x in reply" % msg_type)


class DirtyClient:
    """A connection to the dirty arbiter. Thread-safe for the blocking API (one call at a
    time); the async API serializes calls per client as well."""

    def __init__(self, socket_path, timeout=_UNSET):
        self.socket_path = socket_path
        self.timeout = default_timeout() if timeout is _UNSET else timeout
        self._sock = None
        self._aconn = None
        self._lock = threading.Lock()
        self._alock = None
        self._ids = itertools.count(1)

    def _deadline(self):
        return None if self.timeout is None else time.monotonic() + self.timeout

    def _request(self, app_path, action, args, kwargs):
        rid = next(self._ids)
        return rid, P.frame(P.MSG_REQUEST, rid, P.request_payload(app_path, action, args, kwargs))

    # ---- blocking API --------------------------------------------------------------------

    def connect(self):
        if self._sock is None:
            self._sock = self._open(self._deadline())

    def _open(self, deadline):
        until = _connect_deadline(deadline)
        pause = 0.05
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(_remaining(until) or 0.001)
                sock.connect(self.socket_path)
                return sock
            except OSError as e:
                sock.close()
                _no_permission(e, self.socket_path)
                # Missing or refusing: the arbiter may be restarting. Try again for a while.
                if time.monotonic() + pause >= until:
                    raise DirtyConnectionError(
                        "Failed to connect to dirty arbiter: %s" % e, socket_path=self.socket_path
                    ) from e
                time.sleep(pause)
                pause = min(pause * 2, 0.5)

    def _usable(self, sock):
        # Readable while idle means EOF (the arbiter went away) or stray bytes: unusable.
        readable, _, _ = select.select([sock], [], [], 0)
        return not readable

    def _send(self, data, deadline):
        for attempt in (1, 2):
            if self._sock is not None and not self._usable(self._sock):
                self._close_socket()
            if self._sock is None:
                self._sock = self._open(deadline)
            try:
                self._sock.settimeout(_remaining(deadline))
                self._sock.sendall(data)
                return
            except OSError as e:
                # The arbiter did not get a whole request: sending it again is safe.
                self._close_socket()
                if attempt == 2:
                    raise DirtyConnectionError(
                        "Failed to send to dirty arbiter: %s" % e, self.socket_path
                    ) from e

    def _recv(self, sock, rid, deadline):
        try:
            sock.settimeout(_remaining(deadline))
            msg_type, got, reply = P.recv_message(sock)
        except socket.timeout:
            raise DirtyTimeoutError(
                "Timeout waiting for dirty app response", timeout=self.timeout
            ) from None
        except (EOFError, OSError) as e:
            raise DirtyConnectionError(
                "Connection to dirty arbiter lost while waiting for the reply: %s"
                % (e or "closed"),
                self.socket_path,
            ) from e
        if got != rid:
            raise DirtyProtocolError("Reply for request %d while waiting for %d" % (got, rid))
        return msg_type, reply

    def execute(self, app_path, action, *args, **kwargs):
        """Call ``action`` of the dirty app ``app_path`` and return its result."""
        rid, data = self._request(app_path, action, args, kwargs)
        deadline = self._deadline()
        with self._lock:
            for attempt in (1, 2):
                self._send(data, deadline)
                try:
                    msg_type, reply = self._recv(self._sock, rid, deadline)
                except DirtyError:
                    self._close_socket()
                    raise
                if attempt == 1 and _not_run(msg_type, reply):
                    # A stopping arbiter refused it unrun: the socket path now leads to
                    # the arbiter that replaces it.
                    self._close_socket()
                    continue
                break
        return _reply(msg_type, reply)

    def stream(self, app_path, action, *args, **kwargs):
        """Iterate over the chunks of an action that returns a generator."""
        return DirtyStreamIterator(self, app_path, action, args, kwargs)

    def _close_socket(self):
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def close(self):
        with self._lock:
            self._close_socket()

    # ---- async API -----------------------------------------------------------------------

    async def connect_async(self):
        await self._conn_async(self._deadline())

    async def _open_async(self, deadline):
        until = _connect_deadline(deadline)
        pause = 0.05
        while True:
            try:
                return await asyncio.wait_for(
                    asyncio.open_unix_connection(self.socket_path), _remaining(until)
                )
            except asyncio.TimeoutError:
                raise DirtyTimeoutError(
                    "Timeout connecting to dirty arbiter", timeout=self.timeout
                ) from None
            except OSError as e:
                _no_permission(e, self.socket_path)
                if time.monotonic() + pause >= until:
                    raise DirtyConnectionError(
                        "Failed to connect to dirty arbiter: %s" % e, socket_path=self.socket_path
                    ) from e
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.5)

    async def _conn_async(self, deadline):
        """The shared connection, (re)opened when missing or closed by the arbiter."""
        conn = self._aconn
        if conn is not None and not conn.usable():
            if not conn.draining:
                conn.close()
            conn = self._aconn = None
        if conn is None:
            if self._alock is None:
                self._alock = asyncio.Lock()
            async with self._alock:
                if self._aconn is None or not self._aconn.usable():
                    reader, writer = await self._open_async(deadline)
                    self._aconn = _Multiplexed(reader, writer, self.socket_path)
            conn = self._aconn
        return conn

    async def _start_async(self, rid, data, deadline, sink):
        """Send a request on the shared connection; its replies go to ``sink``. A request
        that could not be sent is sent once more on a new connection (it never arrived)."""
        attempt = 0
        while attempt < 2:
            conn = await self._conn_async(deadline)
            try:
                await conn.send(rid, data, sink, deadline)
                return conn
            except _Draining:
                continue  # refused by a stopping arbiter meanwhile: take the next connection
            except (OSError, asyncio.TimeoutError) as e:
                attempt += 1
                conn.close()
                if attempt == 2 or isinstance(e, asyncio.TimeoutError):
                    raise DirtyConnectionError(
                        "Failed to send to dirty arbiter: %s" % e, self.socket_path
                    ) from e

    async def execute_async(self, app_path, action, *args, **kwargs):
        """``execute`` for asyncio code. Calls from any number of tasks share one
        connection and run at once."""
        rid, data = self._request(app_path, action, args, kwargs)
        deadline = self._deadline()
        for attempt in (1, 2):
            fut = asyncio.get_running_loop().create_future()
            conn = await self._start_async(rid, data, deadline, fut)
            try:
                msg_type, reply = await asyncio.wait_for(fut, _remaining(deadline))
            except asyncio.TimeoutError:
                conn.forget(rid)
                raise DirtyTimeoutError(
                    "Timeout waiting for dirty app response", timeout=self.timeout
                ) from None
            except BaseException:
                conn.forget(rid)
                raise
            if attempt == 1 and _not_run(msg_type, reply):
                self._retire_conn(conn)
                continue
            return _reply(msg_type, reply)

    def _retire_conn(self, conn):
        # A stopping arbiter: the path now leads to its successor, so new calls go there,
        # while the calls already on this connection still get their replies from it.
        if self._aconn is conn:
            self._aconn = None
        conn.drain()

    def stream_async(self, app_path, action, *args, **kwargs):
        """``stream`` for asyncio code: an async iterator."""
        return DirtyAsyncStreamIterator(self, app_path, action, args, kwargs)

    async def _close_async(self):
        conn, self._aconn = self._aconn, None
        if conn is not None:
            conn.close()

    async def close_async(self):
        await self._close_async()

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    async def __aenter__(self):
        await self.connect_async()
        return self

    async def __aexit__(self, *exc):
        await self.close_async()


class _StreamBase:
    # A stream owns a connection of its own until its END: the client's connection is
    # taken for it, so other calls on the same client open another one meanwhile.

    def __init__(self, client, app_path, action, args, kwargs):
        self.client = client
        self.app_path = app_path
        self.action = action
        self.args = args
        self.kwargs = kwargs
        self._rid = None
        self._done = False

    def _idle_deadline(self):
        return self.client._deadline()

    def _chunk(self, msg_type, got, reply):
        if got != self._rid:
            raise DirtyProtocolError("Chunk for request %d in stream %d" % (got, self._rid))
        if msg_type == P.MSG_CHUNK:
            return False, reply.get("data")
        if msg_type == P.MSG_END or msg_type == P.MSG_RESPONSE:
            return True, None
        _reply(msg_type, reply)
        raise DirtyProtocolError("Unexpected message type 0x%02x in stream" % msg_type)


class DirtyStreamIterator(_StreamBase):
    """Chunks of a streamed call (blocking). Each chunk is waited for at most the client
    timeout; closing the iterator early cancels the stream in the dirty worker."""

    _sock = None

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        c = self.client
        deadline = self._idle_deadline()
        try:
            first = self._sock is None
            for attempt in (1, 2):
                if self._sock is None:
                    self._rid, data = c._request(self.app_path, self.action, self.args, self.kwargs)
                    with c._lock:
                        c._send(data, deadline)
                        self._sock, c._sock = c._sock, None
                msg_type, reply = c._recv(self._sock, self._rid, deadline)
                if first and attempt == 1 and _not_run(msg_type, reply):
                    self._sock.close()
                    self._sock = None
                    continue
                break
            end, data = self._chunk(msg_type, self._rid, reply)
        except BaseException:
            self._finish(reuse=False)
            raise
        if end:
            self._finish(reuse=True)
            raise StopIteration
        return data

    def _finish(self, reuse):
        self._done = True
        sock, self._sock = self._sock, None
        if sock is None:
            return
        with self.client._lock:
            if reuse and self.client._sock is None:
                self.client._sock = sock
                return
        sock.close()

    def close(self):
        """Stop early: the arbiter cancels the rest when the connection closes."""
        self._finish(reuse=False)

    def __del__(self):
        if self._sock is not None:
            self._sock.close()


class DirtyAsyncStreamIterator(_StreamBase):
    """Chunks of a streamed call, for ``async for``. Each chunk is waited for at most the
    client timeout; ``aclose()`` (or dropping the iterator) cancels the stream."""

    _conn = None

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self._done:
            raise StopAsyncIteration
        c = self.client
        deadline = self._idle_deadline()
        try:
            for attempt in (1, 2):
                if self._conn is None:
                    self._rid, data = c._request(self.app_path, self.action, self.args, self.kwargs)
                    self._queue = _StreamQueue()
                    self._conn = await c._start_async(self._rid, data, deadline, self._queue)
                    first = True
                else:
                    first = False
                try:
                    msg_type, reply = await asyncio.wait_for(
                        self._queue.get(), _remaining(deadline)
                    )
                except asyncio.TimeoutError:
                    raise DirtyTimeoutError(
                        "Timeout waiting for next chunk", timeout=c.timeout
                    ) from None
                if self._queue.paused and self._queue.qsize() <= _STREAM_LOW:
                    self._queue.paused = False
                    self._conn.flow(self._rid, P.MSG_RESUME)
                if first and attempt == 1 and _not_run(msg_type, reply):
                    self._conn.forget(self._rid)
                    c._retire_conn(self._conn)
                    self._conn = None
                    continue
                break
            end, data = self._chunk(msg_type, self._rid, reply)
        except BaseException:
            self._finish(cancel=True)
            raise
        if end:
            self._finish(cancel=False)
            raise StopAsyncIteration
        return data

    def _finish(self, cancel):
        self._done = True
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.forget(self._rid)
            if cancel:
                conn.cancel(self._rid)

    async def aclose(self):
        """Stop early: the dirty worker stops the generator."""
        self._finish(cancel=True)

    def __del__(self):
        if self._conn is not None:
            self._finish(cancel=True)


# ---- per-thread / per-context clients -------------------------------------------------------

_local = threading.local()
_loop_clients = weakref.WeakKeyDictionary()
_socket_path = None


def set_dirty_socket_path(path):
    """Point clients (and the stash) at ``path`` instead of ``GUNICORN_DIRTY_SOCKET``."""
    global _socket_path
    _socket_path = path
    from .stash import set_stash_socket_path

    set_stash_socket_path(path)


def get_dirty_socket_path():
    path = _socket_path or os.environ.get("GUNICORN_DIRTY_SOCKET")
    if not path:
        raise DirtyError(
            "Dirty socket path not configured. "
            "Make sure dirty_workers > 0 and dirty_apps are configured."
        )
    return path


def get_dirty_client(timeout=None):
    """This thread's client (made on first use). ``timeout`` in seconds overrides the
    default, which follows dirty_timeout, for a client made by this call only: the shared
    client keeps the timeout it was made with."""
    client = getattr(_local, "client", None)
    if client is None:
        client = DirtyClient(get_dirty_socket_path())
        if timeout is not None:
            client.timeout = timeout
        _local.client = client
    return client


async def get_dirty_client_async(timeout=None):
    """The client of the running event loop (made on first use): its calls from every
    task share one connection and run at once. ``timeout`` as get_dirty_client."""
    loop = asyncio.get_running_loop()
    client = _loop_clients.get(loop)
    if client is None:
        client = DirtyClient(get_dirty_socket_path())
        if timeout is not None:
            client.timeout = timeout
        _loop_clients[loop] = client
    return client


def close_dirty_client():
    client = getattr(_local, "client", None)
    if client is not None:
        client.close()
        _local.client = None


async def close_dirty_client_async():
    client = _loop_clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.close_async()
