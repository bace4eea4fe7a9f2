"""Type stub for ``ferrocorn._ferrocorn``, the Rust extension module (src/lib.rs).

Everything ``#[pymodule] fn _ferrocorn`` registers: ``__version__``, ``run``, the embedding
API's ``run_application``, ``ConfigHandle``, ``parse_args``, ``settings_table`` and
``is_setting`` (src/config/handle.rs), the logging
classes ``Logger`` and ``ErrorsStream`` (src/telemetry/pylogging.rs) and ``Inotify``
(src/workers/inotify.rs). Keep this file in step with those when they change.
"""

import os
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import final

from typing_extensions import TypeAlias

_StrPath: TypeAlias = str | os.PathLike[str]
_SysExcInfo: TypeAlias = (
    tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
)
# What ``logging.Logger`` accepts for ``exc_info`` (the Rust side takes any true value as
# "the exception being handled").
_ExcInfo: TypeAlias = None | bool | _SysExcInfo | BaseException

__all__ = [
    "__version__", "run", "run_application", "ConfigHandle", "parse_args", "settings_table",
    "is_setting", "Logger", "ErrorsStream", "Inotify",
]

__version__: str
"""The package version (``CARGO_PKG_VERSION``)."""

def run(argv: Sequence[str]) -> int:
    """``ferrocorn [OPTIONS] [APP_MODULE]``: returns the process exit status.

    ``argv`` is the whole command line, program name first (``sys.argv``); a ``str`` is
    refused with ``TypeError``.
    """

def run_application(application: object) -> int:
    """The embedding API's ``BaseApplication.run()``: serve with ``application.cfg``'s
    settings, loading the app through ``application.wsgi()``; returns the exit status."""

@final
class ConfigHandle:
    """The Rust settings behind ``ferrocorn.config.Config`` (src/config/handle.rs)."""

    app_module: str | None
    def __init__(self) -> None: ...
    def set(self, name: str, value: object) -> None:
        """AttributeError for an unknown name, ValueError with the validator's reason."""
    def values(self) -> dict[str, object]: ...
    def text(self) -> str: ...
    def apply_namespace(self, namespace: dict[str, object]) -> None:
        """Apply a config file's setting names; a bad value is printed and raises
        SystemExit."""
    def validate(self) -> None: ...
    def chdir(self) -> None: ...

def parse_args(prog: str, args: Sequence[str]) -> tuple[list[tuple[str, object]], list[str]]:
    """The command's argv parser; ``-h``, ``--version`` and usage errors print and raise
    SystemExit."""

def settings_table() -> list[dict[str, object]]: ...
def is_setting(name: str) -> bool: ...

@final
class Logger:
    """``server.log`` / ``worker.log``: Gunicorn's ``glogging.Logger`` call surface over the
    Rust logs. Holds no state; any instance writes to the process-global destinations."""

    def __init__(self) -> None: ...
    def critical(
        self,
        msg: object,
        *args: object,
        exc_info: _ExcInfo = None,
        stack_info: bool = False,
        stacklevel: int = 1,
        extra: Mapping[str, object] | None = None,
    ) -> None: ...
    def error(
        self,
        msg: object,
        *args: object,
        exc_info: _ExcInfo = None,
        stack_info: bool = False,
        stacklevel: int = 1,
        extra: Mapping[str, object] | None = None,
    ) -> None: ...
    def warning(
        self,
        msg: object,
        *args: object,
        exc_info: _ExcInfo = None,
        stack_info: bool = False,
        stacklevel: int = 1,
        extra: Mapping[str, object] | None = None,
    ) -> None: ...
    def info(
        self,
        msg: object,
        *args: object,
        exc_info: _ExcInfo = None,
        stack_info: bool = False,
        stacklevel: int = 1,
        extra: Mapping[str, object] | None = None,
    ) -> None: ...
    def debug(
        self,
        msg: object,
        *args: object,
        exc_info: _ExcInfo = None,
        stack_info: bool = False,
        stacklevel: int = 1,
        extra: Mapping[str, object] | None = None,
    ) -> None: ...
    def exception(
        self,
        msg: object,
        *args: object,
        exc_info: _ExcInfo = True,
        stack_info: bool = False,
        stacklevel: int = 1,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        """Error level plus the exception being handled (``exc_info=True`` unless overridden)."""

    def log(
        self,
        lvl: int | str,
        msg: object,
        *args: object,
        exc_info: _ExcInfo = None,
        stack_info: bool = False,
        stacklevel: int = 1,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        """``log(lvl, msg, *args)``: a level name (unknown names are info) or a logging number."""

    def access(self, *args: object, **kwargs: object) -> None:
        """Accepted so hooks written for Gunicorn keep working, but writes nothing: access
        lines come from Rust at the end of each request."""

    def reopen_files(self) -> None:
        """Re-opens the error and access log files by name (what USR1 does); ``OSError`` if
        one cannot be reopened."""

    def close_on_exec(self) -> None:
        """Marks the log files close-on-exec, as Gunicorn does after fork."""

@final
class ErrorsStream:
    """``wsgi.errors``: text written as-is to the error log destination, one write(2) per
    call, like Gunicorn's ``WSGIErrorsWrapper`` (no timestamp, no level)."""

    def __init__(self) -> None: ...
    def write(self, data: str) -> None:
        """Write ``data`` (``TypeError`` for anything but ``str``). Returns ``None``, not a count."""

    def writelines(self, lines: Iterable[str]) -> None: ...
    def flush(self) -> None:
        """Nothing is buffered: every write already reached the descriptor."""

    def writable(self) -> bool: ...

@final
class Inotify:
    """An inotify instance with Gunicorn's ``InotifyReloader`` event mask, used by
    ``ferrocorn._reloader.InotifyReloader``. Methods raise ``OSError`` subclasses with the
    errno; creating one raises ``OSError`` when the kernel refuses an instance."""

    def __init__(self) -> None: ...
    def add_watch(self, path: _StrPath) -> None:
        """Watch the directory (or file) ``path`` for changes."""

    def watching(self, path: _StrPath) -> bool:
        """Whether ``path`` has a live watch."""

    def read(self, timeout: float | None = None) -> list[str]:
        """Names of changed entries (or the watched directory's path for an event about the
        directory itself); ``[]`` after ``timeout`` seconds without events. ``ValueError`` for
        a negative or NaN timeout. The GIL is released while waiting."""

    def fileno(self) -> int:
        """The inotify descriptor, for callers that select on it."""
