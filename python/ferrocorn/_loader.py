"""Resolve an APP_MODULE string to a WSGI callable, with Gunicorn's rules and messages.

This is Python because the work is Python semantics (importlib, ``ast`` literal
evaluation of factory arguments); the Rust side calls ``import_app`` and maps
``AppImportError`` to exit code 4 and any other exception to exit code 3.
"""

import ast
import importlib
import os
import sys


class AppImportError(Exception):
    """The module imported but the app object could not be found or made."""


def _literal(node, uri):
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise AppImportError(
            "Failed to parse arguments as literal values: %r." % uri
        ) from None


def _called_with_wrong_args(func):
    # A TypeError raised by the call itself (wrong arity) never enters the
    # factory's frame; one raised inside the factory does.
    tb = sys.exc_info()[2]
    code = getattr(func, "__code__", None)
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return False
        tb = tb.tb_next
    return True


def import_app(uri):
    module, sep, obj = uri.partition(":")
    if not sep:
        obj = "application"

    try:
        mod = importlib.import_module(module)
    except ImportError:
        if module.endswith(".py") and os.path.exists(module):
            raise ImportError(
                "Failed to find application, did you mean '%s:%s'?"
                % (module.rsplit(".", 1)[0], obj)
            ) from None
        raise

    try:
        expr = ast.parse(obj.strip(), mode="eval").body
    except SyntaxError:
        raise AppImportError(
            "Failed to parse %r as an attribute name or function call." % obj
        ) from None

    if isinstance(expr, ast.Name):
        name, call = expr.id, None
    elif isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name):
        name = expr.func.id
        args = [_literal(a, obj) for a in expr.args]
        kwargs = {kw.arg: _literal(kw.value, obj) for kw in expr.keywords}
        call = (args, kwargs)
    else:
        raise AppImportError(
            "Failed to parse %r as an attribute name or function call." % obj
        )

    try:
        app = getattr(mod, name)
    except AttributeError:
        raise AppImportError(
            "Failed to find attribute %r in %r." % (name, module)
        ) from None

    if call is not None:
        factory = app
        try:
            app = factory(*call[0], **call[1])
        except TypeError as exc:
            if _called_with_wrong_args(factory):
                raise AppImportError(
                    "".join(["The function %r in %r could not be called with the "
                             "specified arguments.\n" % (name, module), str(exc)])
                ) from exc
            raise

    if app is None:
        raise AppImportError("Failed to find application object: %r" % obj)
    if not callable(app):
        raise AppImportError("Application object must be callable.")
    return app


def load_pasteapp(config_uri, raw_global_conf):
    """``--paste``: the app of a PasteDeploy ini, as Gunicorn's ``load_pasteapp``."""
    from ferrocorn.app.pasterapp import get_wsgi_app, parse_global_conf

    return get_wsgi_app(config_uri, defaults=parse_global_conf(raw_global_conf))
