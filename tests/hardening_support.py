"""What the two hardening test modules share: the worker types they run on, Gunicorn's error
page, and module-scoped servers running tests/apps/hardening.py."""

from __future__ import annotations

import html

from conftest import FROM_LOG, RawResponse, Server, base_env

WORKERS = {
    "sync": ["-k", "sync"],
    "gthread": ["-k", "gthread", "--threads", "2"],
}


def error_page(status: int, reason: str, mesg: str) -> bytes:
    """The exact bytes of Gunicorn 27's `util.write_error` answer."""
    page = (
        "<html>\n  <head>\n    <title>%s</title>\n  </head>\n  <body>\n"
        "    <h1><p>%s</p></h1>\n    %s\n  </body>\n</html>\n"
    ) % (reason, reason, html.escape(mesg))
    return (
        "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: text/html\r\n"
        "Content-Length: %d\r\n\r\n%s" % (status, reason, len(page), page)
    ).encode("latin-1")


def hardening_servers(tmp_path_factory, label: str):
    """A module fixture's body: yields ``get(worker, *args)``, a ready server with ``args``
    after ``--timeout 30`` (a later ``--timeout`` wins), started on first use and shared by
    the module's tests; stops them all afterwards. The app logs each call to
    ``server.calls_path``."""
    started = {}

    def get(worker: str, *args: str) -> Server:
        key = (worker,) + args
        if key not in started:
            tmp = tmp_path_factory.mktemp("hardening-%s-%s" % (label, worker))
            (tmp / "run").mkdir()
            calls = tmp / "calls"
            calls.touch()
            server = Server(
                ["-b", "127.0.0.1:0", "--timeout", "30"] + WORKERS[worker] + list(args)
                + ["hardening:app"],
                tmp, env=base_env(tmp / "run", {"HARDENING_CALLS": str(calls)}),
                address=FROM_LOG,
            )
            started[key] = server
            server.calls_path = calls
            server.wait_ready(path="/ready")
        return started[key]

    yield get
    for server in started.values():
        server.stop()


def read_response(sock) -> bytes:
    """One response from a kept-alive connection: a head and a body framed by Content-Length;
    or, when the first head is an interim (1xx) one, everything received so far (no test
    here expects one)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a whole response head: %r" % data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    resp = RawResponse(head + b"\r\n\r\n")
    if 100 <= resp.status < 200:
        return data
    length = int(resp.header("content-length"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a response body: %r" % data
        body += chunk
    assert len(body) == length, "more bytes than one response: %r" % body
    return head + b"\r\n\r\n" + body
