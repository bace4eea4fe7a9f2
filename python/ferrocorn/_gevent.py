"""The gevent worker's hub side: monkey-patching, the hub loop, and the graceful stop.

Rust owns the sockets, parsing and writing (on its own I/O thread) and serves each request
through the same WSGI path as the other workers; it hands complete requests to the hub
through an eventfd, which an io watcher here drains (``core.dispatch``), starting one
greenlet per request. What is here runs once per worker, or once per request to start its
greenlet, never per byte.
"""

import contextvars
import os
import time

#: How often the worker beats the heartbeat and checks that it should go on. A hub blocked
#: by a call that does not cooperate stops the beats, and `timeout` then aborts the worker.
BEAT_INTERVAL = 0.25
#: Greenlets kept waiting for the next request once theirs is answered: starting a greenlet
#: costs more than serving a small request (its frame stack is allocated afresh, and freed
#: again when it ends), so a finished one takes the next request instead. Up to
#: `worker_connections` wait; every TRIM_INTERVAL seconds, those that were never needed in
#: that time end, down to IDLE_FLOOR, so a burst does not keep its memory for good.
IDLE_FLOOR = 16
TRIM_INTERVAL = 5.0


def patch():
    """Gunicorn's gevent worker patches everything, in each worker, after fork."""
    from gevent import monkey

    monkey.patch_all()
    import gevent

    # The hub may have been created before the fork (a preloaded app that used gevent).
    gevent.reinit()


def serve(core, graceful_timeout, worker_connections):
    """Run the worker until it is told to stop."""
    import gevent
    import gevent.event

    runners = Runners(core.run_call, worker_connections)
    core.bind(runners.submit, gevent.event.Event, _yield_briefly)
    watcher = gevent.get_hub().loop.io(core.fileno(), 1)
    watcher.start(core.dispatch)
    core.start_serving()
    try:
        next_trim = time.monotonic() + TRIM_INTERVAL
        while core.alive():
            core.beat()
            if core.parent_changed():
                break
            if time.monotonic() >= next_trim:
                runners.trim()
                next_trim = time.monotonic() + TRIM_INTERVAL
            gevent.sleep(BEAT_INTERVAL)
        core.stop_serving()
        deadline = time.monotonic() + graceful_timeout
        while (core.connections() or core.calls()) and time.monotonic() < deadline:
            core.beat()
            gevent.sleep(0.05)
        if core.connections() or core.calls():
            core.log("warning", "Worker graceful timeout (pid:%d)" % os.getpid())
        core.close_all()
    finally:
        watcher.stop()


class Runners:
    """The greenlets that serve requests: ``submit(call)`` hands a request to an idle one, or
    starts one."""

    def __init__(self, run_call, limit):
        from gevent import get_hub, spawn_raw

        self.run_call = run_call
        self.limit = max(limit, IDLE_FLOOR)
        self.idle = []
        #: The fewest idle runners since the last trim: that many were not needed.
        self.spare = 0
        self.run_callback = get_hub().loop.run_callback
        self.spawn_raw = spawn_raw

    def submit(self, call):
        idle = self.idle
        if idle:
            # Handed over from a loop callback, which runs in the hub as a Waiter wants.
            self.run_callback(idle.pop().switch, call)
            if len(idle) < self.spare:
                self.spare = len(idle)
        else:
            self.spare = 0
            self.spawn_raw(self._runner, call)

    def trim(self):
        surplus = min(self.spare, len(self.idle) - IDLE_FLOOR)
        for _ in range(max(surplus, 0)):
            # The oldest first; None ends a runner.
            self.run_callback(self.idle.pop(0).switch, None)
        self.spare = len(self.idle)

    def _runner(self, call):
        from gevent.hub import Waiter

        waiter = Waiter()
        idle = self.idle
        while call is not None:
            try:
                # A fresh context per request, as a fresh greenlet would give: context
                # variables an app sets (a user id bound for logging, say) do not reach the
                # next client this greenlet serves.
                contextvars.Context().run(self.run_call, call)
            finally:
                call = None
            if len(idle) >= self.limit:
                return
            idle.append(waiter)
            call = self._wait(waiter)

    def _wait(self, waiter):
        """The next request for this idle runner; None ends it."""
        idle = self.idle
        while True:
            try:
                return waiter.get()
            except (SystemExit, KeyboardInterrupt):
                if waiter in idle:
                    idle.remove(waiter)
                raise
            except BaseException:
                # Thrown in while idle (a gevent.Timeout an app started and never
                # cancelled). Still in the pool: leave it, and end. Taken from the pool
                # already: a request is on its way to this waiter, so wait for it.
                if waiter in idle:
                    idle.remove(waiter)
                    return None


def _yield_briefly():
    """Let other greenlets run for a moment (see ``http::set_cooperative_yield``)."""
    import gevent

    gevent.sleep(0.001)
