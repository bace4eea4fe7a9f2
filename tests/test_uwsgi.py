"""`protocol = uwsgi` (what nginx's `uwsgi_pass` speaks) on the sync and gthread workers:
requests and bodies, the environ built from the proxy's vars, the allow list, refused
packets answered at once, a Flask app, the access log, and proxies that close a connection
without a request. The proxy is played by raw sockets (tests/uwsgi_support.py).

Shared tests assert what Gunicorn 27 does too; where ferrocorn does better (the proxy's
REMOTE_ADDR/SERVER_*, PATH_INFO decoded once, CIDR allow entries, 400/403/501 instead of a
500 with a traceback, no error when a proxy closes) the test is `ferrocorn_only`.
"""

from __future__ import annotations

import json
import re
import socket
import struct

import pytest

from conftest import connectable, wait_until
from uwsgi_support import connect, exchange, get, packet, request_packet

pytestmark = pytest.mark.timeout(60)

WORKERS = {
    "sync": ["-k", "sync"],
    "gthread": ["-k", "gthread", "--threads", "4"],
}


@pytest.fixture(params=sorted(WORKERS))
def worker_args(request):
    return WORKERS[request.param]


def start(serve, *args, bind="tcp", env=None):
    """A uwsgi server, waited for by a real uWSGI request (an HTTP probe means nothing to
    it). `-t 30`: an answer that takes seconds was not given at once."""
    server = serve("--protocol", "uwsgi", "-t", "30", *args, bind=bind, env=env, ready=None)
    if bind == "tcp":
        server.wait_listening()

    def answers():
        if not server.alive():
            raise AssertionError("server exited:\n" + server.stderr_text()[-4000:])
        try:
            return get(server.address, "/", timeout=2.0).status
        except OSError:
            return None

    wait_until(answers, what="the server to answer a uWSGI request")
    return server


def environ_of(response) -> dict:
    assert response.status == 200, response.raw[:500]
    return json.loads(response.body)


def log_lines(server, level: str) -> list:
    return [msg for _, lvl, msg in server.log_lines() if lvl == level]


# ---------------------------------------------------------------------------
# Requests and responses


def test_get_with_query_headers_and_https(serve, worker_args):
    server = start(serve, "environ_dump:app", *worker_args)
    resp = get(
        server.address,
        "/some/path?a=1&b=two",
        headers=[("X-Custom-Thing", "v1"), ("Accept", "text/plain")],
        https=True,
    )
    env = environ_of(resp)
    assert resp.version == "HTTP/1.1"
    assert resp.header("Transfer-Encoding") is None
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/some/path"
    assert env["QUERY_STRING"] == "a=1&b=two"
    assert env["HTTP_X_CUSTOM_THING"] == "v1"
    assert env["HTTP_ACCEPT"] == "text/plain"
    assert env["HTTP_HOST"] == "localhost"
    assert env["wsgi.url_scheme"] == "https"
    plain = environ_of(get(server.address, "/"))
    assert plain["wsgi.url_scheme"] == "http"


def test_post_bodies_small_and_multi_megabyte(serve, worker_args):
    server = start(serve, "echo:app", *worker_args)
    resp = exchange(server.address, request_packet("POST", "/echo", b"hello",
                                                   content_type="text/plain"))
    assert resp.status == 200
    assert resp.body == b"hello"
    assert resp.header("X-Method") == "POST"
    assert resp.header("X-Content-Length") == "5"
    big = bytes(range(256)) * (5 * 4096)  # 5 MiB
    # The packet and its body in pieces, as a proxy streaming an upload sends them.
    data = request_packet("PUT", "/big", big)
    pieces = [data[i:i + 700_000] for i in range(0, len(data), 700_000)]
    resp = exchange(server.address, pieces, timeout=30)
    assert resp.status == 200
    assert resp.header("X-Content-Length") == str(len(big))
    assert resp.body == big


def test_a_body_of_unknown_length_ends_at_the_close_never_chunked(serve, worker_args):
    server = start(serve, "stream:app", *worker_args)
    resp = get(server.address, "/?n=3")
    assert resp.status == 200
    assert resp.header("Transfer-Encoding") is None
    assert resp.header("Content-Length") is None
    assert resp.closed
    assert resp.body == b"chunk-0\nchunk-1\nchunk-2\n"


def test_flask_app_over_uwsgi(serve, worker_args):
    server = start(serve, "flask_app:app", *worker_args)
    resp = get(server.address, "/hello/uwsgi")
    assert (resp.status, resp.body) == (200, b"hello uwsgi")
    form = b"name=ann&colour=blue"
    resp = exchange(server.address, request_packet(
        "POST", "/form", form, content_type="application/x-www-form-urlencoded"))
    assert (resp.status, resp.body) == (200, b"name=ann;colour=blue")
    payload = json.dumps([1, 2, 3]).encode()
    resp = exchange(server.address, request_packet(
        "POST", "/json", payload, content_type="application/json"))
    assert resp.status == 200
    assert json.loads(resp.body) == {"received": [1, 2, 3], "count": 3}
    assert json.loads(get(server.address, "/items/21").body) == {"id": 21, "double": 42}
    assert get(server.address, "/nope").status == 404


def test_access_log_line(serve, worker_args):
    server = start(serve, "environ_dump:app", "--access-logfile", "-", *worker_args)
    assert get(server.address, "/logged?x=1").status == 200
    line = server.wait_for_log(
        r'^127\.0\.0\.1 - - \[[^\]]+\] "GET /logged\?x=1 HTTP/1\.1" 200 \d+ "-" "-"$',
        text=server.stdout_text,
    )
    assert line


def test_unix_socket_peers_are_always_allowed(serve, worker_args):
    server = start(serve, "environ_dump:app", "--uwsgi-allow-from", "10.0.0.1",
                   *worker_args, bind="unix")
    env = environ_of(get(server.address, "/unix"))
    assert env["PATH_INFO"] == "/unix"


# ---------------------------------------------------------------------------
# Refusals: answered at once, and the worker goes on serving


def test_a_peer_off_the_allow_list_is_refused(serve, worker_args):
    # A unix listener beside the TCP one: the same worker must go on serving.
    server = start(serve, "environ_dump:app", "--uwsgi-allow-from", "10.0.0.1",
                   "-b", "127.0.0.1:0", *worker_args, bind="unix")
    tcp = tcp_address(server)
    for _ in range(2):
        resp = exchange(tcp, request_packet("GET", "/"), timeout=10)
        assert resp.status >= 400
        assert resp.elapsed < 10
        assert get(server.address, "/").status == 200


def tcp_address(server):
    return connectable(next(a for a in server.wait_listening() if isinstance(a, tuple)))


def test_malformed_packets_are_answered_at_once(serve, worker_args):
    server = start(serve, "environ_dump:app", *worker_args)
    # The vars block says 4 bytes; its first key claims 5 of them.
    inconsistent = struct.pack("<BHB", 0, 4, 0) + b"\x05\x00AB"
    too_many = packet([("V%d" % i, "") for i in range(1001)])
    for data in (b"\x05\x00\x00\x00", inconsistent, too_many):
        resp = exchange(server.address, data, timeout=10)
        assert resp.status >= 400, data[:20]
        assert resp.elapsed < 10
        assert get(server.address, "/after").status == 200


# ---------------------------------------------------------------------------
# ferrocorn's own behaviour


@pytest.mark.ferrocorn_only
def test_environ_takes_the_client_and_server_from_the_proxy(serve, worker_args):
    server = start(serve, "environ_dump:app", "--access-logfile", "-", *worker_args)
    resp = exchange(server.address, request_packet(
        "GET", "/app/a%2520b%3F?q=%41",
        remote=("203.0.113.9", "40123"), server=("example.org", "443"),
        protocol="HTTP/2.0", https=True,
        extra=[("SCRIPT_NAME", "/app"), ("X_DEPLOY", "blue"), ("SERVER_SOFTWARE", "nginx")],
    ), wait_close=True)
    env = environ_of(resp)
    # PATH_INFO as nginx decoded it once: `%2520` arrived as `%20` and stays so.
    assert env["PATH_INFO"] == "/a%20b?"
    assert env["SCRIPT_NAME"] == "/app"
    assert env["QUERY_STRING"] == "q=%41"
    assert env["RAW_URI"] == env["REQUEST_URI"] == "/app/a%2520b%3F?q=%41"
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("203.0.113.9", "40123")
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.org", "443")
    assert env["SERVER_PROTOCOL"] == "HTTP/2.0"
    assert env["wsgi.url_scheme"] == "https"
    # Other vars reach the app as uWSGI passes them; the server's own keys are kept.
    assert (env["DOCUMENT_ROOT"], env["X_DEPLOY"], env["HTTPS"]) == ("/srv/www", "blue", "on")
    assert env["SERVER_SOFTWARE"].startswith("ferrocorn/")
    assert "CONTENT_LENGTH" not in env and "CONTENT_TYPE" not in env
    # The response still speaks HTTP/1.1 to the proxy, and the connection ends with it.
    assert resp.version == "HTTP/1.1"
    assert resp.header("Connection") == "close"
    assert resp.closed
    server.wait_for_log(
        r'^203\.0\.113\.9 - - \[[^\]]+\] "GET /app/a%2520b%3F\?q=%41 HTTP/2\.0" 200 ',
        text=server.stdout_text,
    )
    # nginx without a `server_name` sends SERVER_NAME empty: the Host the client sent names
    # the server (PEP 3333: never empty); SERVER_PORT is still the port nginx took it on.
    env = environ_of(get(server.address, "/", server=("", "8080"), host="shop.example:8443"))
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("shop.example", "8080")
    env = environ_of(get(server.address, "/", server=("", ""), host="[2001:db8::1]:8443"))
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("[2001:db8::1]", "8443")


@pytest.mark.ferrocorn_only
def test_a_cidr_entry_admits_its_network(serve, worker_args):
    server = start(serve, "environ_dump:app", "--uwsgi-allow-from", "10.0.0.1, 127.0.0.0/8",
                   *worker_args)
    assert environ_of(get(server.address, "/cidr"))["PATH_INFO"] == "/cidr"


@pytest.mark.ferrocorn_only
def test_refusals_get_their_status_and_a_warning(serve, worker_args):
    server = start(serve, "environ_dump:app", *worker_args)
    cases = [
        (b"\x07\x00\x00\x00", 501, "Unsupported uWSGI modifier1: 7"),
        (struct.pack("<BHB", 0, 4, 0) + b"\x05\x00AB", 400,
         "Invalid uWSGI header: a key runs past the vars block"),
        (packet([("V%d" % i, "") for i in range(1001)]), 400,
         "Invalid uWSGI header: more than 1000 vars"),
        (request_packet("POST", "/", extra=[("CONTENT_LENGTH", "12abc")]), 400,
         "Invalid uWSGI CONTENT_LENGTH: '12abc'"),
        (packet([(b"K\xe9Y", "v")]), 400,
         "Invalid uWSGI var 'K\xe9Y': a key must be printable ASCII"),
        (packet([("HTTP_X_EVIL", "a\r\nSet-Cookie: x=1")]), 400,
         "Invalid uWSGI var 'HTTP_X_EVIL': a header value may not hold control characters"),
        (packet([("wsgi.url_scheme", "gopher")]), 400,
         "Invalid uWSGI var 'wsgi.url_scheme': the scheme must be http or https"),
    ]
    for data, status, message in cases:
        resp = exchange(server.address, data, timeout=10, wait_close=True)
        assert resp.status == status, (message, resp.raw[:200])
        assert resp.closed
        server.wait_for_log(r"\[WARNING\] Invalid request from ip=127\.0\.0\.1: "
                            + re.escape(message))
    assert get(server.address, "/after").status == 200
    assert log_lines(server, "ERROR") == []
    assert "Traceback" not in server.stderr_text()


@pytest.mark.ferrocorn_only
def test_a_forbidden_peer_gets_403_and_a_warning(serve, worker_args):
    server = start(serve, "environ_dump:app", "--uwsgi-allow-from", "10.0.0.0/8",
                   "-b", "127.0.0.1:0", *worker_args, bind="unix")
    resp = exchange(tcp_address(server), request_packet("GET", "/"), timeout=10,
                    wait_close=True)
    assert resp.status == 403
    assert b"Request forbidden" in resp.body
    assert resp.closed
    server.wait_for_log(r"\[WARNING\] Invalid request from ip=127\.0\.0\.1: "
                        r"uWSGI request from '127\.0\.0\.1' not allowed")
    assert log_lines(server, "ERROR") == []
    assert get(server.address, "/").status == 200


@pytest.mark.ferrocorn_only
def test_a_proxy_closing_without_a_request_is_no_error(serve, worker_args):
    server = start(serve, "environ_dump:app", "--log-level", "debug", *worker_args)

    # Connected and gone; half a header; half a vars block; a whole packet whose body never
    # comes. None of them is a request anyone is left to answer.
    whole = request_packet("POST", "/", b"0123456789")
    for partial in (b"", b"\x00\x10", whole[:20], whole[:-4]):
        with connect(server.address, 10) as sock:
            sock.sendall(partial)
            # The proxy's end of the stream; the server closing its side in turn shows it
            # has seen the connection go, whatever the worker.
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(4096):
                pass
    for _ in range(3):
        assert get(server.address, "/").status == 200
    assert log_lines(server, "ERROR") == []
    assert "Traceback" not in server.stderr_text()
    assert not [m for m in log_lines(server, "WARNING") if "Invalid request" in m]


@pytest.mark.ferrocorn_only
def test_uwsgi_with_the_asgi_worker_or_a_misspelt_protocol_fails_at_start(run):
    result = run("--protocol", "uwsgi", "-k", "asgi", "environ_dump:app")
    assert result.returncode == 1
    assert "runs on the sync and gthread workers" in result.stderr
    result = run("--protocol", "uwsgl", "environ_dump:app")
    assert result.returncode == 1
    assert "Invalid value for protocol: uwsgl" in result.stderr
    assert "protocol must be http or uwsgi" in result.stderr
