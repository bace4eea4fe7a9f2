"""Answers with every key of the WSGI environ as JSON, so two servers can be compared.

Strings are given as they are; other JSON-able values (bool, int, None, the version
tuple) keep their JSON form; any other object is described by its type name and the
WSGI methods it offers. A request body, if any, is read in full and returned as
`body` (latin-1 text), so the comparison covers what `wsgi.input` delivers too. A HEAD
response has no body, so for HEAD the same JSON (ASCII-only) travels in `X-Environ`.
"""

import json

# The methods PEP 3333 (and common practice) expect on the non-string environ values.
_PROBES = ("read", "readline", "readlines", "__iter__", "write", "writelines", "flush",
           "close", "fileno", "getpeername", "sendall", "__call__")


def describe(value):
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, tuple) and all(isinstance(v, (str, int)) for v in value):
        return {"tuple": list(value)}
    return {
        "type": type(value).__name__,
        "has": sorted(p for p in _PROBES if hasattr(value, p)),
    }


def app(environ, start_response):
    data = {key: describe(value) for key, value in environ.items()}
    data["body"] = environ["wsgi.input"].read().decode("latin-1")
    out = json.dumps(data, sort_keys=True).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(out)))]
    if environ["REQUEST_METHOD"] == "HEAD":
        headers.append(("X-Environ", out.decode("ascii")))
    start_response("200 OK", headers)
    return [out]
