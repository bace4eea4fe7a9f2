"""The gevent worker's hub side: monkey-patching, the hub loop, and the graceful stop.

Rust owns the sockets, parsing and writing (on its own I/O thread) and serves each request
through the same WSGI path as the other workers; it hands complete requests to the hub
through an eventfd, which an io watcher here drains (``core.dispatch``), starting one
greenlet per request. What is here runs once per worker, or once per request to start its
greenlet, never per byte.
"""

import os
import time

#: How often the worker beats the heartbeat and checks that it should go on. A hub blocked
#: by a call that does not cooperate stops the beats, and `timeout` then aborts the worker.
BEAT_INTERVAL = 0.25
#: Greenlets kept waiting for the next request once theirs is answered. Starting a greenlet
#: costs more than serving a small request (its frame stack is allocated afresh), so a
#: finished one takes the next request instead; past this many idle ones, it ends.
IDLE_RUNNERS = 128


def patch():
    """Gunicorn's gevent worker patches everything, in each worker, after fork."""
    from gevent import monkey

    monkey.patch_all()
    import gevent

    # The hub may have been created before the fork (a preloaded app that used gevent).
    gevent.reinit()


def serve(core, graceful_timeout):
    """Run the worker until it is told to stop."""
    import gevent
    import gevent.event

    core.bind(_runners(core.run_call), gevent.event.Event)
    watcher = gevent.get_hub().loop.io(core.fileno(), 1)
    watcher.start(core.dispatch)
    core.start_serving()
    try:
        while core.alive():
            core.beat()
            if core.parent_changed():
                break
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


def _runners(run_call):
    """``submit(call)``: serve the request in an idle greenlet, or in a new one."""
    from gevent import get_hub, spawn_raw
    from gevent.hub import Waiter

    idle = []
    run_callback = get_hub().loop.run_callback

    def runner(call):
        waiter = Waiter()
        while True:
            try:
                run_call(call)
            finally:
                call = None
            if len(idle) >= IDLE_RUNNERS:
                return
            idle.append(waiter)
            call = waiter.get()

    def submit(call):
        if idle:
            # Handed over from a loop callback, which runs in the hub as a Waiter wants.
            run_callback(idle.pop().switch, call)
        else:
            spawn_raw(runner, call)

    return submit
