"""ferrocorn's dirty arbiters: a pool of processes for slow, stateful work (models, heavy
computation) that HTTP workers call through a small client API.

The public names are those of Gunicorn 27's ``gunicorn.dirty``, so apps written for it run
with ``from ferrocorn.dirty import ...``. See docs/dirty.md. The process side lives in
``arbiter`` and ``worker`` (started by the master, never by user code).
"""

from . import stash
from .app import DirtyApp
from .client import (
    DirtyClient,
    close_dirty_client,
    close_dirty_client_async,
    get_dirty_client,
    get_dirty_client_async,
    set_dirty_socket_path,
)
from .errors import (
    DirtyAppError,
    DirtyAppNotFoundError,
    DirtyConnectionError,
    DirtyError,
    DirtyNoWorkersAvailableError,
    DirtyProtocolError,
    DirtyTimeoutError,
    DirtyWorkerError,
)
from .arbiter import DirtyArbiter
from .stash import (
    StashClient,
    StashError,
    StashKeyNotFoundError,
    StashTable,
    StashTableNotFoundError,
)

__all__ = [
    "DirtyError",
    "DirtyTimeoutError",
    "DirtyConnectionError",
    "DirtyWorkerError",
    "DirtyAppError",
    "DirtyAppNotFoundError",
    "DirtyNoWorkersAvailableError",
    "DirtyProtocolError",
    "DirtyApp",
    "DirtyClient",
    "get_dirty_client",
    "get_dirty_client_async",
    "close_dirty_client",
    "close_dirty_client_async",
    "set_dirty_socket_path",
    "stash",
    "StashClient",
    "StashTable",
    "StashError",
    "StashTableNotFoundError",
    "StashKeyNotFoundError",
    "DirtyArbiter",
]
