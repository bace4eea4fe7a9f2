"""Real ASGI frameworks on the real server, `-k asgi`: Starlette, FastAPI, async Django
and Quart, plus the uvicorn worker names (which must run the same worker without uvicorn
installed).

Each framework shares one server across its tests (a module-scoped fixture; the apps keep
no per-test state except files, named per test, under the server's own data directory).
Lifespan shutdown needs a server of its own, which the test stops."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

from conftest import (
    FROM_LOG,
    RawResponse,
    Server,
    base_env,
    http_get,
    is_gunicorn,
    read_until_eof,
    server_command,
    wait_until,
)

pytestmark = pytest.mark.timeout(90)

WS_TIMEOUT = 10.0


# ---------------------------------------------------------------------------
# Helpers.


@contextlib.contextmanager
def framework_server(tmp_path_factory, name, *args, env=None, ready_path="/"):
    """One `-w 1` server on a port-0 loopback bind, ready, with `.data` (its $FW_DATA_DIR:
    files it serves, gates a test opens, markers the app writes); stopped on exit."""
    tmp = tmp_path_factory.mktemp(name)
    data = tmp / "data"
    data.mkdir()
    runtime = tmp / "run"
    runtime.mkdir()
    extra = {"FW_DATA_DIR": str(data)}
    extra.update(env or {})
    server = Server(["-b", "127.0.0.1:0", "-w", "1"] + [str(a) for a in args], tmp,
                    env=base_env(runtime, extra), address=FROM_LOG)
    server.data = data
    try:
        server.wait_ready(path=ready_path)
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _shared_server_logs_on_failure(request):
    """A shared server outlives the test, so `serve`'s failure dump does not cover it."""
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for value in request.node.funcargs.values():
            if isinstance(value, Server):
                print("---- server %r stderr (tail) ----" % (value.argv,))
                print(value.stderr_text()[-8000:])


def unique(prefix: str) -> str:
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def ws_url(server, path: str) -> str:
    return "ws://127.0.0.1:%d%s" % (server.port, path)


def worker_pid(server) -> int:
    pids = server.worker_pids()
    assert pids, "no worker booted:\n" + server.stderr_text()[-4000:]
    return pids[-1]


def get_streaming_with_gate(server, path: str, first: bytes, gate: Path, timeout: float = 15.0):
    """GET `path` on a raw socket; once `first` has arrived (and nothing of what follows,
    which the app holds back until `gate` exists), open the gate and read to EOF.
    Returns (what arrived before the gate opened, the parsed whole response)."""
    request = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path).encode()
    with socket.create_connection(server.address, timeout=timeout) as sock:
        sock.sendall(request)
        before = b""
        deadline = time.monotonic() + timeout
        while first not in before:
            assert time.monotonic() < deadline, "first chunk never arrived: %r" % before
            chunk = sock.recv(65536)
            assert chunk, "connection closed before the first chunk: %r" % before
            before += chunk
        gate.write_text("open")
        rest = read_until_eof(sock, timeout)
    return before, RawResponse(before + rest)


def assert_ws_closed(ws, code: int, reason: str = None):
    """The next recv() sees the server's close frame with `code` (and `reason`)."""
    with pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=WS_TIMEOUT)
    assert info.value.rcvd is not None, "no close frame from the server: %r" % info.value
    assert info.value.rcvd.code == code
    if reason is not None:
        assert info.value.rcvd.reason == reason


# ---------------------------------------------------------------------------
# Starlette


@pytest.fixture(scope="module")
def starlette_server(tmp_path_factory):
    with framework_server(tmp_path_factory, "starlette", "-k", "asgi", "--asgi-lifespan", "on",
                          "asgi_frameworks.starlette_app:app") as server:
        yield server


def test_starlette_routes_path_params_and_json(starlette_server):
    url = starlette_server.url
    index = requests.get(url + "/", timeout=10)
    assert index.status_code == 200
    assert index.text == "starlette index"
    assert index.headers["content-type"].startswith("text/plain")

    item = requests.get(url + "/users/ada%20l/items/42?q=caf%C3%A9", timeout=10)
    assert item.status_code == 200
    assert item.headers["content-type"] == "application/json"
    assert item.json() == {"user": "ada l", "item_id": 42, "q": "café",
                           "path": "/users/ada l/items/42"}
    # The int convertor does not match: no route.
    assert requests.get(url + "/users/ada/items/x", timeout=10).status_code == 404
    # Starlette answers a wrong method itself.
    assert requests.post(url + "/users/ada/items/1", timeout=10).status_code == 405


def test_starlette_streaming_response_arrives_chunk_by_chunk(starlette_server):
    gate = unique("stream") + ".gate"
    before, resp = get_streaming_with_gate(
        starlette_server, "/stream?gate=" + gate, b"first chunk;", starlette_server.data / gate)
    # The first chunk was on the wire while the app was still waiting for the gate.
    assert b"chunk 0;" not in before
    assert resp.status == 200
    assert resp.header("transfer-encoding", "").lower() == "chunked"
    assert resp.header("content-length") is None
    assert resp.body == b"first chunk;chunk 0;chunk 1;chunk 2;chunk 3;chunk 4;"
    assert resp.chunk_sizes[0] == len(b"first chunk;")
    assert len(resp.chunk_sizes) >= 2


def test_starlette_file_response(starlette_server):
    payload = os.urandom(700_000)
    name = unique("file") + ".bin"
    (starlette_server.data / name).write_bytes(payload)
    url = starlette_server.url + "/files/" + name

    resp = requests.get(url, timeout=10)
    assert resp.status_code == 200
    assert resp.content == payload
    assert resp.headers["content-length"] == str(len(payload))
    assert resp.headers["content-type"] == "application/octet-stream"
    assert resp.headers["content-disposition"] == 'attachment; filename="payload.bin"'
    assert resp.headers["etag"] and resp.headers["last-modified"]

    ranged = requests.get(url, headers={"Range": "bytes=1000-1999"}, timeout=10)
    assert ranged.status_code == 206
    assert ranged.headers["content-range"] == "bytes 1000-1999/%d" % len(payload)
    assert ranged.content == payload[1000:2000]

    head = requests.head(url, timeout=10)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(payload))
    assert head.content == b""

    missing = requests.get(starlette_server.url + "/files/" + unique("none"), timeout=10)
    assert missing.status_code == 500  # Starlette raises for a file that is not there
    assert requests.get(starlette_server.url + "/", timeout=10).status_code == 200


def test_starlette_post_body(starlette_server):
    url = starlette_server.url + "/upload"
    payload = os.urandom(2 * 1024 * 1024 + 17)
    resp = requests.post(url, data=payload, timeout=20,
                         headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 200
    assert resp.json() == {"length": len(payload),
                           "sha256": hashlib.sha256(payload).hexdigest(),
                           "content_type": "application/octet-stream"}

    # A chunked request body (requests sends a generator that way).
    pieces = [os.urandom(n) for n in (1, 5000, 70000, 3)]
    chunked = requests.post(url, data=iter(pieces), timeout=20)
    whole = b"".join(pieces)
    assert chunked.json()["length"] == len(whole)
    assert chunked.json()["sha256"] == hashlib.sha256(whole).hexdigest()

    empty = requests.post(url, data=b"", timeout=10)
    assert empty.json()["length"] == 0


def test_starlette_lifespan_state(starlette_server):
    resp = requests.get(starlette_server.url + "/state", timeout=10)
    assert resp.status_code == 200
    body = resp.json()
    # app.state set by the lifespan context manager, in the worker that serves.
    assert body["boot_token"] == "booted-in-%d" % body["pid"]
    assert body["pid"] == worker_pid(starlette_server)
    # The mapping the lifespan yielded, handed to each request through scope["state"].
    assert body["scope_state"] == "lifespan-state-ok"


def test_starlette_websocket_echo(starlette_server):
    with ws_connect(ws_url(starlette_server, "/ws/alice"), open_timeout=WS_TIMEOUT,
                    close_timeout=5) as ws:
        assert ws.recv(timeout=WS_TIMEOUT) == "hello alice"
        ws.send("ping")
        assert ws.recv(timeout=WS_TIMEOUT) == "echo:ping"
        ws.send(b"\x00\xffbinary")
        assert ws.recv(timeout=WS_TIMEOUT) == b"echo:\x00\xffbinary"
        big = "x" * 300_000
        ws.send(big)
        assert ws.recv(timeout=WS_TIMEOUT) == "echo:" + big
        ws.send("\u00e9t\u00e9 \U0001f600")
        assert ws.recv(timeout=WS_TIMEOUT) == "echo:\u00e9t\u00e9 \U0001f600"
        # The app closes with its own code and reason.
        ws.send("close")
        assert_ws_closed(ws, 4001, "asked to close")

    # The client closes; the server goes on serving.
    with ws_connect(ws_url(starlette_server, "/ws/bob"), open_timeout=WS_TIMEOUT) as ws:
        assert ws.recv(timeout=WS_TIMEOUT) == "hello bob"
    assert requests.get(starlette_server.url + "/", timeout=10).status_code == 200


def test_starlette_lifespan_shutdown_runs_on_sigterm(serve, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    server = serve("-w", "1", "-k", "asgi", "--asgi-lifespan", "on",
                   "asgi_frameworks.starlette_app:app", env={"FW_DATA_DIR": str(data)})
    pid = requests.get(server.url + "/state", timeout=10).json()["pid"]
    assert not (data / "starlette-shutdown").exists()
    server.send_signal(signal.SIGTERM)
    assert server.wait_exit(timeout=20) == 0
    assert (data / "starlette-shutdown").read_text() == "shutdown-in-%d" % pid


# ---------------------------------------------------------------------------
# FastAPI


@pytest.fixture(scope="module")
def fastapi_server(tmp_path_factory):
    with framework_server(tmp_path_factory, "fastapi", "-k", "asgi", "--asgi-lifespan", "on",
                          "asgi_frameworks.fastapi_app:app") as server:
        yield server


def test_fastapi_pydantic_body_validation(fastapi_server):
    url = fastapi_server.url + "/items"
    good = requests.post(url, json={"name": "widget", "price": "2.5", "tags": ["a"]}, timeout=10)
    assert good.status_code == 200
    assert good.json() == {"name": "widget", "price": 2.5, "tags": ["a"], "total": 3.75}

    bad = requests.post(url, json={"name": "widget", "price": "cheap"}, timeout=10)
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/json"
    detail = bad.json()["detail"]
    assert len(detail) == 1
    assert detail[0]["loc"] == ["body", "price"]
    assert detail[0]["type"] == "float_parsing"
    assert detail[0]["input"] == "cheap"

    missing = requests.post(url, json={"price": 1}, timeout=10)
    assert missing.status_code == 422
    assert [(d["loc"], d["type"]) for d in missing.json()["detail"]] == [
        (["body", "name"], "missing")]

    garbage = requests.post(url, data=b'{"name": ', timeout=10,
                            headers={"Content-Type": "application/json"})
    assert garbage.status_code == 422
    assert garbage.json()["detail"][0]["type"] == "json_invalid"


def test_fastapi_dependencies(fastapi_server):
    url = fastapi_server.url + "/page"
    refused = requests.get(url, timeout=10)
    assert refused.status_code == 401
    assert refused.json() == {"detail": "bad token"}

    ok = requests.get(url + "?offset=20&limit=5", headers={"X-Token": "let-me-in"}, timeout=10)
    assert ok.status_code == 200
    assert ok.json() == {"paging": {"offset": 20, "limit": 5}, "token": "let-me-in"}
    defaults = requests.get(url, headers={"X-Token": "let-me-in"}, timeout=10)
    assert defaults.json()["paging"] == {"offset": 0, "limit": 10}

    invalid = requests.get(url + "?limit=lots", headers={"X-Token": "let-me-in"}, timeout=10)
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["query", "limit"]


def test_fastapi_exception_handlers(fastapi_server):
    teapot = requests.get(fastapi_server.url + "/teapot/earl-grey", timeout=10)
    assert teapot.status_code == 418
    assert teapot.json() == {"error": "teapot", "brew": "earl-grey"}

    # An unhandled exception: Starlette's ServerErrorMiddleware answers 500, then re-raises
    # it to the server, which goes on serving. (Gunicorn logs the exception only at debug
    # level, as "Exception after response complete", since the response was sent whole.)
    boom = requests.get(fastapi_server.url + "/boom", timeout=10)
    assert boom.status_code == 500
    assert boom.text == "Internal Server Error"
    assert requests.get(fastapi_server.url + "/", timeout=10).json() == {"framework": "fastapi"}


def test_fastapi_streaming_response(fastapi_server):
    with requests.get(fastapi_server.url + "/stream?n=6", stream=True, timeout=10) as resp:
        assert resp.status_code == 200
        assert resp.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in resp.headers
        assert resp.headers["content-type"].startswith("text/plain")
        lines = list(resp.iter_lines(decode_unicode=True))
    assert lines == ["line %d" % i for i in range(6)]


def test_fastapi_background_tasks_run_after_the_response(fastapi_server):
    job = unique("job")
    data = fastapi_server.data
    resp = requests.post(fastapi_server.url + "/jobs/" + job, timeout=10)
    # The whole response arrived although the background task is still waiting for its
    # gate: the server sent it before the app's call returned.
    assert resp.status_code == 200
    assert resp.json() == {"accepted": job}
    assert not (data / ("job-%s.done" % job)).exists()
    # The first (sync) task ran; the worker is not blocked by the pending one.
    wait_until(lambda: (data / ("job-%s.sync" % job)).exists(), timeout=10, what="sync task")
    assert requests.get(fastapi_server.url + "/", timeout=10).status_code == 200
    assert not (data / ("job-%s.done" % job)).exists()

    (data / ("job-%s.gate" % job)).write_text("open")
    done = data / ("job-%s.done" % job)
    wait_until(done.exists, timeout=10, what="background task side effect")
    assert done.read_text() == "done %s gate=True pid=%d" % (job, worker_pid(fastapi_server))


def test_fastapi_websocket(fastapi_server):
    room = unique("room")
    with ws_connect(ws_url(fastapi_server, "/ws/%s?limit=3" % room),
                    open_timeout=WS_TIMEOUT, close_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=WS_TIMEOUT)) == {"room": room, "limit": 3}
        for message in ({"n": 1}, ["a", "b"], {"text": "\u2603" * 1000}):
            ws.send(json.dumps(message))
            assert json.loads(ws.recv(timeout=WS_TIMEOUT)) == {"room": room, "echo": message}
    # The client's close (1000) reached the app as websocket.disconnect with its code.
    closed = fastapi_server.data / ("ws-%s.closed" % room)
    wait_until(closed.exists, timeout=10, what="the app to see the disconnect")
    assert closed.read_text() == "1000"

    # A bad query parameter fails the dependency: FastAPI closes before accepting, which
    # the server turns into a 403 answer to the handshake (ASGI spec).
    with pytest.raises(InvalidStatus) as info:
        with ws_connect(ws_url(fastapi_server, "/ws/x?limit=no"), open_timeout=WS_TIMEOUT):
            pass
    assert info.value.response.status_code == 403


# ---------------------------------------------------------------------------
# async Django

DJANGO_ENV = {"DJANGO_SETTINGS_MODULE": "asgi_frameworks.djasync.settings"}


@pytest.fixture(scope="module")
def django_server(tmp_path_factory):
    # The default lifespan mode ("auto"): Django's handler raises on the lifespan scope
    # ("Django can only handle ASGI/HTTP connections, not lifespan."), and the worker
    # must carry on without lifespan.
    with framework_server(tmp_path_factory, "django", "-k", "asgi",
                          "asgi_frameworks.djasync.asgi:application", env=DJANGO_ENV) as server:
        yield server


def test_django_serves_despite_refusing_lifespan(django_server):
    resp = requests.get(django_server.url + "/", timeout=10)
    assert resp.status_code == 200
    assert resp.text == "django asgi index"
    # Still the one worker that booted: refusing lifespan did not kill it.
    assert len(django_server.worker_pids()) == 1
    assert django_server.alive()


def test_django_with_lifespan_on_fails_to_boot(run):
    # Forced on, Django's refusal of the lifespan scope is a boot failure: the master exits.
    result = run("-b", "127.0.0.1:0", "-w", "1", "-k", "asgi", "--asgi-lifespan", "on",
                 "asgi_frameworks.djasync.asgi:application", env=DJANGO_ENV)
    assert result.returncode == 3, result.stderr
    assert "not lifespan" in result.stderr
    assert "Reason: Worker failed to boot." in result.stderr


def test_django_async_view(django_server):
    resp = requests.get(django_server.url + "/async/21/?q=caf%C3%A9", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {"n": 21, "double": 42, "q": "café", "running_loop": True,
                           "scheme": "http", "path": "/async/21/", "method": "GET"}
    # CommonMiddleware's APPEND_SLASH redirect.
    redirect = requests.get(django_server.url + "/async/21", timeout=10, allow_redirects=False)
    assert redirect.status_code == 301
    assert redirect.headers["location"] == "/async/21/"


def test_django_streaming_http_response_async_iterator(django_server):
    resp = http_get(django_server.address, "/stream/?n=7", headers={"Connection": "close"})
    assert resp.status == 200
    assert resp.header("content-type") == "text/plain"
    assert resp.header("content-length") is None
    assert resp.header("transfer-encoding", "").lower() == "chunked"
    assert resp.body == b"".join(b"part %d\n" % i for i in range(7))

    with requests.get(django_server.url + "/stream/?n=3", stream=True, timeout=10) as streamed:
        assert list(streamed.iter_lines(decode_unicode=True)) == ["part 0", "part 1", "part 2"]


def test_django_sync_view_runs_in_a_thread(django_server):
    resp = requests.get(django_server.url + "/sync/", headers={"User-Agent": "fw-test/1"},
                        timeout=10)
    assert resp.status_code == 200
    # sync_to_async: a worker thread, with no event loop of its own.
    assert resp.json() == {"in_event_loop": False, "main_thread": False, "agent": "fw-test/1"}


def test_django_404_page(django_server):
    resp = requests.get(django_server.url + "/no/such/page/", timeout=10)
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>Not Found</h1>" in resp.text
    assert "The requested resource was not found on this server." in resp.text
    # And a Host that ALLOWED_HOSTS refuses is a 400 from Django, not from the server.
    bad_host = requests.get(django_server.url + "/", headers={"Host": "evil.example"},
                            timeout=10)
    assert bad_host.status_code == 400


def test_django_post_body(django_server):
    url = django_server.url + "/echo/"
    payload = os.urandom(1024 * 1024 + 3)
    resp = requests.post(url, data=payload, timeout=20,
                         headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 200
    assert resp.json() == {"length": len(payload), "sha256": hashlib.sha256(payload).hexdigest(),
                           "content_type": "application/octet-stream", "form": None}

    form = requests.post(url, data={"name": "Ada", "tags": ["x", "y z"]}, timeout=10)
    assert form.json()["form"] == {"name": ["Ada"], "tags": ["x", "y z"]}

    pieces = [b"a" * 10, b"b" * 40000, b"c"]
    chunked = requests.post(url, data=iter(pieces), timeout=20)
    assert chunked.json()["length"] == 40011
    assert chunked.json()["sha256"] == hashlib.sha256(b"".join(pieces)).hexdigest()

    assert requests.get(url, timeout=10).status_code == 405


# ---------------------------------------------------------------------------
# Quart


@pytest.fixture(scope="module")
def quart_server(tmp_path_factory):
    with framework_server(tmp_path_factory, "quart", "-k", "asgi", "--asgi-lifespan", "on",
                          "asgi_frameworks.quart_app:app") as server:
        yield server


def test_quart_routes(quart_server):
    assert requests.get(quart_server.url + "/", timeout=10).text == "quart index"
    hello = requests.get(quart_server.url + "/hello/bob?greeting=yo", timeout=10)
    assert hello.status_code == 200
    assert hello.text == "hello bob (yo)"
    assert hello.headers["content-type"].startswith("text/html")
    assert requests.get(quart_server.url + "/missing", timeout=10).status_code == 404
    assert requests.get(quart_server.url + "/json", timeout=10).status_code == 405


def test_quart_json(quart_server):
    body = {"b": [1, 2, {"c": None}], "a": "\u00e9"}
    resp = requests.post(quart_server.url + "/json", json=body, timeout=10)
    assert resp.status_code == 201
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {"received": body, "keys": ["a", "b"]}


def test_quart_websocket_echo(quart_server):
    with ws_connect(ws_url(quart_server, "/ws"), open_timeout=WS_TIMEOUT, close_timeout=5) as ws:
        assert ws.recv(timeout=WS_TIMEOUT) == "ready"
        ws.send("hello")
        assert ws.recv(timeout=WS_TIMEOUT) == "echo:hello"
        ws.send(b"\x01\x02\x03")
        assert ws.recv(timeout=WS_TIMEOUT) == b"\x03\x02\x01"
        ws.send("y" * 100_000)
        assert ws.recv(timeout=WS_TIMEOUT) == "echo:" + "y" * 100_000
        ws.send("bye")
        assert_ws_closed(ws, 1000)
    assert requests.get(quart_server.url + "/", timeout=10).status_code == 200


def test_quart_before_and_after_serving(serve, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    server = serve("-w", "1", "-k", "asgi", "--asgi-lifespan", "on",
                   "asgi_frameworks.quart_app:app", env={"FW_DATA_DIR": str(data)})
    pid = worker_pid(server)
    boot = requests.get(server.url + "/boot", timeout=10).json()
    assert boot == {"boot": "before_serving-in-%d" % pid, "pid": pid}
    assert (data / "quart-startup").read_text() == "before_serving-in-%d" % pid
    assert not (data / "quart-shutdown").exists()

    server.send_signal(signal.SIGTERM)
    assert server.wait_exit(timeout=20) == 0
    assert (data / "quart-shutdown").read_text() == "after_serving-in-%d" % pid


# ---------------------------------------------------------------------------
# The uvicorn worker names: ferrocorn runs its own ASGI worker for each, uvicorn or not.

ALIASES = [
    "uvicorn.workers.UvicornWorker",
    "uvicorn.workers.UvicornH11Worker",
    "uvicorn_worker.UvicornWorker",
    "uvicorn_worker.UvicornH11Worker",
]


@functools.lru_cache(maxsize=None)
def _reference_imports(module: str) -> bool:
    """Whether the reference gunicorn's interpreter can import `module` (the uvicorn
    packages are not among the test dependencies)."""
    try:
        cmd = server_command()
    except pytest.UsageError:
        return False
    exe = shutil.which(cmd[0]) or cmd[0]
    python = exe
    if not Path(exe).name.startswith("python"):
        try:
            first = Path(exe).read_bytes().split(b"\n", 1)[0].decode()
        except OSError:
            return False
        if not first.startswith("#!"):
            return False
        python = first[2:].strip().split()[0]
    try:
        probe = subprocess.run([python, "-c", "import " + module], capture_output=True,
                               timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _alias_param(name: str):
    module = name.rsplit(".", 1)[0]
    marks = []
    if is_gunicorn() and not _reference_imports(module):
        marks.append(pytest.mark.ferrocorn_only)
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("worker", [_alias_param(name) for name in ALIASES])
def test_uvicorn_worker_names_serve_starlette(serve, tmp_path, worker):
    server = serve("-w", "1", "-k", worker, "asgi_frameworks.starlette_app:app",
                   env={"FW_DATA_DIR": str(tmp_path)})
    server.wait_for_log(r"\[INFO\] Using worker: %s$" % worker.replace(".", r"\."))
    assert requests.get(server.url + "/", timeout=10).text == "starlette index"
    # Lifespan ran (the uvicorn workers default to lifespan "auto").
    state = requests.get(server.url + "/state", timeout=10).json()
    assert state["scope_state"] == "lifespan-state-ok"
    assert state["boot_token"] == "booted-in-%d" % state["pid"]
    with ws_connect(ws_url(server, "/ws/carol"), open_timeout=WS_TIMEOUT) as ws:
        assert ws.recv(timeout=WS_TIMEOUT) == "hello carol"
        ws.send("hi")
        assert ws.recv(timeout=WS_TIMEOUT) == "echo:hi"


@pytest.mark.parametrize("worker", [_alias_param("uvicorn_worker.UvicornWorker")])
def test_uvicorn_worker_name_serves_django(serve, worker):
    # Django refuses the lifespan scope; under this name the worker goes on serving.
    server = serve("-w", "1", "-k", worker, "asgi_frameworks.djasync.asgi:application",
                   env=DJANGO_ENV)
    server.wait_for_log(r"\[INFO\] Using worker: uvicorn_worker\.UvicornWorker$")
    resp = requests.get(server.url + "/async/5/", timeout=10)
    assert resp.status_code == 200
    assert resp.json()["double"] == 10
