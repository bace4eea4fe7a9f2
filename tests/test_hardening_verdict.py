"""A verdict at the earliest byte (issue 19): a request that is already known to be bad is
answered at once, without the client sending anything more and without waiting for
``--timeout``; a request that is merely incomplete still waits. And ``Expect: 100-continue``
after a final response on a kept-alive (gthread) connection.

Each bad input is a prefix that can never become a valid request: a head whose framing
headers (Content-Length, Transfer-Encoding) or Host are already wrong before its blank line
arrives, or a chunked body whose chunk-size line is already wrong before its CRLF (to an app
that reads ``wsgi.input``). It is sent three ways, whole, one byte at a time and split after
every CRLF, to a server started with ``--timeout 30``, and the answer must come within
``EARLY`` seconds of the last byte sent. The status is the one Gunicorn 27.0.1 gives for the
completed input (the prefix plus the CRLF it lacks): ``test_completed_input_answer`` checks
that, page and all, and runs against Gunicorn too, except for the two inputs Gunicorn does
not refuse (a Content-Length or a chunk size too large for 64 bits: it waits for the body).

Gunicorn 27.0.1 reads a head to its blank line and a chunk-size line to its CRLF before
looking at them, so every early-verdict test is ``ferrocorn_only``, and so are the Expect
tests (Gunicorn sends ``100 Continue`` before the app runs).
"""

from __future__ import annotations

import html
import json
import re
import select
import socket
import time
import uuid
from dataclasses import dataclass

import pytest

from conftest import RawResponse, raw_request, read_until_eof
from hardening_support import WORKERS, error_page, hardening_servers, read_response

pytestmark = pytest.mark.timeout(60)

# An answer "at once": far below the --timeout 30 of the server under test.
EARLY = 5.0
# Byte by byte, each byte is followed by this long a look for an answer (so the server reads
# the bytes as they come, and the client stops sending once it is answered); line by line,
# each line by this one.
BYTE_GAP = 0.002
LINE_GAP = 0.05


def assert_error_page(raw: bytes, status: int, reason: str):
    """`raw` is Gunicorn's error page for `status` with some message, and nothing more."""
    assert raw.startswith(b"HTTP/1.1 %d %s\r\n" % (status, reason.encode())), raw[:600]
    m = re.search(rb"</h1>\n    (.*)\n  </body>", raw)
    assert m, "not an error page: %r" % raw[:600]
    mesg = html.unescape(m.group(1).decode("latin-1"))
    assert raw == error_page(status, reason, mesg)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """``servers(worker, timeout)`` -> a shared ready server (see hardening_support)."""
    gets = hardening_servers(tmp_path_factory, "verdict")
    get = next(gets)
    yield lambda worker, timeout=30: get(worker, "--timeout", str(timeout))
    next(gets, None)


@pytest.fixture(params=sorted(WORKERS))
def worker(request):
    return request.param


def assert_never_called(server, tok: bytes):
    """The app never saw a request whose target held `tok`. A later request through the same
    server is answered first, so a call still on its way would have been logged by then."""
    after = b"/after-" + tok
    raw = raw_request(server.address,
                      b"GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % after)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n"), raw[:600]
    calls = server.calls_path.read_bytes()
    assert after in calls
    assert b"/" + tok + b"?" not in calls, "the app was called for a rejected request"


# ---------------------------------------------------------------------------
# The inputs.


@dataclass(frozen=True)
class Case:
    id: str
    prefix: bytes  # what the client sends; "@TOK@" becomes a token unique to the request
    status: int
    reason: str
    mesg: str | None  # Gunicorn's message for the completed input, when it answers it
    in_head: bool  # refused from the head alone: the app is never called
    completion: bytes = b"\r\n"  # what makes `prefix` a whole request

    def with_token(self, tok: bytes, completed: bool = False) -> bytes:
        data = self.prefix.replace(b"@TOK@", tok)
        return data + self.completion if completed else data

    def param(self):
        marks = () if self.mesg is not None else (pytest.mark.ferrocorn_only,)
        return pytest.param(self, id=self.id, marks=marks)


def head_case(id, lines, mesg, status=400, reason="Bad Request", version=b"HTTP/1.1",
              host=b"Host: a\r\n"):
    return Case(id, b"POST /@TOK@?read=1 %s\r\n%s%s" % (version, host, lines),
                status, reason, mesg, in_head=True)


CL = "Invalid HTTP Header: 'CONTENT-LENGTH'"
TE = "Invalid HTTP Header: 'TRANSFER-ENCODING'"
HOST = "Invalid HTTP Header: 'HOST'"

HEAD_CASES = [
    head_case("cl-abc", b"Content-Length: abc\r\n", CL),
    head_case("cl-negative", b"Content-Length: -1\r\n", CL),
    head_case("cl-two-numbers", b"Content-Length: 1 2\r\n", CL),
    # Gunicorn takes it as a length and waits for the body.
    head_case("cl-overflow", b"Content-Length: 99999999999999999999999\r\n", None),
    head_case("cl-conflicting", b"Content-Length: 1\r\nContent-Length: 2\r\n", CL),
    head_case("cl-then-te", b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n", CL),
    head_case("te-then-cl", b"Transfer-Encoding: chunked\r\nContent-Length: 1\r\n", CL),
    # Gunicorn's quirk: 501 with the reason "Bad Request".
    head_case("te-unsupported", b"Transfer-Encoding: foo\r\n",
              "Unsupported transfer coding: 'foo'", status=501),
    head_case("te-chunked-twice", b"Transfer-Encoding: chunked, chunked\r\n", TE),
    head_case("te-chunked-http10", b"Transfer-Encoding: chunked\r\n", TE, version=b"HTTP/1.0"),
    head_case("expect-unknown", b"Expect: foo\r\n", "Unable to comply with expectation: 'foo'",
              status=417, reason="Expectation Failed"),
    # Cut right after its CR, a line can only be completed by LF.
    Case("line-without-colon-cut-after-cr",
         b"POST /@TOK@?read=1 HTTP/1.1\r\nHost: a\r\nNocolon\r", 400, "Bad Request",
         "Invalid HTTP Header: 'Nocolon'", in_head=True, completion=b"\n\r\n"),
    head_case("host-twice", b"Host: a\r\n", HOST),
    # Gunicorn lets a malformed Host through (test_hardening_host.py).
    head_case("host-invalid", b"", None, host=b"Host: a b\r\n"),
]

CHUNKED_HEAD = b"POST /@TOK@?read=1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk_case(id, line, mesg):
    return Case(id, CHUNKED_HEAD + line, 400, "Bad Request", mesg, in_head=False)


CHUNK_CASES = [
    chunk_case("size-zz", b"zz", "Invalid chunk size: b'zz'"),
    chunk_case("size-5-5", b"5 5", "Invalid chunk size: b'5 5'"),
    chunk_case("size-minus", b"-5", "Invalid chunk size: b'-5'"),
    chunk_case("size-plus", b"+5", "Invalid chunk size: b'+5'"),
    chunk_case("size-0x", b"0x5", "Invalid chunk size: b'0x5'"),
    chunk_case("bad-extension", b"5;a b", "Invalid chunk extension: invalid chunk extension"),
    chunk_case("extension-without-size", b";ext", "Invalid chunk size: b''"),
    chunk_case("bare-lf-in-size-line", b"5\nabc", "Invalid chunk size: b'5\\nabc'"),
    Case("size-line-cut-after-cr", CHUNKED_HEAD + b"5 \r", 400, "Bad Request",
         "Invalid chunk size: b'5 '", in_head=False, completion=b"\n"),
    # Gunicorn takes the 65-bit size and waits for the chunk's data.
    chunk_case("size-17-hex-digits", b"10000000000000000", None),
]

ALL_CASES = HEAD_CASES + CHUNK_CASES


def ways(data: bytes) -> dict:
    """The three ways to send `data`: (pieces, seconds to look for an answer after each)."""
    return {
        "whole": ([data], 0.0),
        "byte-by-byte": ([data[i:i + 1] for i in range(len(data))], BYTE_GAP),
        "line-by-line": ([p for p in re.split(rb"(?<=\r\n)", data) if p], LINE_GAP),
    }


def answered(sock, wait: float) -> bool:
    """Whether the server has sent something (or closed) within `wait` seconds."""
    return bool(select.select([sock], [], [], wait)[0])


def early_exchange(address, pieces: list, gap: float) -> bytes:
    """Send `pieces` in order, looking for an answer for `gap` seconds after each, and stop
    sending as soon as there is one (the server may close before taking every byte: a broken
    pipe or a reset then just ends the sending). Nothing more is sent after that. The answer
    must start within EARLY seconds of the last byte sent, and the connection must close
    within EARLY seconds more. Returns everything received."""
    with socket.create_connection(address, timeout=EARLY) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sent = 0
        for piece in pieces:
            if answered(sock, 0):
                break
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
            if gap:
                answered(sock, gap)
        if not answered(sock, EARLY):
            pytest.fail("no answer within %ss of the last byte sent (%d of %d pieces); the "
                        "server is waiting for more of a request it could already refuse"
                        % (EARLY, sent, len(pieces)))
        chunks = []
        deadline = time.monotonic() + EARLY
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                pytest.fail("connection not closed within %ss after the answer %r"
                            % (EARLY, b"".join(chunks)[:600]))
            if not chunk:
                break
            chunks.append(chunk)
            if time.monotonic() > deadline:
                pytest.fail("connection not closed within %ss after the answer %r"
                            % (EARLY, b"".join(chunks)[:600]))
        return b"".join(chunks)


# ---------------------------------------------------------------------------
# The completed inputs: the status the early verdict must give (checked against Gunicorn).


@pytest.mark.parametrize("case", [c.param() for c in ALL_CASES])
def test_completed_input_answer(servers, worker, case):
    server = servers(worker)
    tok = uuid.uuid4().hex.encode()
    raw = raw_request(server.address, case.with_token(tok, completed=True), timeout=10)
    if case.mesg is not None:
        assert raw == error_page(case.status, case.reason, case.mesg)
    else:
        assert_error_page(raw, case.status, case.reason)
    if case.in_head:
        assert_never_called(server, tok)


# ---------------------------------------------------------------------------
# The prefixes: answered at once, sent whole, byte by byte or line by line.


@pytest.mark.ferrocorn_only
@pytest.mark.parametrize("case", ALL_CASES, ids=[c.id for c in ALL_CASES])
def test_known_bad_prefix_is_answered_at_once(servers, worker, case):
    server = servers(worker)
    statuses = {}
    for way in ("whole", "byte-by-byte", "line-by-line"):
        tok = uuid.uuid4().hex.encode()
        pieces, gap = ways(case.with_token(tok))[way]
        raw = early_exchange(server.address, pieces, gap)
        assert raw, "%s: the server closed without answering" % way
        assert_error_page(raw, case.status, case.reason)
        statuses[way] = raw.partition(b"\r\n")[0]
        if case.in_head:
            assert_never_called(server, tok)
    assert len(set(statuses.values())) == 1, statuses


# ---------------------------------------------------------------------------
# Requests that are only incomplete still wait, until --timeout.

CONTROL_TIMEOUT = 3

SILENT_CLOSE = b""
APP_READ_FAILED = error_page(500, "Internal Server Error", "")


HEADER_LINE_ARRIVING = b"POST /@TOK@?read=1 HTTP/1.1\r\nHost: a\r\nX-Foo: bar"
TRAILER_UNFINISHED = CHUNKED_HEAD + b"3\r\nabc\r\n0\r\nX: y\r\n"


@pytest.mark.parametrize("worker_type, data, expected", [
    # A header line still arriving: ferrocorn closes without a word after --timeout
    # (Gunicorn's sync worker is aborted by the arbiter and answers 500; its gthread worker
    # waits on).
    pytest.param("sync", HEADER_LINE_ARRIVING, SILENT_CLOSE, id="header-line-arriving-sync",
                 marks=pytest.mark.ferrocorn_only),
    pytest.param("gthread", HEADER_LINE_ARRIVING, SILENT_CLOSE,
                 id="header-line-arriving-gthread", marks=pytest.mark.ferrocorn_only),
    # A trailer section not yet ended: the app's read fails after --timeout and the answer is
    # a 500 (as from Gunicorn's sync worker; its gthread worker waits on).
    pytest.param("sync", TRAILER_UNFINISHED, APP_READ_FAILED, id="trailer-unfinished-sync"),
    pytest.param("gthread", TRAILER_UNFINISHED, APP_READ_FAILED,
                 id="trailer-unfinished-gthread", marks=pytest.mark.ferrocorn_only),
])
def test_incomplete_request_waits_for_the_timeout(servers, worker_type, data, expected):
    server = servers(worker_type, CONTROL_TIMEOUT)
    data = data.replace(b"@TOK@", uuid.uuid4().hex.encode())
    with socket.create_connection(server.address, timeout=15) as sock:
        sock.sendall(data)
        sent = time.monotonic()
        assert not answered(sock, 1.0), "answered an incomplete request: %r" % sock.recv(600)
        raw = read_until_eof(sock, 15)
        waited = time.monotonic() - sent
    assert raw == expected
    assert CONTROL_TIMEOUT - 1 <= waited <= CONTROL_TIMEOUT + 6, waited


# ---------------------------------------------------------------------------
# Expect: 100-continue after the final response, on a kept-alive (gthread) connection, to an
# app that answers without reading the body. A client that waits for the interim response
# gets the final one and a close (tests/test_wsgi_input.py); a client that sent its body
# anyway was evidently not waiting, and its connection stays usable.


def assert_final_ok_and_kept(raw: bytes):
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n"), "not the final 200 first: %r" % raw[:300]
    assert b"100 Continue" not in raw
    assert RawResponse(raw).header("connection", "").lower() != "close", raw[:300]


def assert_second_request_served(sock):
    sock.sendall(b"GET /second HTTP/1.1\r\nHost: a\r\n\r\n")
    second = RawResponse(read_response(sock))
    assert second.status == 200
    assert json.loads(second.body)["path"] == "/second"


EXPECT_HEAD = b"POST /unread HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"


@pytest.mark.ferrocorn_only
def test_expect_with_the_whole_body_at_once_keeps_the_connection(servers):
    with socket.create_connection(servers("gthread").address, timeout=10) as sock:
        sock.sendall(EXPECT_HEAD + b"Content-Length: 11\r\n\r\nhello world")
        assert_final_ok_and_kept(read_response(sock))
        assert_second_request_served(sock)


@pytest.mark.ferrocorn_only
def test_expect_with_a_whole_chunked_body_at_once_keeps_the_connection(servers):
    with socket.create_connection(servers("gthread").address, timeout=10) as sock:
        sock.sendall(EXPECT_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        assert_final_ok_and_kept(read_response(sock))
        assert_second_request_served(sock)


@pytest.mark.ferrocorn_only
def test_expect_with_part_of_the_body_at_once_keeps_the_connection(servers):
    with socket.create_connection(servers("gthread").address, timeout=10) as sock:
        sock.sendall(EXPECT_HEAD + b"Content-Length: 11\r\n\r\nhello")
        assert_final_ok_and_kept(read_response(sock))
        # The rest of the body only now, after the final response.
        sock.sendall(b" world")
        assert_second_request_served(sock)
