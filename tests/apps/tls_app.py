"""A WSGI app for the TLS tests (tests/test_tls_serving.py, tests/test_tls_clients.py).

Paths:
    /       ``scheme=<wsgi.url_scheme>``
    /peer   JSON of what ``environ['gunicorn.socket']`` (the TLS socket) reports:
            ``peercert`` (``getpeercert()``), ``peercert_der`` (``getpeercert(True)`` as
            hex, or None), ``cipher``, ``version``, ``alpn`` (``selected_alpn_protocol()``),
            and ``socket_type`` (the socket's class name); a method the socket lacks gives
            ``"missing"``, one that raises gives ``"error: <exception>"``.

``flask_app()`` is a factory for a Flask app whose ``/`` answers ``flask scheme=<scheme>``
(Flask is imported only when it is called).
"""

import json


def _call(sock, name, *args):
    method = getattr(sock, name, None)
    if method is None:
        return "missing"
    try:
        return method(*args)
    except Exception as exc:  # reported to the test, not raised
        return "error: %r" % (exc,)


def peer_info(sock):
    der = _call(sock, "getpeercert", True)
    return {
        "socket_type": type(sock).__name__,
        "peercert": _call(sock, "getpeercert"),
        "peercert_der": der.hex() if isinstance(der, (bytes, bytearray)) else der,
        "cipher": _call(sock, "cipher"),
        "version": _call(sock, "version"),
        "alpn": _call(sock, "selected_alpn_protocol"),
    }


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/peer":
        body = json.dumps(peer_info(environ.get("gunicorn.socket"))).encode()
        ctype = "application/json"
    else:
        body = ("scheme=%s" % environ["wsgi.url_scheme"]).encode()
        ctype = "text/plain"
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def flask_app():
    from flask import Flask, request

    flask = Flask(__name__)

    @flask.get("/")
    def index():
        return "flask scheme=%s" % request.scheme

    return flask
