"""WebSocket over the ASGI worker (`-k asgi`, issue 13): echo, scope, close paths,
protocol errors, handshake answers and server shutdown.

The tests run the real server with `-k asgi` on tests/apps/asgi_ws.py (one server per
module for the tests that need no options, see `shared`; one of their own for the rest)
and talk to it with the `websockets` sync client, or with hand-written frames
(tests/ws_support.py) where a real client would refuse to misbehave. The app logs what it was told (connect,
receive, disconnect code) to a JSON-lines file named by ASGI_WS_LOG, so the tests check
the application's side of each close path too.

Tests marked ferrocorn_only cover what Gunicorn 27.0.1 lacks (close 1001 on shutdown,
the websocket.http.response denial extension, permessage-deflate).
"""

import json
import os
import signal
import time
import zlib

import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect

from conftest import FROM_LOG, RawResponse, Server, base_env, http_get, wait_until
from ws_support import (
    OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
    RawWebSocket, build_frame, handshake_only, read_events, wait_event, ws_url,
)

pytestmark = pytest.mark.timeout(60)

APP = "asgi_ws:app"


@pytest.fixture(scope="module")
def _shared_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("asgi-ws-shared")
    runtime = tmp / "run"
    runtime.mkdir()
    events = tmp / "ws-events.jsonl"
    server = Server(["-b", "127.0.0.1:0", "-k", "asgi", APP], tmp,
                    env=base_env(runtime, {"ASGI_WS_LOG": str(events)}), address=FROM_LOG)
    server.events = events
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def shared(request, _shared_server):
    """One `-k asgi` server on asgi_ws:app for the tests that need no options of their
    own (booting and stopping a server per test would triple the run time). Each test
    tags its connections with a query string (``?t=<tag>``) and reads back only its own
    app events; `assert_still_serving` checks the one worker was never replaced, so a
    case that wedges or kills it fails itself, not only the tests after it."""
    yield _shared_server
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print("---- shared server stderr (tail) ----")
        print(_shared_server.stderr_text()[-8000:])


@pytest.fixture
def ws_server(serve, tmp_path):
    """``ws_server(*extra_args)`` -> a server of the test's own (for options)."""

    def start(*extra_args):
        events = tmp_path / "ws-events.jsonl"
        server = serve("-k", "asgi", *extra_args, APP, env={"ASGI_WS_LOG": str(events)})
        server.events = events
        return server

    return start


def events(server, tag, event=None):
    """The app's events for connections tagged ``?t=<tag>``."""
    return [e for e in read_events(server.events)
            if e["query"] == "t=" + tag and (event is None or e["event"] == event)]


def received(server, tag):
    return [(e["kind"], e["length"]) for e in events(server, tag, "receive")]


def wait_tagged(server, tag, event, timeout=10.0):
    return wait_event(server.events, timeout=timeout, query="t=" + tag, event=event)


def assert_still_serving(server):
    """The worker answers plain HTTP and a new WebSocket after whatever just happened."""
    resp = http_get(server.address, "/after", headers={"Connection": "close"})
    assert resp.status == 200 and resp.body == b"ok"
    with connect(ws_url(server, "/echo?t=still-serving"), open_timeout=10,
                 close_timeout=10) as ws:
        ws.send("still here")
        assert ws.recv(timeout=10) == "still here"
    assert len(server.worker_pids()) == 1, "the worker was replaced"


# ---------------------------------------------------------------------------
# Data


def test_echo_text_and_bytes(shared):
    with connect(ws_url(shared, "/echo?t=echo"), open_timeout=10) as ws:
        ws.send("hello, wörld ✓")
        reply = ws.recv(timeout=10)
        assert isinstance(reply, str) and reply == "hello, wörld ✓"
        data = bytes(range(256)) * 4
        ws.send(data)
        reply = ws.recv(timeout=10)
        assert isinstance(reply, bytes) and reply == data
        # Empty messages are messages too.
        ws.send("")
        assert ws.recv(timeout=10) == ""
        ws.send(b"")
        assert ws.recv(timeout=10) == b""
    assert received(shared, "echo") == [("text", 14), ("bytes", 1024), ("text", 0), ("bytes", 0)]


def test_one_mebibyte_messages_echo_intact(shared):
    blob = os.urandom(1 << 20)
    text = "0123456789abcdef" * (1 << 16)  # 1 MiB of text
    with connect(ws_url(shared, "/echo?t=mebibyte"), open_timeout=10, max_size=None,
                 compression=None) as ws:
        ws.send(blob)
        assert ws.recv(timeout=20) == blob
        ws.send(text)
        assert ws.recv(timeout=20) == text
    assert received(shared, "mebibyte") == [("bytes", 1 << 20), ("text", 1 << 20)]


def test_fragmented_messages_with_interleaved_ping_arrive_whole(shared):
    text = "fragment: héllo → wörld €uro"
    data = text.encode("utf-8")
    cut = data.index("€".encode("utf-8")) + 1  # inside the 3-byte euro sign
    with RawWebSocket(shared.address) as ws:
        ws.open("/echo?t=fragments")
        ws.send(build_frame(OP_TEXT, data[:cut], fin=False))
        ws.send(build_frame(OP_PING, b"between"))
        # The pong comes back at once, while the message is still incomplete.
        pong = ws.read_frame()
        assert (pong.opcode, pong.payload) == (OP_PONG, b"between")
        ws.send(build_frame(OP_CONT, data[cut:cut + 1], fin=False))  # still mid-character
        ws.send(build_frame(OP_CONT, data[cut + 1:], fin=True))
        echo = ws.read_message()
        assert echo.opcode == OP_TEXT and echo.fin
        assert echo.payload.decode("utf-8") == text
        # A binary message in three fragments, one of them empty.
        ws.send(build_frame(OP_BINARY, b"\x00\x01", fin=False))
        ws.send(build_frame(OP_CONT, b"", fin=False))
        ws.send(build_frame(OP_CONT, b"\x02\xff", fin=True))
        echo = ws.read_message()
        assert (echo.opcode, echo.payload) == (OP_BINARY, b"\x00\x01\x02\xff")
        ws.send_close(1000)
        assert ws.expect_close().close_code == 1000
    # The app saw two whole messages, not fragments.
    assert received(shared, "fragments") == [("text", len(text)), ("bytes", 4)]


def test_ping_is_answered_with_a_pong_carrying_the_same_payload(shared):
    with RawWebSocket(shared.address) as ws:
        ws.open("/echo?t=ping")
        for payload in (b"ping-payload-\x00\xff", b"", b"x" * 125):
            ws.send_frame(OP_PING, payload)
            pong = ws.read_frame()
            assert pong.opcode == OP_PONG and pong.fin and not pong.masked
            assert pong.payload == payload
        # An unsolicited pong is ignored; the connection stays usable.
        ws.send_frame(OP_PONG, b"unsolicited")
        ws.send_text("after pongs")
        assert ws.read_message().payload == b"after pongs"
    # The high-level client's ping is matched with its pong too.
    with connect(ws_url(shared, "/echo?t=ping2"), open_timeout=10) as client:
        assert client.ping(b"abcd").wait(10)
    assert received(shared, "ping") == [("text", 11)]


# ---------------------------------------------------------------------------
# Scope, subprotocols, accept headers


def test_websocket_scope(shared):
    with RawWebSocket(shared.address) as ws:
        ws.open("/scope/caf%C3%A9?x=1&y=%20z", extra=[
            ("Sec-WebSocket-Protocol", "a, b"),
            ("X-Custom", "Some Value"),
        ])
        # The app accepted without choosing a subprotocol: none is announced.
        assert ws.response.header("sec-websocket-protocol") is None
        scope = json.loads(ws.read_message().payload)
        ws.send_close(1000)
        ws.expect_close()
    assert scope["type"] == "websocket"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/scope/café"
    assert scope["raw_path"] == "/scope/caf%C3%A9"  # bytes, shown as latin-1
    assert scope["query_string"] == "x=1&y=%20z"
    assert scope["root_path"] == ""
    assert scope["subprotocols"] == ["a", "b"]
    names = [name for name, _ in scope["headers"]]
    assert names == ["host", "upgrade", "connection", "sec-websocket-key",
                     "sec-websocket-version", "sec-websocket-protocol", "x-custom"]
    assert ["x-custom", "Some Value"] in scope["headers"]
    assert ["sec-websocket-protocol", "a, b"] in scope["headers"]
    assert scope["client"][0] == "127.0.0.1" and isinstance(scope["client"][1], int)
    assert scope["server"] == ["127.0.0.1", shared.port]
    # The app supports lifespan (with an empty state): each connection gets the state.
    assert scope["state"] == {}


def test_accept_with_subprotocol_and_extra_headers(shared):
    with connect(ws_url(shared, "/accept-extras?t=extras"), subprotocols=["a", "b"],
                 open_timeout=10) as ws:
        # The app picks the last offered subprotocol, so this is not a default.
        assert ws.subprotocol == "b"
        assert ws.response.headers["Sec-WebSocket-Protocol"] == "b"
        assert ws.response.headers["X-WS-Extra"] == "hello"
        assert ws.response.headers["Set-Cookie"] == "ws=1"
        ws.send("works")
        assert ws.recv(timeout=10) == "works"
    # Without an offer the app's chosen None means no Sec-WebSocket-Protocol at all.
    with RawWebSocket(shared.address) as raw:
        response = raw.open("/accept-extras?t=extras2")
        assert response.header("sec-websocket-protocol") is None
        assert response.header("x-ws-extra") == "hello"


# ---------------------------------------------------------------------------
# Close paths


def test_app_close_with_code_and_reason(shared):
    with connect(ws_url(shared, "/app-close?t=app-close"), open_timeout=10,
                 close_timeout=10) as ws:
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 4001
    assert info.value.rcvd.reason == "bye from app"
    # After its close, the app's next receive() is the disconnect (Gunicorn 27 reports the
    # code of the client's closing reply, 4001 here; servers differ, so only the event
    # is required).
    event = wait_tagged(shared, "app-close", "after-close")
    assert event["type"] == "websocket.disconnect"
    assert isinstance(event["code"], int)
    assert_still_serving(shared)


@pytest.mark.parametrize("code, reason", [(1000, "client done"), (4242, "custom ✓")],
                         ids=["1000", "4242"])
def test_client_close_code_reaches_the_app(shared, code, reason):
    tag = "client-close-%d" % code
    with connect(ws_url(shared, "/echo?t=" + tag), open_timeout=10, close_timeout=10) as ws:
        ws.send("one")
        assert ws.recv(timeout=10) == "one"
        ws.close(code, reason)
        # The server answered the close handshake with the same code.
        assert ws.close_code == code
    assert wait_tagged(shared, tag, "disconnect")["code"] == code
    assert_still_serving(shared)


def test_client_close_without_status_gives_1005(shared):
    with RawWebSocket(shared.address) as ws:
        ws.open("/echo?t=close-1005")
        ws.send_close(None)  # an empty close frame
        reply = ws.expect_close()
        # 1005 never goes on the wire: the reply is empty or a normal close.
        assert reply.close_code in (None, 1000)
        ws.wait_eof()
    assert wait_tagged(shared, "close-1005", "disconnect")["code"] == 1005


def test_client_dropping_tcp_gives_the_app_1006(shared):
    ws = RawWebSocket(shared.address)
    ws.open("/echo?t=drop")
    ws.send_text("before the drop")
    assert ws.read_message().payload == b"before the drop"
    ws.close()  # no close frame
    assert wait_tagged(shared, "drop", "disconnect")["code"] == 1006
    assert_still_serving(shared)


def test_app_exception_after_accept_closes_with_1011(shared):
    with connect(ws_url(shared, "/raise-after-accept?t=1011"), open_timeout=10,
                 close_timeout=10) as ws:
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011
    shared.wait_for_log(r"\[ERROR\] Error in WebSocket ASGI application\n"
                        r"Traceback \(most recent call last\):\n(.*\n)*?"
                        r"asgi_ws\.DeliberateError: deliberate failure after accept$")
    assert_still_serving(shared)


def _hold_open(server, count, tag):
    clients = []
    for _ in range(count):
        ws = RawWebSocket(server.address)
        clients.append(ws)
        ws.open("/echo?t=" + tag)
        ws.send_text("open")
        assert ws.read_message().payload == b"open"
    return clients


def test_term_with_open_websockets_ends_them_within_graceful_timeout(ws_server):
    """TERM ends open WebSockets within graceful_timeout (Gunicorn 27 by dropping the TCP
    connections with no close frame; the ferrocorn_only test below asks for 1001)."""
    server = ws_server("--graceful-timeout", "3")
    clients = _hold_open(server, 2, "term")
    try:
        start = time.monotonic()
        server.send_signal(signal.SIGTERM)
        for ws in clients:
            try:
                frame = ws.expect_close(timeout=8)
                ws.send_close(frame.close_code)
                ws.wait_eof(timeout=8)
            except EOFError:
                pass
        assert time.monotonic() - start < 3 + 2
        assert server.wait_exit(timeout=8) == 0
    finally:
        for ws in clients:
            ws.close()


@pytest.mark.ferrocorn_only
def test_term_closes_open_websockets_with_1001(ws_server):
    # Gunicorn 27.0.1 sends no close frame: its worker waits graceful_timeout for the
    # connections to end by themselves and the master's SIGKILL drops them, so the app
    # is never told either.
    server = ws_server("--graceful-timeout", "5")
    clients = _hold_open(server, 2, "term-1001")
    try:
        start = time.monotonic()
        server.send_signal(signal.SIGTERM)
        for ws in clients:
            frame = ws.expect_close(timeout=5)
            assert frame.close_code == 1001
            ws.send_close(1001)
            ws.wait_eof(timeout=5)
        assert time.monotonic() - start < 5
        # The app was told, before the worker went away.
        wait_until(lambda: len(events(server, "term-1001", "disconnect")) == 2, timeout=5,
                   what="the app's two disconnect events")
        assert server.wait_exit(timeout=8) == 0
    finally:
        for ws in clients:
            ws.close()


# ---------------------------------------------------------------------------
# Protocol errors


PROTOCOL_ERRORS = {
    "invalid-utf8": ([build_frame(OP_TEXT, b"valid then \xff\xfe")], 1007),
    "invalid-utf8-across-fragments": (
        [build_frame(OP_TEXT, b"abc\xe2\x82", fin=False), build_frame(OP_CONT, b"x", fin=True)],
        1007),
    "unmasked": ([build_frame(OP_TEXT, b"hello", mask=False)], 1002),
    "rsv1-without-deflate": ([build_frame(OP_TEXT, b"hello", rsv1=True)], 1002),
    "reserved-data-opcode-3": ([build_frame(0x3, b"hello")], 1002),
    "reserved-control-opcode-b": ([build_frame(0xB, b"")], 1002),
}


@pytest.mark.parametrize("case", list(PROTOCOL_ERRORS))
def test_protocol_error_closes_with_code(shared, case):
    frames, expected = PROTOCOL_ERRORS[case]
    with RawWebSocket(shared.address) as ws:
        ws.open("/echo?t=" + case)
        ws.send_text("good")
        assert ws.read_message().payload == b"good"
        for frame in frames:
            ws.send(frame)
        close = ws.expect_close()
        assert close.close_code == expected, close
        # The server fails the connection: it closes TCP without waiting for a reply.
        ws.wait_eof(timeout=10)
    # The app got the good message only, then a disconnect.
    wait_tagged(shared, case, "disconnect")
    assert received(shared, case) == [("text", 4)]
    assert_still_serving(shared)


def test_message_over_max_size_closes_with_1009(ws_server):
    server = ws_server("--websocket-max-message-size", "1024")
    with RawWebSocket(server.address) as ws:
        ws.open("/echo?t=limit")
        # Exactly the limit passes, as one frame and as fragments.
        ws.send_frame(OP_BINARY, b"a" * 1024)
        assert ws.read_message().payload == b"a" * 1024
        ws.send_frame(OP_TEXT, b"b" * 600, fin=False)
        ws.send_frame(OP_CONT, b"b" * 424)
        assert ws.read_message().payload == b"b" * 1024
        ws.send_frame(OP_BINARY, b"c" * 1025)
        assert ws.expect_close().close_code == 1009
        ws.wait_eof()
    # Fragments that only add up to more than the limit count as one message.
    with RawWebSocket(server.address) as ws:
        ws.open("/echo?t=limit-fragments")
        ws.send_frame(OP_TEXT, b"d" * 1000, fin=False)
        ws.send_frame(OP_CONT, b"d" * 100)
        assert ws.expect_close().close_code == 1009
        ws.wait_eof()
    assert received(server, "limit") == [("bytes", 1024), ("text", 1024)]
    wait_tagged(server, "limit", "disconnect")
    wait_tagged(server, "limit-fragments", "disconnect")
    assert received(server, "limit-fragments") == []
    assert_still_serving(server)


# ---------------------------------------------------------------------------
# Handshake answers


def test_unsupported_version_gets_426_with_supported_version(shared):
    response, rest = handshake_only(shared.address, "/echo?t=v8", version="8")
    assert response.status_line == "HTTP/1.1 426 Upgrade Required"
    assert response.header("sec-websocket-version") == "13"
    assert response.header("connection") == "close"
    assert response.header("sec-websocket-accept") is None
    assert rest == b""
    # The app never saw the connection.
    assert events(shared, "v8") == []
    assert_still_serving(shared)


@pytest.mark.parametrize("key", [
    "abc",                          # not 16 bytes of base64
    "AAAAAAAAAAAAAAAAAAAA",         # 15 bytes
    "!!!!notbase64!!!!!!!!===",     # not base64
    None,                           # missing
], ids=["short", "15-bytes", "not-base64", "missing"])
def test_bad_key_gets_400(shared, key):
    tag = "key-%s" % (key or "missing")
    with RawWebSocket(shared.address) as ws:
        if key is None:
            ws.send(("GET /echo?t=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n" % tag).encode())
            response = RawResponse(ws.wait_eof())
        else:
            response = ws.handshake("/echo?t=" + tag, key=key)
            ws.wait_eof()
    assert response.status == 400
    assert response.header("sec-websocket-accept") is None
    assert events(shared, tag) == []
    assert_still_serving(shared)


@pytest.mark.parametrize("path, status", [
    ("/close-before-accept", 403),
    ("/return-without-accept", 403),
    ("/raise-before-accept", 500),
])
def test_refused_handshake_is_an_http_error(shared, path, status):
    response, rest = handshake_only(shared.address, path + "?t=refused")
    assert response.status == status
    assert response.header("sec-websocket-accept") is None
    assert response.header("connection") == "close"
    assert response.header("content-length") == "0" and response.body == b""
    assert rest == b""
    if status == 500:
        shared.wait_for_log(r"\[ERROR\] Error in WebSocket ASGI application\n"
                            r"Traceback \(most recent call last\):\n(.*\n)*?"
                            r"asgi_ws\.DeliberateError: deliberate failure before accept$")
    # A real client reports the status.
    with pytest.raises(InvalidStatus) as info:
        with connect(ws_url(shared, path + "?t=refused2"), open_timeout=10):
            pass
    assert info.value.response.status_code == status
    assert_still_serving(shared)


# ---------------------------------------------------------------------------
# Beyond Gunicorn


def _read_http_response(ws: RawWebSocket, response: RawResponse) -> RawResponse:
    """The whole denial response: the head `handshake` read plus its body, however it is
    framed (a Content-Length body was read already; chunked or read-to-close here)."""
    if response.header("content-length") is not None:
        return response
    if response.header("transfer-encoding", "").lower() == "chunked":
        deadline = time.monotonic() + 10
        while not ws.buffer.endswith(b"0\r\n\r\n"):
            assert time.monotonic() < deadline, ws.buffer
            if not ws._fill(deadline):
                break
        return RawResponse(ws.head + ws.buffer)
    return RawResponse(ws.head + ws.wait_eof())


@pytest.mark.ferrocorn_only
def test_websocket_http_response_denial_extension(shared):
    # Gunicorn 27.0.1 offers no "extensions" in the websocket scope, so /deny falls back
    # to a close before accept (403).
    with RawWebSocket(shared.address) as ws:
        response = _read_http_response(ws, ws.handshake("/deny?t=deny"))
    assert response.status == 401
    assert response.header("www-authenticate") == 'Bearer realm="ws"'
    assert response.header("x-denied-by") == "asgi_ws"
    assert response.header("content-type") == "text/plain"
    assert response.header("sec-websocket-accept") is None
    assert response.body == b"no entry\n"
    # The websockets client sees the same refusal.
    with pytest.raises(InvalidStatus) as info:
        with connect(ws_url(shared, "/deny?t=deny2"), open_timeout=10):
            pass
    assert info.value.response.status_code == 401
    assert info.value.response.headers["X-Denied-By"] == "asgi_ws"
    # The scope offered the extension.
    with RawWebSocket(shared.address) as ws:
        ws.open("/scope?t=deny-scope")
        scope = json.loads(ws.read_message().payload)
    assert "websocket.http.response" in scope.get("extensions", {})
    assert_still_serving(shared)


COMPRESSIBLE = ("the quick brown fox jumps over the lazy dog; " * 2400)[: 100 * 1024]


def test_client_offering_permessage_deflate_still_works(shared):
    # The websockets client offers permessage-deflate by default. Gunicorn 27 declines
    # it (no Sec-WebSocket-Extensions in the 101); ferrocorn accepts it. Either way the
    # echo is intact and the 101 agrees with what the client ends up using.
    with connect(ws_url(shared, "/echo?t=deflate-offer"), open_timeout=10) as ws:
        offered = ws.request.headers.get("Sec-WebSocket-Extensions", "")
        assert offered.startswith("permessage-deflate")
        answered = ws.response.headers.get("Sec-WebSocket-Extensions")
        assert bool(answered) == bool(ws.protocol.extensions)
        ws.send(COMPRESSIBLE)
        assert ws.recv(timeout=10) == COMPRESSIBLE
        ws.send(COMPRESSIBLE.encode())
        assert ws.recv(timeout=10) == COMPRESSIBLE.encode()
    assert received(shared, "deflate-offer") == [("text", len(COMPRESSIBLE)),
                                                 ("bytes", len(COMPRESSIBLE))]


@pytest.mark.ferrocorn_only
def test_permessage_deflate_is_negotiated_and_used(shared):
    with connect(ws_url(shared, "/echo?t=deflate"), open_timeout=10) as ws:
        answered = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert answered.startswith("permessage-deflate"), ws.response.headers
        assert [ext.name for ext in ws.protocol.extensions] == ["permessage-deflate"]
        ws.send(COMPRESSIBLE)
        assert ws.recv(timeout=10) == COMPRESSIBLE
    # On the wire: a compressed client frame (RSV1) is inflated for the app, and the
    # server's reply is compressed too.
    with RawWebSocket(shared.address) as ws:
        response = ws.open("/echo?t=deflate-raw", extra=[(
            "Sec-WebSocket-Extensions",
            "permessage-deflate; client_no_context_takeover; server_no_context_takeover")])
        assert response.header("sec-websocket-extensions", "").startswith("permessage-deflate")
        deflater = zlib.compressobj(wbits=-15)
        body = deflater.compress(COMPRESSIBLE.encode()) + deflater.flush(zlib.Z_SYNC_FLUSH)
        assert body.endswith(b"\x00\x00\xff\xff")
        ws.send_frame(OP_TEXT, body[:-4], rsv1=True)
        frames = [ws.read_message()]
        while not frames[-1].fin:
            frames.append(ws.read_message())
        assert frames[0].opcode == OP_TEXT and frames[0].rsv & 0x4, frames[0]
        wire = b"".join(f.payload for f in frames)
        assert len(wire) < len(COMPRESSIBLE) // 10
        inflated = zlib.decompressobj(wbits=-15).decompress(wire + b"\x00\x00\xff\xff")
        assert inflated.decode() == COMPRESSIBLE
        ws.send_close(1000)
        assert ws.expect_close().close_code == 1000
    assert received(shared, "deflate") == [("text", len(COMPRESSIBLE))]
    assert received(shared, "deflate-raw") == [("text", len(COMPRESSIBLE))]
