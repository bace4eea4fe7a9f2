"""Python stacks of every thread, and of every suspended greenlet when greenlets are in use
(the gevent worker), for the log line a worker writes when it is aborted.

Called from the worker's SIGABRT handler (a WORKER TIMEOUT), which runs on the main thread
between bytecodes, so the main thread's own stack shows where the app was stuck; under
gevent that is the greenlet that blocked the hub, and the others show what was waiting.
"""

import gc
import sys
import threading
import traceback


def format_all_stacks(skip_frames=1):
    names = {t.ident: t.name for t in threading.enumerate()}
    out = []
    for ident, frame in sys._current_frames().items():
        stack = traceback.extract_stack(frame)
        if ident == threading.main_thread().ident and skip_frames:
            # Leave out the signal handler's own frames.
            stack = stack[:-skip_frames] or stack
        out.append(
            "Thread %s (%s), most recent call last:\n%s"
            % (ident, names.get(ident, "?"), "".join(traceback.format_list(stack)).rstrip())
        )
    out.extend(_greenlet_stacks())
    return "\n".join(out)


def _greenlet_stacks():
    greenlet = sys.modules.get("greenlet")
    if greenlet is None:
        return []
    out = []
    current = greenlet.getcurrent()
    for g in gc.get_objects():
        if not isinstance(g, greenlet.greenlet) or g is current or not g:
            continue
        frame = g.gr_frame
        if frame is None:
            continue
        out.append(
            "Greenlet %s (suspended), most recent call last:\n%s"
            % (hex(id(g)), "".join(traceback.format_stack(frame)).rstrip())
        )
    return out
