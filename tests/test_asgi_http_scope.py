"""The ASGI worker's HTTP scope (`-k asgi`): the keys and their types, the HTTP version,
method and scheme, the decoded and raw path, the query string, root_path, the headers,
the client and server addresses (TCP, PROXY protocol, unix socket), the lifespan state
copy, and ferrocorn's `http.response.pathsend` extension.

The app is `apps/asgi_http.py`; its `/scope` answers the scope as JSON (bytes as latin-1
text, tuples as lists) with the Python type of every value under "types".
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os

import pytest

from asgi_support import Client, json_body, report_on_failure, shared_server, start

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def _shared(tmp_path_factory):
    yield from shared_server(tmp_path_factory, "asgi-scope")


@pytest.fixture
def server(request, _shared):
    yield _shared
    report_on_failure(request, _shared)


def scope_of(address, target="/scope", **kwargs):
    """The scope the app saw for one request, and the client's own (host, port)."""
    with Client(address) as client:
        resp = client.request(target, **kwargs)
        local = client.sock.getsockname() if not isinstance(address, str) else None
    return json_body(resp), local


def test_scope_keys_and_types(server):
    scope, local = scope_of(server.address, "/scope?x=1")
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope"
    assert scope["raw_path"] == "/scope"
    assert scope["query_string"] == "x=1"
    assert scope["root_path"] == ""
    types = scope["types"]
    for key in ("type", "http_version", "method", "scheme", "path", "root_path"):
        assert types[key] == "str", key
    assert types["asgi"] == "dict"
    assert types["raw_path"] == "bytes"
    assert types["query_string"] == "bytes"
    # headers: an iterable of [name, value] pairs of bytes.
    assert types["headers"][0] in ("list", "tuple")
    for pair_type in types["headers"][1]:
        assert pair_type[0] in ("list", "tuple") and pair_type[1] == ["bytes", "bytes"]
    # client and server are (host, port) pairs on TCP, the port an int.
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["client"] == ["127.0.0.1", local[1]]
    for key in ("server", "client"):
        assert types[key][0] in ("list", "tuple") and types[key][1] == ["str", "int"], key


def test_http_10_request_scope(server):
    scope, _ = scope_of(server.address, "/scope", version="HTTP/1.0")
    assert scope["http_version"] == "1.0"
    assert scope["type"] == "http"


def test_method_is_passed_as_sent(server):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "GET"):
            conn.request(method, "/scope")
            resp = conn.getresponse()
            assert resp.status == 200
            assert json.loads(resp.read())["method"] == method
    finally:
        conn.close()


def test_path_is_percent_decoded_and_raw_path_is_not(server):
    target = "/scope/caf%C3%A9/a%2Fb%20c%FF?q=%20x&r=caf%C3%A9"
    scope, _ = scope_of(server.address, target)
    # %2F becomes "/" in path (the raw form stays in raw_path); invalid UTF-8 becomes
    # U+FFFD.
    assert scope["path"] == "/scope/caf\u00e9/a/b c\ufffd"
    assert scope["raw_path"] == "/scope/caf%C3%A9/a%2Fb%20c%FF"
    assert scope["query_string"] == "q=%20x&r=caf%C3%A9"
    assert scope["types"]["path"] == "str"


def test_empty_query_string_is_empty_bytes(server):
    scope, _ = scope_of(server.address, "/scope")
    assert scope["query_string"] == ""
    assert scope["types"]["query_string"] == "bytes"
    scope, _ = scope_of(server.address, "/scope?")
    assert scope["raw_path"] == "/scope"
    assert scope["query_string"] == ""


def test_headers_are_lower_cased_byte_pairs_in_order_with_duplicates(server):
    headers = [("Host", "example.test"), ("X-Dup", "one"), ("X-CamelCase", "Mixed Value"),
               ("x-dup", "two"), ("Accept", "*/*"), ("X-DUP", "three")]
    scope, _ = scope_of(server.address, "/scope", headers=headers)
    assert scope["headers"] == [
        ["host", "example.test"], ["x-dup", "one"], ["x-camelcase", "Mixed Value"],
        ["x-dup", "two"], ["accept", "*/*"], ["x-dup", "three"],
    ]


def test_scheme_https_from_a_trusted_forwarded_proto_header(server):
    # 127.0.0.1 is in the default forwarded_allow_ips; X-Forwarded-Proto: https is one of
    # the default secure_scheme_headers.
    scope, _ = scope_of(server.address, "/scope", headers=[("X-Forwarded-Proto", "https")])
    assert scope["scheme"] == "https"
    scope, _ = scope_of(server.address, "/scope", headers=[("X-Forwarded-Proto", "http")])
    assert scope["scheme"] == "http"


def test_root_path_is_passed_and_path_is_not_stripped(serve, tmp_path):
    server = start(serve, tmp_path, "--root-path", "/api")
    scope, _ = scope_of(server.address, "/api/scope?x=1")
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/scope"
    assert scope["raw_path"] == "/api/scope"
    scope, _ = scope_of(server.address, "/scope")
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/scope"


def test_proxy_protocol_v1_sets_the_client(serve, tmp_path):
    # 127.0.0.1 is in the default proxy_allow_ips.
    server = start(serve, tmp_path, "--proxy-protocol", "v1", ready="port")
    for proxy_line, client in [
        (b"PROXY TCP4 203.0.113.7 198.51.100.2 56324 443\r\n", ["203.0.113.7", 56324]),
        (b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n", ["2001:db8::7", 40000]),
    ]:
        with Client(server.address) as conn:
            conn.send(proxy_line)
            first = json_body(conn.request("/scope"))
            # The PROXY header opens the connection; it holds for every request on it.
            second = json_body(conn.request("/scope?again"))
        assert first["client"] == client
        assert second["client"] == client
        assert first["server"] == ["127.0.0.1", server.port]


def test_lifespan_state_is_a_shallow_copy_per_request(serve, tmp_path):
    # The app's lifespan startup sets state["started"] and state["shared_list"] = [].
    server = start(serve, tmp_path, "--asgi-lifespan", "on", ready_path="/")
    with Client(server.address) as conn:
        first = json_body(conn.request("/state?n=1"))
        second = json_body(conn.request("/state?n=2"))
    assert first["keys"] == ["shared_list", "started"]
    # A key one request added is not seen by the next (a copy per request)...
    assert second["keys"] == ["shared_list", "started"]
    # ...but the values are shared (a shallow copy).
    assert first["shared_list"] == []
    assert second["shared_list"] == ["1"]


@pytest.mark.ferrocorn_only
def test_unix_socket_scope_follows_the_spec(serve, tmp_path):
    # ASGI: server is [path, None] on a unix socket, client None. Gunicorn 27 gives
    # server ('/', 't') (it slices the path string) and client None.
    server = start(serve, tmp_path, bind="unix")
    scope, _ = scope_of(server.address, "/scope")
    assert scope["server"] == [server.address, None]
    assert scope["types"]["server"][0] in ("list", "tuple")
    assert scope["client"] is None
    assert scope["http_version"] == "1.1"


@pytest.mark.ferrocorn_only
def test_http1_scope_advertises_pathsend(server):
    # Gunicorn 27 has no "extensions" key on HTTP/1.
    scope, _ = scope_of(server.address, "/scope")
    assert scope["extensions"] == {"http.response.pathsend": {}}


@pytest.mark.ferrocorn_only
def test_pathsend_serves_the_file(server, tmp_path):
    data = os.urandom(1 << 20)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    with Client(server.address) as conn:
        resp = conn.request("/pathsend?path=%s" % path)
        assert resp.status == 200
        assert resp.header("content-length") == str(len(data))
        assert hashlib.sha256(resp.body).hexdigest() == hashlib.sha256(data).hexdigest()
        # The response is complete: the connection serves the next request.
        assert conn.request("/").body == b"ok"
