"""The DirtyApp base class, the ``dirty_apps`` spec format and app loading.

``parse_dirty_app_spec`` only reads the spec text (the master and the arbiter use it and
must never import an app module); ``load_dirty_app`` imports and instantiates, and runs
in dirty workers only.
"""

import importlib
import re

from .errors import DirtyAppError, DirtyAppNotFoundError

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class DirtyApp:
    """Base class for dirty apps: an object loaded once per dirty worker and kept there.

    ``init()`` runs once in the dirty worker after the instance is made (load models,
    open pools there); calls from HTTP workers arrive as ``app(action, *args, **kwargs)``,
    which by default calls the public method named ``action``; ``close()`` runs when the
    dirty worker stops. Set the class attribute ``workers = N`` to load the app in N dirty
    workers only. With ``dirty_threads`` > 1 several calls may run at once in one worker.
    """

    workers = None

    def init(self):
        """Called once in the dirty worker, after construction."""

    def __call__(self, action, *args, **kwargs):
        method = getattr(self, action, None) if isinstance(action, str) else None
        if method is None or action.startswith("_") or not callable(method):
            raise ValueError("Unknown action: %s" % (action,))
        return method(*args, **kwargs)

    def close(self):
        """Called when the dirty worker stops."""


def _bad_spec(spec, why):
    return DirtyAppError(
        "Invalid dirty app spec %r: %s; expected 'module.path:ClassName' or "
        "'module.path:ClassName:N'" % (spec, why),
        app_path=spec,
    )


def parse_dirty_app_spec(spec):
    """``(import_path, worker_count)`` of ``module:Class`` or ``module:Class:N``.

    ``worker_count`` is None when the spec sets none. DirtyAppError for anything else.
    """
    if not isinstance(spec, str):
        raise _bad_spec(spec, "not a string")
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise _bad_spec(spec, "wrong number of ':'")
    module, name = parts[0].strip(), parts[1].strip()
    if not _DOTTED.match(module):
        raise _bad_spec(spec, "%r is not a module path" % parts[0])
    if not _NAME.match(name):
        raise _bad_spec(spec, "%r is not a class name" % parts[1])
    count = None
    if len(parts) == 3:
        try:
            count = int(parts[2])
        except ValueError:
            raise _bad_spec(spec, "worker count %r is not an integer" % parts[2]) from None
        if count < 1:
            raise _bad_spec(spec, "worker count must be >= 1, got %d" % count)
    return "%s:%s" % (module, name), count


def validate_specs(specs):
    """Check every ``dirty_apps`` entry and refuse duplicates; returns the parsed list."""
    parsed = []
    seen = set()
    for spec in specs:
        path, count = parse_dirty_app_spec(spec)
        if path in seen:
            raise DirtyAppError("Dirty app %s is listed twice in dirty_apps" % path, app_path=path)
        seen.add(path)
        parsed.append((path, count))
    return parsed


def load_dirty_app_class(import_path):
    """Import ``module:Class`` and return the class (dirty workers only)."""
    module_name, _, class_name = import_path.rpartition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        # A missing top module means the app is not there; an ImportError raised from
        # inside the module is the app's own failure and must show as such.
        if isinstance(e, ModuleNotFoundError) and e.name and module_name.startswith(e.name):
            raise DirtyAppNotFoundError(import_path) from e
        raise
    try:
        klass = getattr(module, class_name)
    except AttributeError:
        raise DirtyAppNotFoundError(import_path) from None
    if not isinstance(klass, type):
        raise DirtyAppError("%s is not a class" % import_path, app_path=import_path)
    return klass


def load_dirty_app(import_path):
    """An instance of the app class at ``import_path``, checked for init/__call__/close."""
    klass = load_dirty_app_class(import_path)
    try:
        app = klass()
    except Exception as e:
        raise DirtyAppError(
            "Failed to instantiate %s: %s" % (import_path, e), app_path=import_path
        ) from e
    for method in ("init", "__call__", "close"):
        if not callable(getattr(app, method, None)):
            raise DirtyAppError(
                "%s is missing required method: %s" % (import_path, method), app_path=import_path
            )
    return app


def load_dirty_apps(import_paths):
    """``{import_path: instance}`` for every path (dirty workers only)."""
    return {path: load_dirty_app(path) for path in import_paths}


def get_app_workers_attribute(import_path):
    """The class attribute ``workers`` of the app class (imports its module: dirty workers
    only; the arbiter learns it from them)."""
    return getattr(load_dirty_app_class(import_path), "workers", None)
