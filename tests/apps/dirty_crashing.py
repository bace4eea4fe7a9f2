"""A dirty app whose init() kills its own process, as an OOM kill or a crash in a native
extension would: the worker dies by a signal before it is ready."""

import os
import signal

try:
    from ferrocorn.dirty import DirtyApp
except ImportError:  # the Gunicorn run
    from gunicorn.dirty import DirtyApp


class App(DirtyApp):
    def init(self):
        os.kill(os.getpid(), signal.SIGKILL)

    def __call__(self, action, *args, **kwargs):
        raise AssertionError("never ready")
