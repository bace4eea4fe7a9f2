"""Python stacks of every thread, for the log line a worker writes when it is aborted.

Called from the worker's SIGABRT handler (a WORKER TIMEOUT), which runs on the main thread
between bytecodes, so the main thread's own stack shows where the app was stuck.
"""

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
    return "\n".join(out)
