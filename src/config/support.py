"""Python half of ferrocorn's config layer (embedded in the Rust extension).

Holds what must be Python objects: the default server hooks (their ``__qualname__`` is what
``--print-config`` shows, as in Gunicorn), the arity probe used by hook validation, the
adapter for short ``post_request`` hooks, config-file execution and the read-only object
hooks see as ``server.cfg`` / ``worker.cfg``.
"""

import importlib
import importlib.machinery
import importlib.util
import inspect
import sys


def arity(func):
    """Number of positional parameters, those with defaults included."""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in inspect.signature(func).parameters.values() if p.kind in kinds)


# Default hooks. The class names give the qualnames Gunicorn prints, e.g.
# "<OnStarting.on_starting()>".
class OnStarting:
    def on_starting(server):
        pass


class OnReload:
    def on_reload(server):
        pass


class WhenReady:
    def when_ready(server):
        pass


class Prefork:
    def pre_fork(server, worker):
        pass


class Postfork:
    def post_fork(server, worker):
        pass


class PostWorkerInit:
    def post_worker_init(worker):
        pass


class WorkerInt:
    def worker_int(worker):
        pass


class WorkerAbort:
    def worker_abort(worker):
        pass


class PreExec:
    def pre_exec(server):
        pass


class PreRequest:
    def pre_request(worker, req):
        worker.log.debug("%s %s", req.method, req.path)


class PostRequest:
    def post_request(worker, req, environ, resp):
        pass


class ChildExit:
    def child_exit(server, worker):
        pass


class WorkerExit:
    def worker_exit(server, worker):
        pass


class NumWorkersChanged:
    def nworkers_changed(server, new_value, old_value):
        pass


class OnExit:
    def on_exit(server):
        pass


class NewSSLContext:
    def ssl_context(config, default_ssl_context_factory):
        return default_ssl_context_factory()


class OnDirtyStarting:
    def on_dirty_starting(arbiter):
        pass


class DirtyPostFork:
    def dirty_post_fork(arbiter, worker):
        pass


class DirtyWorkerInit:
    def dirty_worker_init(worker):
        pass


class DirtyWorkerExit:
    def dirty_worker_exit(arbiter, worker):
        pass


DEFAULT_HOOKS = {
    f.__name__: f
    for f in (
        OnStarting.on_starting, OnReload.on_reload, WhenReady.when_ready,
        Prefork.pre_fork, Postfork.post_fork, PostWorkerInit.post_worker_init,
        WorkerInt.worker_int, WorkerAbort.worker_abort, PreExec.pre_exec,
        PreRequest.pre_request, PostRequest.post_request, ChildExit.child_exit,
        WorkerExit.worker_exit, NumWorkersChanged.nworkers_changed, OnExit.on_exit,
        NewSSLContext.ssl_context, OnDirtyStarting.on_dirty_starting,
        DirtyPostFork.dirty_post_fork, DirtyWorkerInit.dirty_worker_init,
        DirtyWorkerExit.dirty_worker_exit,
    )
}


def validate_post_request(func, nargs):
    """Give a 2- or 3-argument post_request hook the 4-argument calling convention.

    The function keeps Gunicorn's name so the wrapper prints the same in --print-config.
    """
    if nargs == 3:
        return lambda worker, req, env, _r: func(worker, req, env)
    return lambda worker, req, _e, _r: func(worker, req)


def import_hook(dotted):
    """Resolve "pkg.module.func" the way Gunicorn does; errors are TypeError texts."""
    try:
        mod_name, obj_name = dotted.rsplit(".", 1)
    except ValueError:
        raise TypeError(
            "Value '%s' is not import string. Format: module[.submodules...].object" % dotted
        ) from None
    try:
        mod = __import__(mod_name, fromlist=[obj_name])
        return getattr(mod, obj_name)
    except ImportError as e:
        raise TypeError(str(e)) from None
    except AttributeError:
        raise TypeError("Can not load '%s' from '%s'" % (obj_name, mod_name)) from None


class ConfigFileError(Exception):
    """Raised with the formatted traceback when the config file itself fails."""


def exec_config_file(filename):
    """Execute a config file as module ``__config__`` and return its namespace."""
    import traceback

    name = "__config__"
    try:
        if filename.endswith((".py", ".pyc")):
            spec = importlib.util.spec_from_file_location(name, filename)
        else:
            loader = importlib.machinery.SourceFileLoader(name, filename)
            spec = importlib.util.spec_from_file_location(name, filename, loader=loader)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    except Exception:
        raise ConfigFileError(traceback.format_exc()) from None
    return vars(mod)


def import_config_module(name):
    return vars(importlib.import_module(name))


def chdir(path):
    import os

    os.chdir(path)
    if path not in sys.path:
        sys.path.insert(0, path)


class Config:
    """Read-only view of the resolved settings, as hooks see ``server.cfg``."""

    def __init__(self, values, text):
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_text", text)

    def __getattr__(self, name):
        values = object.__getattribute__(self, "_values")
        try:
            return values[name]
        except KeyError:
            raise AttributeError("No configuration setting for: %s" % name) from None

    def __setattr__(self, name, value):
        raise AttributeError("Invalid access!")

    @property
    def paste_global_conf(self):
        # Parsed when asked for, as Gunicorn's property: a bad item raises then.
        from ferrocorn.app.pasterapp import parse_global_conf

        return parse_global_conf(object.__getattribute__(self, "_values")["raw_paste_global_conf"])

    def __str__(self):
        return self._text

    def __dir__(self):
        return sorted(object.__getattribute__(self, "_values"))
