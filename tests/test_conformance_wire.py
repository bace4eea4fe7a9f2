"""Gunicorn's HTTP/1 request corpus replayed over real sockets against a running server.

Every vector in ``<repo>/../shared/conformance/gunicorn-requests/{valid,invalid}``
(override with ``FERROCORN_CONFORMANCE_DIR``) is sent to a ``-k sync`` server exactly
as gunicorn 27.0.1's ``live_sync`` recording was made: the wire bytes, then
``shutdown(SHUT_WR)``, then the connection is read to EOF. Each vector's ``config``
goes into a config file; vectors with the same config share one server.

What is compared:

- invalid vectors: the whole response, byte for byte (status line, headers and the
  HTML error page), minus any ``Date`` header; an empty recording means the server
  must close without answering.
- valid vectors: the status line, the response header names and their order, and the
  WSGI environ the app saw (dumped as JSON by an app equivalent to the corpus'
  ``echoapp``), key for key.

Normalisations, each for a stated reason, and nothing else:

- The recorded ``live_sync`` responses were not produced by a sync worker: they say
  ``wsgi.multithread: True`` and ``Connection: keep-alive`` and answer every request of
  a pipelined vector, which is gthread behaviour. Gunicorn 27.0.1 started with
  ``-k sync`` answers only the first request, always with ``Connection: close``, and
  reports ``wsgi.multithread: False`` (checked by running this file against it with
  ``FERROCORN_CMD=.../gunicorn``). So the expectation is the recording's first
  response, with those three sync-worker facts restored.
- ``Server`` header and ``SERVER_SOFTWARE``: ferrocorn names itself
  (``ferrocorn``, ``ferrocorn/<version>``); gunicorn's own values are expected only
  when the server under test is gunicorn.
- ``SERVER_PORT`` and (for connections without a PROXY header) ``REMOTE_PORT`` differ
  by run; they are checked against this run's listening port and client port instead.
- ``Date`` differs by run; its format is checked instead.
- ferrocorn answers an HTTP/1.1 request without ``Host`` with 400 (RFC 9112 3.2,
  docs/differences.md); Gunicorn, which recorded the corpus, does not. The ferrocorn
  servers here run with ``permit_missing_host = True`` so that the other rules are
  still compared on those vectors.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import FROM_LOG, REPO_ROOT, Server, base_env, is_gunicorn, read_until_eof

CONFORMANCE_DIR = Path(
    os.environ.get("FERROCORN_CONFORMANCE_DIR")
    or REPO_ROOT.parent / "shared" / "conformance" / "gunicorn-requests"
)

# Bound on one vector's exchange: every vector is complete (or the write side is shut),
# so a server that answers correctly closes within milliseconds.
EXCHANGE_TIMEOUT = 10.0

# The corpus' echo app, restated: the environ minus the objects that cannot be
# serialised, every non-string value as its repr, and the body as latin-1 text.
ECHO_APP = '''\
import json

SKIP = ("wsgi.errors", "wsgi.input", "gunicorn.socket", "wsgi.file_wrapper", "wsgi.early_hints")


def app(environ, start_response):
    body = environ["wsgi.input"].read()
    out = {k: (v if isinstance(v, str) else repr(v)) for k, v in environ.items() if k not in SKIP}
    out["_body"] = body.decode("latin-1")
    data = json.dumps(out, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]
'''

DATE_RE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d\d:\d\d:\d\d GMT"
)


@dataclass(frozen=True)
class Vector:
    name: str  # "valid/001"
    kind: str
    config: tuple  # sorted (setting, value) pairs, hashable so it can key a server
    wire: bytes
    live_sync: bytes


def load_vectors() -> list:
    vectors = []
    for kind in ("valid", "invalid"):
        for path in sorted((CONFORMANCE_DIR / kind).glob("*.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            wire = base64.b64decode(data["wire_base64"])
            assert len(wire) == data["wire_length"], path
            vectors.append(
                Vector(
                    name="%s/%s" % (kind, path.stem),
                    kind=kind,
                    config=tuple(sorted(data["config"].items())),
                    wire=wire,
                    # The recording is latin-1 text of the raw response bytes.
                    live_sync=data["live_sync"].encode("latin-1"),
                )
            )
    return vectors


if not CONFORMANCE_DIR.is_dir():
    if os.environ.get("FERROCORN_CONFORMANCE_DIR"):
        raise pytest.UsageError("FERROCORN_CONFORMANCE_DIR=%s is not a directory" % CONFORMANCE_DIR)
    pytest.skip("conformance corpus not found at %s" % CONFORMANCE_DIR, allow_module_level=True)

VECTORS = load_vectors()


# ---------------------------------------------------------------------------
# Servers: one per distinct config, started together the first time any is needed.


class ServerPool:
    """Servers keyed by config (a tuple of setting pairs); each started at most once."""

    def __init__(self, base_dir: Path, wanted_configs):
        self.base_dir = base_dir
        self.app_dir = base_dir / "app"
        self.app_dir.mkdir()
        (self.app_dir / "echoapp.py").write_text(ECHO_APP)
        self.wanted = list(dict.fromkeys(wanted_configs))
        self.servers = {}
        self.errors = {}

    def _start(self, config: tuple) -> Server:
        conf_dir = self.base_dir / ("cfg%d" % (len(self.servers) + len(self.errors)))
        conf_dir.mkdir()
        conf = conf_dir / "conf.py"
        lines = ["%s = %r\n" % (name, value) for name, value in config]
        if not is_gunicorn():
            # Gunicorn never requires Host and a third of the corpus' HTTP/1.1 vectors have
            # none; ferrocorn's Host rule is tested in test_hardening.py.
            lines.append("permit_missing_host = True\n")
        conf.write_text("".join(lines))
        runtime_dir = conf_dir / "run"
        runtime_dir.mkdir()
        # Port 0; the address is read from the server's "Listening at:" line.
        args = [
            "-c", conf, "-b", "127.0.0.1:0", "-k", "sync", "-w", "1",
            "--timeout", "30", "--log-level", "debug", "echoapp:app",
        ]
        return Server(
            args, conf_dir, cwd=self.app_dir, env=base_env(runtime_dir), address=FROM_LOG,
        )

    def get(self, config: tuple) -> Server:
        if config not in self.servers and config not in self.errors:
            # Start every wanted server at once so their boots overlap, then wait for each.
            pending = [c for c in self.wanted if c not in self.servers and c not in self.errors]
            if config not in pending:
                pending.append(config)
            booting = []
            for pending_config in pending:
                server = self._start(pending_config)
                self.servers[pending_config] = server
                booting.append((pending_config, server))
            for pending_config, server in booting:
                try:
                    server.wait_ready()
                except AssertionError as exc:
                    self.errors[pending_config] = str(exc)
        if config in self.errors:
            pytest.fail("server for config %r did not start: %s" % (config, self.errors[config]))
        return self.servers[config]

    def stop(self):
        for server in self.servers.values():
            server.stop()


@pytest.fixture(scope="module")
def pool(request, tmp_path_factory):
    selected = [
        item.callspec.params["vector"].config
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
        and "vector" in item.callspec.params
    ]
    servers = ServerPool(tmp_path_factory.mktemp("conformance"), selected)
    yield servers
    servers.stop()


# ---------------------------------------------------------------------------
# The exchange and response parsing.


def exchange(address, wire: bytes):
    """Send `wire`, shut the write side, read to EOF; returns (response bytes, client port)."""
    with socket.create_connection(address, timeout=EXCHANGE_TIMEOUT) as sock:
        client_port = sock.getsockname()[1]
        try:
            sock.sendall(wire)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            # The server may answer and close before taking every byte of a bad
            # request; what it already sent is still readable (or the reset is the answer).
            pass
        return read_until_eof(sock, EXCHANGE_TIMEOUT), client_port


def split_responses(raw: bytes) -> list:
    """Split a byte stream into (status line, [(name, value)], body) by Content-Length."""
    responses, pos = [], 0
    while pos < len(raw):
        end = raw.find(b"\r\n\r\n", pos)
        assert end >= 0, "response head not terminated: %r" % raw[pos:pos + 500]
        lines = raw[pos:end].decode("latin-1").split("\r\n")
        headers = [tuple(p.strip() if i else p for i, p in enumerate(line.split(":", 1)))
                   for line in lines[1:]]
        lengths = [v for k, v in headers if k.lower() == "content-length"]
        assert len(lengths) == 1, "response without one Content-Length: %r" % lines
        body_start = end + 4
        body_end = body_start + int(lengths[0])
        assert body_end <= len(raw), "response body truncated: %r" % raw[pos:]
        responses.append((lines[0], headers, raw[body_start:body_end]))
        pos = body_end
    return responses


def without_date(raw: bytes) -> bytes:
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"date:")]
    return b"\r\n".join(lines) + sep + body


def expected_server_header() -> str:
    return "gunicorn" if is_gunicorn() else "ferrocorn"


def server_software_matches(value: str) -> bool:
    if is_gunicorn():
        return value == "gunicorn/27.0.1"
    return re.fullmatch(r"ferrocorn/\d+\.\d+\.\d+\S*", value) is not None


# ---------------------------------------------------------------------------
# The tests.


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_vector(vector, pool):
    server = pool.get(vector.config)
    log_mark = len(server.stderr_text())
    raw, client_port = exchange(server.address, vector.wire)
    try:
        if vector.kind == "invalid":
            check_invalid(vector, raw)
        else:
            check_valid(vector, raw, server.port, client_port)
    except AssertionError as exc:
        # The server's own account of this exchange is what explains most differences;
        # give its log a moment to reach the file. Only on the failure path, and for
        # diagnostics: there is no particular line to wait for, and nothing is asserted.
        time.sleep(0.2)
        raise AssertionError(
            "%s\n---- server log during this exchange ----\n%s"
            % (exc, server.stderr_text()[log_mark:][-4000:])
        ) from None


def check_invalid(vector, raw: bytes):
    if not vector.live_sync:
        assert raw == b"", "gunicorn closed without a response; got %r" % raw
        return
    assert raw.split(b"\r\n", 1)[0] == vector.live_sync.split(b"\r\n", 1)[0]
    assert without_date(raw) == without_date(vector.live_sync)


def check_valid(vector, raw: bytes, server_port: int, client_port: int):
    recorded = split_responses(vector.live_sync)
    got = split_responses(raw)
    # Sync worker: only the first request of the connection is answered (see the
    # module docstring for why the recording holds more).
    assert [r[0] for r in got] == [recorded[0][0]], "status line(s) differ"
    _, headers, body = got[0]
    _, rec_headers, rec_body = recorded[0]

    assert [k for k, _ in headers] == [k for k, _ in rec_headers], "response header names/order"
    values = dict(headers)
    assert values["Server"] == expected_server_header()
    assert DATE_RE.fullmatch(values["Date"]), values["Date"]
    assert values["Connection"] == "close", "the sync worker always closes"
    assert values["Content-Type"] == dict(rec_headers)["Content-Type"]

    environ = json.loads(body.decode("utf-8"))
    expected = json.loads(rec_body.decode("utf-8"))
    # Run-dependent values, each checked against this run before the comparison.
    assert environ.pop("SERVER_PORT", None) == str(server_port)
    expected.pop("SERVER_PORT")
    if expected["REMOTE_ADDR"] == "127.0.0.1":
        # No PROXY header: the client port is this run's socket.
        assert environ.pop("REMOTE_PORT", None) == str(client_port)
        expected.pop("REMOTE_PORT")
    software = environ.pop("SERVER_SOFTWARE", None)
    assert software is not None and server_software_matches(software), software
    expected.pop("SERVER_SOFTWARE")
    # Recorded by a threaded worker; a sync worker reports False.
    expected["wsgi.multithread"] = "False"
    assert environ == expected
