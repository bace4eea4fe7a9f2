"""Python half of ferrocorn's config layer (embedded in the Rust extension).

Holds what must be Python objects: the default server hooks (their ``__qualname__`` is what
``--print-config`` shows, as in Gunicorn), the arity probe used by hook validation, the
adapter for short ``post_request`` hooks, config-file execution and the read-only object
hooks see as ``server.cfg`` / ``worker.cfg``, and what a ``worker_class`` that no built-in
worker runs refers to.
"""

import ast
import importlib
import importlib.machinery
import importlib.util
import inspect
import sys
import traceback


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


def describe_worker_class(uri):
    """Find the class a worker_class names, as Gunicorn's ``util.load_class`` finds it.

    Gunicorn imports the module in the master at start-up (and on HUP) too. Called only for
    a class the caller refuses whatever is found, so nothing found here ever runs.
    Returns one of:

    - ``("missing", text)``: nothing usable at that name; ``text`` says why (with the
      traceback when the module's own code failed).
    - ``("class", names)``: a class; ``names`` is its MRO as ``module.qualname``, most
      derived first, without ``object``.
    - ``("needs", package, names)``: its module imports ``package`` (gunicorn or uvicorn,
      whose workers it presumably extends), which is not installed; ``names`` are the direct
      bases its ``class`` statement names, read from the source.
    """
    if uri.startswith("egg:"):
        found = _worker_entry_point(uri[len("egg:"):])
        if not isinstance(found, str):
            return found
        module_name, _, attr_path = found.partition(":")
    elif uri.startswith("__config__."):
        # A class object from the config file, stored as its module and qualified name.
        module_name, attr_path = "__config__", uri[len("__config__."):]
    else:
        module_name, _, attr_path = uri.rpartition(".")
    try:
        # __import__, unlike importlib.import_module, leaves importlib's frames out of a
        # traceback, which then shows only the module's own code.
        __import__(module_name)
        obj = sys.modules[module_name]
    except ModuleNotFoundError as e:
        missing = e.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            return ("missing", "%s: %s" % (type(e).__name__, e))
        package = missing.split(".")[0]
        if package in ("gunicorn", "uvicorn", "uvicorn_worker"):
            return ("needs", package, _bases_in_source(module_name, attr_path))
        return ("missing", _format_failure(e))
    except (Exception, SystemExit) as e:
        return ("missing", _format_failure(e))
    owner, path = "module %r" % module_name, module_name
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            return ("missing", "%s has no attribute %r" % (owner, part))
        path = "%s.%s" % (path, part)
        owner = repr(path)
    if not inspect.isclass(obj):
        return ("missing", "%s is not a class (its type is %s)" % (uri, type(obj).__name__))
    return ("class", ["%s.%s" % (k.__module__, k.__qualname__) for k in obj.__mro__[:-1]])


def _format_failure(e):
    # The first frame is describe_worker_class's own import call.
    tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
    return "".join(traceback.format_exception(type(e), e, tb)).rstrip("\n")


def _worker_entry_point(spec):
    """``egg:DIST#NAME``: DIST's ``gunicorn.workers`` entry point NAME as ``module:attr``,
    or ``("missing", why)``."""
    from importlib import metadata

    dist_name, sep, name = spec.rpartition("#")
    if not sep:
        dist_name, name = spec, "gunicorn.workers.sync.SyncWorker"
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        return ("missing", "no installed distribution is named %r" % dist_name)
    for ep in dist.entry_points:
        if ep.group == "gunicorn.workers" and ep.name == name:
            return "%s:%s" % (ep.module, ep.attr)
    why = "%s has no entry point %r in the group 'gunicorn.workers'" % (dist_name, name)
    return ("missing", why)


def _bases_in_source(module_name, qualname):
    """The dotted names of a class's direct bases, from its module's source, resolved
    through the module's absolute imports; empty when the source or class is not found."""
    try:
        spec = importlib.util.find_spec(module_name)
        tree = ast.parse(spec.loader.get_source(module_name))
    except Exception:
        return []
    imported = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    imported[alias.asname] = alias.name
                else:
                    head = alias.name.split(".")[0]
                    imported[head] = head
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                imported[alias.asname or alias.name] = "%s.%s" % (node.module, alias.name)
    body, cls = tree.body, None
    for part in qualname.split("."):
        cls = next((n for n in body if isinstance(n, ast.ClassDef) and n.name == part), None)
        if cls is None:
            return []
        body = cls.body
    names = []
    for base in cls.bases:
        parts = []
        while isinstance(base, ast.Attribute):
            parts.append(base.attr)
            base = base.value
        if isinstance(base, ast.Name):
            parts.append(imported.get(base.id, base.id))
            names.append(".".join(reversed(parts)))
    return names


class ConfigFileError(Exception):
    """Raised with the formatted traceback when the config file itself fails."""


def exec_config_file(filename):
    """Execute a config file as module ``__config__`` and return its namespace."""
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
