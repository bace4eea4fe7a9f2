"""wsgi.early_hints (103 responses) and gunicorn.socket, as Gunicorn 27 provides them."""

import http.client
import json
import select
import socket

import pytest
import requests

from conftest import raw_request, wait_until


def test_early_hints_send_103_before_the_response(serve):
    server = serve("extras:app", ready_path="/socket")
    raw = raw_request(server.address, b"GET /hints HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10)
    parts = raw.split(b"\r\n\r\n")
    assert parts[0] == b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style"
    assert parts[1] == b"HTTP/1.1 103 Early Hints\r\nLink: </app.js>; rel=preload; as=script"
    assert parts[2].startswith(b"HTTP/1.1 200 OK\r\n")
    assert parts[3] == b"after hints"


def test_early_hints_are_not_sent_to_http10_clients(serve):
    server = serve("extras:app", ready_path="/socket")
    raw = raw_request(server.address, b"GET /hints HTTP/1.0\r\n\r\n", timeout=10)
    assert raw.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"103" not in raw.split(b"\r\n", 1)[0]


def test_early_hints_refuse_header_injection(serve):
    server = serve("extras:app", ready_path="/socket")
    raw = raw_request(server.address, b"GET /bad-hint HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert raw.endswith(b"rejected")
    assert b"X-Injected" not in raw


def test_early_hints_after_the_response_started_are_ignored(serve):
    server = serve("extras:app", ready_path="/socket")
    raw = raw_request(server.address, b"GET /late-hint HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert raw.endswith(b"\r\n\r\nbody")
    assert b"</late>" not in raw


def test_gunicorn_socket_is_the_client_connection(serve):
    server = serve("extras:app", ready_path="/socket")
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(b"GET /socket HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        info = json.loads(data.split(b"\r\n\r\n", 1)[1])
        assert tuple(info["peer"]) == sock.getsockname()
        assert tuple(info["local"]) == server.address
    # Closing the app's socket object must not break the server.
    assert requests.get(server.url + "/socket", timeout=10).status_code == 200


def _get_json(conn, path):
    conn.request("GET", path)
    resp = conn.getresponse()
    assert resp.status == 200
    return json.loads(resp.read())


def _two_requests_on_one_connection(serve, first_path, second_path):
    """The JSON answers to two requests on one gthread keep-alive connection, and the
    client's own address."""
    server = serve("-k", "gthread", "--threads", "2", "extras:app", ready_path="/socket")
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        first = _get_json(conn, first_path)
        second = _get_json(conn, second_path)
        return first, second, list(conn.sock.getsockname())
    finally:
        conn.close()


def test_gthread_keeps_one_gunicorn_socket_per_connection(serve):
    # Gunicorn's gthread worker hands every request on a connection the same socket object.
    first, second, client = _two_requests_on_one_connection(serve, "/socket-id", "/socket-id")
    assert first["id"] == second["id"]
    assert first["peer"] == client


@pytest.mark.ferrocorn_only
def test_gthread_app_closing_gunicorn_socket_leaves_the_connection_working(serve):
    # The object wraps a duplicate descriptor, so the app closing it closes only its own
    # copy; the next request gets a fresh object. (Gunicorn hands out the connection's own
    # socket, so closing it ends the connection.)
    first, second, client = _two_requests_on_one_connection(serve, "/socket-close", "/socket-id")
    assert first["peer"] == second["peer"] == client


def _closed_by_server(sock) -> bool:
    """True once the server has closed `sock`'s connection (nothing is consumed)."""
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def test_gthread_closes_the_socket_objects_of_finished_connections(serve):
    # Each kept-alive connection holds a duplicate descriptor in its socket object; those
    # must be closed with the connection, however it ends (client close, idle timeout).
    server = serve("-k", "gthread", "--threads", "2", "-w", "1", "--keep-alive", "1",
                   "extras:app", ready_path="/socket")
    probe = http.client.HTTPConnection(*server.address, timeout=10)
    baseline = _get_json(probe, "/socket-id")["fds"]
    probe.close()
    for _ in range(3):
        conns = [http.client.HTTPConnection(*server.address, timeout=10) for _ in range(30)]
        for c in conns:
            _get_json(c, "/socket-id")
        for c in conns[:15]:
            c.close()  # the client ends these; the other 15 time out on the server
        wait_until(lambda: all(_closed_by_server(c.sock) for c in conns[15:]), timeout=10,
                   what="the server to time out the idle connections")
        for c in conns[15:]:
            c.close()

    def settled():
        probe = http.client.HTTPConnection(*server.address, timeout=10)
        try:
            return _get_json(probe, "/socket-id")["fds"] <= baseline + 2
        finally:
            probe.close()

    wait_until(settled, timeout=10, what="descriptors back to the baseline")
