"""Host (RFC 9112 section 3.2), issue 19: an HTTP/1.1 request must carry exactly one Host
line whose value is a valid ``uri-host[:port]``; anything else is answered 400 with
Gunicorn's error page and the connection closes, before the app is called.

Gunicorn 27.0.1 already rejects two Host lines (and a control byte in any field value), and
answers 200 for a request without Host or with a malformed Host value; the tests for those
two cases are ``ferrocorn_only``. ``--permit-missing-host`` (``permit_missing_host``, off by
default) is a ferrocorn setting that lets an HTTP/1.1 request without Host through.

Every test runs against ``-k sync`` and ``-k gthread --threads 2``; one server per worker
type (and per extra setting) serves the whole module.
"""

from __future__ import annotations

import json
import socket
import uuid

import pytest

from conftest import RawResponse, raw_request, read_until_eof
from hardening_support import WORKERS, error_page, hardening_servers, read_response

pytestmark = pytest.mark.timeout(60)

MISSING_HOST = error_page(400, "Bad Request", "Missing HTTP Header: 'HOST'")
INVALID_HOST = error_page(400, "Bad Request", "Invalid HTTP Header: 'HOST'")


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """``servers(worker, *extra)`` -> a shared ready server (see hardening_support)."""
    yield from hardening_servers(tmp_path_factory, "host")


@pytest.fixture(params=sorted(WORKERS))
def worker(request):
    return request.param


@pytest.fixture
def server(servers, worker):
    return servers(worker)


def token() -> str:
    return uuid.uuid4().hex


def ok_json(raw: bytes) -> dict:
    resp = RawResponse(raw)
    assert resp.status == 200, raw[:600]
    return json.loads(resp.body)


def assert_never_called(server, tok: str):
    """The app never saw a request whose target held `tok`. A later request through the same
    server is answered first, so a call still on its way would have been logged by then."""
    after = "/after-%s" % tok
    raw = raw_request(server.address,
                      b"GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % after.encode())
    assert ok_json(raw)["path"] == after
    calls = server.calls_path.read_text("latin-1")
    assert after in calls
    assert "/%s?" % tok not in calls, "the app was called for a rejected request"


def rejected(server, head_lines: bytes, version: bytes = b"HTTP/1.1") -> tuple[bytes, str]:
    """Send `GET /<token> <version>` with `head_lines` and no Connection header; the whole
    answer (read to EOF: a rejected request's connection must close) and the token."""
    tok = token()
    raw = raw_request(server.address,
                      b"GET /%s %s\r\n%s\r\n" % (tok.encode(), version, head_lines), timeout=10)
    return raw, tok


# ---------------------------------------------------------------------------
# Missing, duplicated and malformed Host.


@pytest.mark.ferrocorn_only
def test_http11_without_host_is_400_missing_host(server):
    # Gunicorn 27.0.1 answers 200 (HTTP_HOST absent).
    raw, tok = rejected(server, b"X-Other: 1\r\n")
    assert raw == MISSING_HOST
    assert_never_called(server, tok)


def test_http11_with_two_host_lines_is_400(server):
    raw, tok = rejected(server, b"Host: a\r\nHost: a\r\n")
    assert raw == INVALID_HOST
    assert_never_called(server, tok)


def test_http11_with_two_different_host_lines_is_400(server):
    raw, tok = rejected(server, b"Host: a.example\r\nX-Between: 1\r\nHost: b.example\r\n")
    assert raw == INVALID_HOST
    assert_never_called(server, tok)


def _invalid(value: bytes, gunicorn_rejects: bool = False):
    """A Host value that is not `uri-host[:port]`; Gunicorn 27 lets all through except the
    ones its field-value check already refuses."""
    marks = () if gunicorn_rejects else (pytest.mark.ferrocorn_only,)
    return pytest.param(value, marks=marks, id=repr(value)[2:-1])


INVALID_VALUES = [
    _invalid(b"a b"),
    _invalid(b"a/b"),
    _invalid(b"a@b"),
    _invalid(b"a\\b"),
    _invalid(b"a\x01b", gunicorn_rejects=True),
    _invalid(b"host:"),
    _invalid(b"host:abc"),
    _invalid(b"host:65536"),
    _invalid(b"host:99999999999999999999"),
    _invalid(b"[::1"),
    _invalid(b"[zz]"),
    _invalid(b"\xe9"),
    _invalid(b"a:1:2"),
]


@pytest.mark.parametrize("value", INVALID_VALUES)
def test_invalid_host_value_is_400(server, value):
    raw, tok = rejected(server, b"Host: %s\r\n" % value)
    assert raw == INVALID_HOST
    assert_never_called(server, tok)


VALID_VALUES = [
    b"example.com",
    b"example.com:8080",
    b"127.0.0.1:80",
    b"[::1]:8080",
    b"[::1]",
    b"0.0.0.0=5000",  # sub-delims are allowed in a reg-name
    b"xn--bcher-kva.example",
    b"a%20b",  # pct-encoded
    b"",  # RFC 9110 section 7.2 allows an empty Host
]


@pytest.mark.parametrize("value", VALID_VALUES, ids=lambda v: repr(v)[2:-1] or "empty")
def test_valid_host_value_reaches_the_app(server, value):
    raw = raw_request(server.address,
                      b"GET /valid HTTP/1.1\r\nHost:%s%s\r\nConnection: close\r\n\r\n"
                      % (b" " if value else b"", value), timeout=10)
    seen = ok_json(raw)
    assert seen["host"] == value.decode("latin-1")
    assert seen["path"] == "/valid"


def test_http10_without_host_is_accepted(server):
    raw = raw_request(server.address, b"GET /old HTTP/1.0\r\n\r\n", timeout=10)
    assert raw.startswith(b"HTTP/1.0 200 OK\r\n")
    seen = ok_json(raw)
    assert seen["host"] is None
    assert seen["protocol"] == "HTTP/1.0"


def test_http10_with_two_host_lines_is_400(server):
    # Gunicorn's error page says HTTP/1.1 whatever the request's version.
    raw, tok = rejected(server, b"Host: a\r\nHost: b\r\n", version=b"HTTP/1.0")
    assert raw == INVALID_HOST
    assert_never_called(server, tok)


def test_absolute_form_target_with_a_valid_host(server):
    raw = raw_request(server.address,
                      b"GET http://example.com/x?q=1 HTTP/1.1\r\nHost: example.com\r\n"
                      b"Connection: close\r\n\r\n", timeout=10)
    seen = ok_json(raw)
    assert seen["path"] == "/x"
    assert seen["query"] == "q=1"
    assert seen["host"] == "example.com"


def test_host_is_checked_on_every_request_of_a_keepalive_connection(servers):
    """A second request on a kept-alive connection gets the same check as the first."""
    server = servers("gthread")
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
        assert ok_json(read_response(sock))["path"] == "/first"
        sock.sendall(b"GET /second HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        assert read_until_eof(sock, 10) == INVALID_HOST


# ---------------------------------------------------------------------------
# --permit-missing-host (ferrocorn only: Gunicorn has no such setting).


@pytest.fixture
def permissive(servers, worker):
    return servers(worker, "--permit-missing-host")


@pytest.mark.ferrocorn_only
def test_permit_missing_host_lets_a_request_without_host_through(permissive):
    raw = raw_request(permissive.address,
                      b"GET /no-host HTTP/1.1\r\nConnection: close\r\n\r\n", timeout=10)
    seen = ok_json(raw)
    assert seen["host"] is None
    assert seen["path"] == "/no-host"


@pytest.mark.ferrocorn_only
def test_permit_missing_host_still_rejects_two_host_lines(permissive):
    raw, tok = rejected(permissive, b"Host: a\r\nHost: a\r\n")
    assert raw == INVALID_HOST
    assert_never_called(permissive, tok)


@pytest.mark.ferrocorn_only
@pytest.mark.parametrize("value", [p.values[0] for p in INVALID_VALUES],
                         ids=[p.id for p in INVALID_VALUES])
def test_permit_missing_host_still_rejects_invalid_values(permissive, value):
    raw, tok = rejected(permissive, b"Host: %s\r\n" % value)
    assert raw == INVALID_HOST
    assert_never_called(permissive, tok)


@pytest.mark.ferrocorn_only
def test_permit_missing_host_from_a_config_file(servers, tmp_path):
    conf = tmp_path / "permit.py"
    conf.write_text("permit_missing_host = True\n")
    server = servers("sync", "-c", str(conf))
    raw = raw_request(server.address, b"GET /conf HTTP/1.1\r\nConnection: close\r\n\r\n",
                      timeout=10)
    assert ok_json(raw)["host"] is None
