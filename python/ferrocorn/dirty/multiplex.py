"""The async client's connection (``get_dirty_client_async``): one per event loop, shared by
its tasks, their requests told apart by id; a reader task hands each reply to the call or
stream waiting for it, and a stream whose consumer lags is paused at its dirty worker.

Owns: that connection, its reader and its per-stream queues. Must not touch: timeouts,
retries and the public API (``client``).
"""

import asyncio
import time

from . import protocol as P
from .errors import DirtyConnectionError, DirtyError


def _remaining(deadline):
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


# A stream whose consumer lags this many chunks behind is paused at its dirty worker
# (a ferrocorn-internal PAUSE through the arbiter), and resumed once it is back to half.
_STREAM_HIGH = 32
_STREAM_LOW = _STREAM_HIGH // 2


class _StreamQueue(asyncio.Queue):
    paused = False


class _Draining(Exception):
    """The connection refuses new calls (its arbiter is stopping); use another."""


class _Multiplexed:
    """One connection to the arbiter shared by every asyncio task of a client: requests
    are told apart by id, and a reader task hands each reply to the future (a call) or
    queue (a stream) waiting for it. Replies for ids nobody waits for (a call that timed
    out) are dropped."""

    def __init__(self, reader, writer, socket_path):
        self.writer = writer
        self.socket_path = socket_path
        self.waiting = {}
        self.broken = None
        self.draining = False  # refused a call (not_run): no new calls; closed once idle
        self._wlock = asyncio.Lock()
        self._task = asyncio.get_running_loop().create_task(self._read(reader))

    def usable(self):
        return self.broken is None and not self.draining and not self.writer.is_closing()

    def drain(self):
        self.draining = True
        self._close_if_idle()

    def _close_if_idle(self):
        if self.draining and not self.waiting and self.broken is None:
            self.close()

    async def send(self, rid, data, sink, deadline):
        if self.broken is not None:
            raise self.broken
        if self.draining:
            raise _Draining()
        self.waiting[rid] = sink
        try:
            async with self._wlock:  # drain() is not safe from several tasks on 3.9
                if self.draining:
                    raise _Draining()
                self.writer.write(data)
                await asyncio.wait_for(self.writer.drain(), _remaining(deadline))
        except BaseException:
            self.forget(rid)
            raise

    def forget(self, rid):
        self.waiting.pop(rid, None)
        self._close_if_idle()

    def cancel(self, rid):
        # Also while draining: the worker must stop a stream nobody reads any more.
        if self.broken is None and not self.writer.is_closing():
            try:
                self.writer.write(P.frame(P.MSG_END, rid))
            except (RuntimeError, OSError):  # the loop or the transport is already gone
                pass

    def flow(self, rid, msg_type):
        if self.broken is None and not self.writer.is_closing():
            try:
                self.writer.write(P.frame(msg_type, rid))
            except (RuntimeError, OSError):
                pass

    async def _read(self, reader):
        try:
            while True:
                msg_type, rid, reply = await P.read_message(reader)
                sink = self.waiting.get(rid)
                if sink is None:
                    continue
                if isinstance(sink, asyncio.Queue):
                    sink.put_nowait((msg_type, reply))
                    if not sink.paused and sink.qsize() > _STREAM_HIGH:
                        # This connection keeps reading for its other calls: only this
                        # stream waits, at its worker, until its consumer catches up.
                        sink.paused = True
                        self.flow(rid, P.MSG_PAUSE)
                else:
                    del self.waiting[rid]
                    if not sink.done():
                        sink.set_result((msg_type, reply))
                    if self.draining and not self.waiting:
                        return  # the finally clause closes it
        except (EOFError, OSError, DirtyError) as e:
            self.broken = DirtyConnectionError(
                "Connection to dirty arbiter lost while waiting for the reply: %s"
                % (e or "closed"),
                self.socket_path,
            )
        except asyncio.CancelledError:
            self.broken = DirtyConnectionError(
                "Connection to dirty arbiter closed", self.socket_path
            )
        finally:
            if self.broken is None:
                self.broken = DirtyConnectionError(
                    "Connection to dirty arbiter closed", self.socket_path
                )
            waiting, self.waiting = self.waiting, {}
            for sink in waiting.values():
                if isinstance(sink, asyncio.Queue):
                    err = self.broken.to_dict()
                    sink.put_nowait((P.MSG_ERROR, {"error": err}))
                elif not sink.done():
                    sink.set_exception(self.broken)
            self.writer.close()

    def close(self):
        if self.broken is None:
            self.broken = DirtyConnectionError(
                "Connection to dirty arbiter closed", self.socket_path
            )
        self._task.cancel()
        self.writer.close()
