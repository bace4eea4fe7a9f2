"""The ASGI worker's event-loop side: the loop itself, lifespan, and the graceful stop.

Rust owns the sockets, parsing and writing (on its own I/O thread) and builds every scope,
``receive`` and ``send``; it hands complete requests to this loop through an eventfd, and
``core.dispatch`` starts one task per request. What is here runs once per worker (or once per
call, for ``run_call``), never per byte.
"""

import asyncio
import inspect

#: Lifespan startup and shutdown are each capped, as in Gunicorn 27.
LIFESPAN_TIMEOUT = 30.0
#: How often the loop beats the heartbeat and checks that the worker should go on.
BEAT_INTERVAL = 0.25


class WebSocketDisconnected(OSError, RuntimeError):
    """Raised by ``send()`` once the WebSocket is closed (ASGI 2.4 asks for an OSError)."""


class LifespanStartupFailed(RuntimeError):
    """The app sent ``lifespan.startup.failed``."""


def asgi3(app):
    """The app as an ASGI 3 callable: an ASGI 2 double callable is wrapped, detected as
    uvicorn detects it."""
    if inspect.isclass(app):
        use3 = hasattr(app, "__await__")
    elif inspect.isfunction(app):
        use3 = asyncio.iscoroutinefunction(app)
    else:
        use3 = asyncio.iscoroutinefunction(getattr(app, "__call__", None))
    if use3:
        return app

    async def asgi2(scope, receive, send):
        instance = app(scope)
        await instance(receive, send)

    return asgi2


async def run_call(app, scope, receive, send):
    """One request's task: the app, then its end reported to the connection."""
    try:
        await app(scope, receive, send)
    except BaseException as exc:
        send.finish(exc)
        if not isinstance(exc, (Exception, asyncio.CancelledError)):
            raise
    else:
        send.finish()


def new_event_loop(kind, core):
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                core.log("warning", "uvloop not available, falling back to asyncio")
        else:
            core.log("debug", "Using uvloop event loop")
            return uvloop.new_event_loop()
    core.log("debug", "Using asyncio event loop")
    return asyncio.new_event_loop()


class Lifespan:
    """The lifespan protocol for one worker, as Gunicorn 27 runs it."""

    def __init__(self, app, core, state):
        self.app = app
        self.core = core
        self.state = state
        self.queue = asyncio.Queue()
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()
        self.failure = None
        self.reported = False
        self.shutdown_error = None
        self.finished = False
        self.task = None

    async def startup(self):
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "state": self.state,
        }
        await self.queue.put({"type": "lifespan.startup"})
        self.task = asyncio.get_running_loop().create_task(self._run(scope))
        try:
            await asyncio.wait_for(self.started.wait(), LIFESPAN_TIMEOUT)
        except asyncio.TimeoutError:
            self.task.cancel()
            raise RuntimeError("Lifespan startup timed out") from None
        if self.failure is not None:
            self.task.cancel()
            cls = LifespanStartupFailed if self.reported else RuntimeError
            raise cls("Lifespan startup failed: %s" % (self.failure or "Unknown error"))
        self.core.log("debug", "ASGI lifespan startup complete")

    async def shutdown(self):
        if self.finished:
            self.core.log("debug", "ASGI lifespan already finished")
            return
        await self.queue.put({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(self.stopped.wait(), LIFESPAN_TIMEOUT)
        except asyncio.TimeoutError:
            self.core.log("warning", "Lifespan shutdown timed out")
        if self.shutdown_error:
            self.core.log("error", "Lifespan shutdown error: %s" % self.shutdown_error)
        if self.task is not None and not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.core.log("debug", "ASGI lifespan shutdown complete")

    async def _run(self, scope):
        try:
            await self.app(scope, self.queue.get, self._send)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.core.log("debug", "Lifespan application raised: %s" % e)
            if not self.started.is_set():
                self.failure = str(e)
                self.started.set()
            elif not self.stopped.is_set():
                self.shutdown_error = str(e)
                self.stopped.set()
        finally:
            self.finished = True
            if not self.started.is_set():
                self.failure = "Application exited before startup complete"
                self.started.set()
            self.stopped.set()

    async def _send(self, message):
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self.started.set()
        elif kind == "lifespan.startup.failed":
            self.failure = message.get("message", "")
            self.reported = True
            self.started.set()
        elif kind == "lifespan.shutdown.complete":
            self.stopped.set()
        elif kind == "lifespan.shutdown.failed":
            self.shutdown_error = message.get("message", "")
            self.stopped.set()
        else:
            raise RuntimeError("Unexpected ASGI lifespan message %r" % kind)


def serve(core, app, loop_kind, lifespan_mode, graceful_timeout):
    """Run the worker until it is told to stop. SystemExit(3) when lifespan startup fails."""
    loop = new_event_loop(loop_kind, core)
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_serve(core, loop, asgi3(app), lifespan_mode, graceful_timeout))
    finally:
        _cancel_all(loop)
        asyncio.set_event_loop(None)
        loop.close()


async def _serve(core, loop, app, lifespan_mode, graceful_timeout):
    state = {}
    lifespan = None
    if lifespan_mode != "off":
        lifespan = Lifespan(app, core, state)
        # Startup may take a while (a model to load, a pool to fill): the worker beats
        # meanwhile, as long as the startup itself awaits; a blocking one is a hung worker.
        beating = loop.create_task(_beat(core))
        try:
            await lifespan.startup()
        except Exception as e:
            if lifespan_mode == "on" or isinstance(e, LifespanStartupFailed):
                core.log("error", "ASGI lifespan startup failed: %s" % e)
                raise SystemExit(3)
            core.log("debug", "ASGI lifespan not supported by app: %s" % e)
            lifespan = None
        finally:
            beating.cancel()
    core.bind(loop, app, run_call, state, WebSocketDisconnected)
    loop.add_reader(core.fileno(), core.dispatch)
    core.start_serving()
    try:
        while core.alive():
            core.beat()
            if core.parent_changed():
                break
            await asyncio.sleep(BEAT_INTERVAL)
        core.stop_serving()
        left = core.connections()
        if left:
            core.log("info", "Waiting for %d connections to finish..." % left)
            deadline = loop.time() + graceful_timeout
            while core.connections() and loop.time() < deadline:
                core.beat()
                await asyncio.sleep(0.05)
            left = core.connections()
            if left:
                core.log("warning", "Forcing close of %d connections" % left)
        core.close_all()
    finally:
        loop.remove_reader(core.fileno())
    if lifespan is not None:
        await lifespan.shutdown()


async def _beat(core):
    while True:
        core.beat()
        await asyncio.sleep(BEAT_INTERVAL)


def _cancel_all(loop):
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if not tasks:
        return
    for t in tasks:
        t.cancel()
    try:
        loop.run_until_complete(asyncio.wait(tasks, timeout=1.0))
    except BaseException:
        pass
