"""wsgi.early_hints (103 responses) and gunicorn.socket, as Gunicorn 27 provides them."""

import json
import socket

import requests

from conftest import raw_request


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
