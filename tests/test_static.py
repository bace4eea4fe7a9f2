"""`static_mount`: a directory served at a URL prefix from Rust, on every worker type
(sync, gthread with 4 threads, asgi): the response (type, length, validators, cache
headers), HEAD, conditional requests, ranges, precompressed siblings, MIME types, large
files by sendfile and over TLS, path safety (each traversal form refused without leaking a
byte), 405/404, keep-alive across static and app requests, the access log line, and that
hooks do not run for static requests. Not a Gunicorn feature.

One server per worker type serves the module's directory (module-scoped); the TLS and
start-up error cases start their own.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
import socket
import time
from email.utils import formatdate
from pathlib import Path

import pytest

from conftest import FROM_LOG, RawResponse, Server, base_env, http_get, wait_until
from metrics_support import metrics_url, wait_scrape
from tls_support import make_pki, tls_connect, wait_tls_ready

pytestmark = [pytest.mark.ferrocorn_only, pytest.mark.timeout(120)]

WORKERS = {
    "sync": ["-k", "sync"],
    "gthread": ["-k", "gthread", "--threads", "4"],
    "asgi": ["-k", "asgi"],
}
APPS = {"sync": "static_app:app", "gthread": "static_app:app", "asgi": "static_app:asgi"}
SECRET = b"TOPSECRET-do-not-serve"
TEXT = b"hello, static world\n" * 20  # 400 bytes
BIG_SIZE = 4 * 1024 * 1024

HOOK_CONF = """
import os

def pre_request(worker, req):
    with open(os.environ["STATIC_HOOK_LOG"], "a") as f:
        f.write(req.path + "\\n")
"""


# ---------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A served directory `files/` and, beside it, a secret it must never leak."""
    base = tmp_path_factory.mktemp("static")
    (base / "secret").write_bytes(SECRET)
    files = base / "files"
    (files / "sub").mkdir(parents=True)
    (files / "a.txt").write_bytes(TEXT)
    (files / "a.txt.gz").write_bytes(gzip.compress(TEXT))
    # Not real brotli: the server chooses by name and never decodes.
    (files / "a.txt.br").write_bytes(b"BROTLI-BYTES")
    for name, data in [("style.css", b"body{}"), ("app.js", b"1;"), ("data.json", b"{}"),
                       ("pic.png", b"\x89PNG"), ("page.html", b"<p>"), ("blob.unknownext", b"x")]:
        (files / name).write_bytes(data)
    (files / "big.bin").write_bytes(os.urandom(BIG_SIZE))
    (files / ".env").write_bytes(SECRET)
    os.symlink("../secret", files / "escape")
    os.symlink(base / "secret", files / "abs-escape")
    os.symlink("a.txt", files / "alias.txt")
    os.symlink(files / "a.txt", files / "sub" / "abs-alias.txt")
    (base / "conf.py").write_text(HOOK_CONF)
    return base


def start(tree: Path, tmp: Path, worker: str, *extra: str, env: dict | None = None) -> Server:
    runtime = tmp / ("run-" + worker)
    runtime.mkdir(exist_ok=True)
    args = ["-b", "127.0.0.1:0", *WORKERS[worker],
            "--static-mount", "/static=%s" % (tree / "files"), *extra, APPS[worker]]
    server = Server(args, tmp, env=base_env(runtime, env), address=FROM_LOG)
    server.wait_ready()
    return server


@pytest.fixture(scope="module", params=list(WORKERS))
def site(request, tree, tmp_path_factory):
    """One server per worker type, with an access log and a pre_request hook that records
    every path it sees."""
    worker = request.param
    tmp = tmp_path_factory.mktemp("srv-" + worker)
    hook_log = tmp / "hook.log"
    access_log = tmp / "access.log"
    server = start(tree, tmp, worker, "-c", str(tree / "conf.py"),
                   "--access-logfile", str(access_log), "--static-max-age", "600",
                   env={"STATIC_HOOK_LOG": str(hook_log)})
    server.worker = worker
    server.hook_log = hook_log
    server.access_log = access_log
    yield server
    server.stop()


def get(site, path, headers=None, method="GET") -> RawResponse:
    """One request on its own connection, which the server closes after the response."""
    headers = {"Connection": "close", **(headers or {})}
    return http_get(site.address, path, headers=headers, method=method)


def read_response(sock: socket.socket, buf: bytearray, head_only: bool = False) -> RawResponse:
    """One response from a kept-alive connection (Content-Length framing)."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        assert data, "connection closed before a response head: %r" % bytes(buf)
        buf += data
    head, _, _ = bytes(buf).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and not head_only:
            length = int(value)
    total = len(head) + 4 + length
    while len(buf) < total:
        data = sock.recv(65536)
        assert data, "connection closed inside a body"
        buf += data
    raw = bytes(buf[:total])
    del buf[:total]
    return RawResponse(raw)


# ---------------------------------------------------------------------------
# What a file looks like


def test_get_a_file(site, tree):
    r = get(site, "/static/a.txt")
    assert r.status == 200
    assert r.body == TEXT
    assert r.header("Content-Type") == "text/plain; charset=utf-8"
    assert r.header("Content-Length") == str(len(TEXT))
    assert r.header("Cache-Control") == "public, max-age=600"
    assert r.header("Accept-Ranges") == "bytes"
    mtime = (tree / "files" / "a.txt").stat().st_mtime
    assert r.header("Last-Modified") == formatdate(int(mtime), usegmt=True)
    etag = r.header("ETag")
    assert etag.startswith('"') and etag.endswith('"')
    assert r.header("Content-Encoding") is None
    assert r.header("Server") == "ferrocorn" and r.header("Date")
    # The same tag for the same file.
    assert get(site, "/static/a.txt").header("ETag") == etag


def test_head_has_headers_and_no_body(site):
    r = get(site, "/static/a.txt", method="HEAD")
    assert r.status == 200
    assert r.body == b""
    assert r.header("Content-Length") == str(len(TEXT))
    assert r.header("ETag") == get(site, "/static/a.txt").header("ETag")


def test_if_none_match_gives_304(site):
    etag = get(site, "/static/a.txt").header("ETag")
    r = get(site, "/static/a.txt", headers={"If-None-Match": etag})
    assert r.status == 304
    assert r.body == b""
    assert r.header("ETag") == etag
    assert r.header("Cache-Control") == "public, max-age=600"
    # A tag that does not match wins over a date that would.
    r = get(site, "/static/a.txt", headers={
        "If-None-Match": '"stale"', "If-Modified-Since": formatdate(time.time() + 60, usegmt=True)})
    assert r.status == 200 and r.body == TEXT


def test_if_modified_since(site):
    lm = get(site, "/static/a.txt").header("Last-Modified")
    assert get(site, "/static/a.txt", headers={"If-Modified-Since": lm}).status == 304
    older = formatdate(time.time() - 10 * 86400, usegmt=True)
    r = get(site, "/static/a.txt", headers={"If-Modified-Since": older})
    assert r.status == 200 and r.body == TEXT


def test_ranges(site):
    r = get(site, "/static/a.txt", headers={"Range": "bytes=0-4"})
    assert r.status == 206
    assert r.body == TEXT[:5]
    assert r.header("Content-Range") == "bytes 0-4/%d" % len(TEXT)
    assert r.header("Content-Length") == "5"

    r = get(site, "/static/a.txt", headers={"Range": "bytes=-7"})
    assert r.status == 206 and r.body == TEXT[-7:]

    r = get(site, "/static/a.txt", headers={"Range": "bytes=390-"})
    assert r.status == 206 and r.body == TEXT[390:]
    assert r.header("Content-Range") == "bytes 390-%d/%d" % (len(TEXT) - 1, len(TEXT))

    r = get(site, "/static/a.txt", headers={"Range": "bytes=9999-"})
    assert r.status == 416
    assert r.header("Content-Range") == "bytes */%d" % len(TEXT)
    assert TEXT not in r.raw

    r = get(site, "/static/a.txt", headers={"Range": "bytes=0-1,5-6"})
    assert r.status == 200 and r.body == TEXT

    etag = get(site, "/static/a.txt").header("ETag")
    r = get(site, "/static/a.txt", headers={"Range": "bytes=0-1", "If-Range": etag})
    assert r.status == 206 and r.body == TEXT[:2]
    r = get(site, "/static/a.txt", headers={"Range": "bytes=0-1", "If-Range": '"old"'})
    assert r.status == 200 and r.body == TEXT


def test_precompressed_siblings(site, tree):
    files = tree / "files"
    identity = get(site, "/static/a.txt")

    r = get(site, "/static/a.txt", headers={"Accept-Encoding": "gzip, br"})
    assert r.header("Content-Encoding") == "br"
    assert r.body == (files / "a.txt.br").read_bytes()
    assert r.header("Vary") == "Accept-Encoding"
    assert r.header("Content-Type") == "text/plain; charset=utf-8"
    br_tag = r.header("ETag")

    r = get(site, "/static/a.txt", headers={"Accept-Encoding": "gzip"})
    assert r.header("Content-Encoding") == "gzip"
    assert gzip.decompress(r.body) == TEXT
    assert r.header("Vary") == "Accept-Encoding"
    gz_tag = r.header("ETag")
    assert len({identity.header("ETag"), br_tag, gz_tag}) == 3

    r = get(site, "/static/a.txt", headers={"Accept-Encoding": "br;q=0, gzip"})
    assert r.header("Content-Encoding") == "gzip"
    r = get(site, "/static/a.txt", headers={"Accept-Encoding": "br;q=0.5, gzip;q=0.8"})
    assert r.header("Content-Encoding") == "gzip"
    for refused in ("gzip;q=0, br;q=0", "identity", "deflate"):
        r = get(site, "/static/a.txt", headers={"Accept-Encoding": refused})
        assert r.header("Content-Encoding") is None, refused
        assert r.body == TEXT
        # Still a representation chosen by Accept-Encoding: a shared cache must not give
        # it to a client that asks for gzip.
        assert r.header("Vary") == "Accept-Encoding", refused
    assert get(site, "/static/a.txt").header("Vary") == "Accept-Encoding"
    assert get(site, "/static/style.css").header("Vary") is None
    # The .gz sibling itself, asked for by name, is just a file.
    r = get(site, "/static/a.txt.gz")
    assert r.header("Content-Encoding") is None
    assert r.header("Content-Type") == "application/gzip"
    # A revalidation of the gzip body with its own tag.
    r = get(site, "/static/a.txt", headers={"Accept-Encoding": "gzip", "If-None-Match": gz_tag})
    assert r.status == 304


@pytest.mark.parametrize("name,mime", [
    ("style.css", "text/css; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("data.json", "application/json; charset=utf-8"),
    ("pic.png", "image/png"),
    ("page.html", "text/html; charset=utf-8"),
    ("blob.unknownext", "application/octet-stream"),
])
def test_mime_types(site, name, mime):
    assert get(site, "/static/" + name).header("Content-Type") == mime


def test_large_file_is_identical(site, tree):
    r = get(site, "/static/big.bin")
    assert r.status == 200
    assert r.header("Content-Length") == str(BIG_SIZE)
    want = hashlib.sha256((tree / "files" / "big.bin").read_bytes()).hexdigest()
    assert hashlib.sha256(r.body).hexdigest() == want


# ---------------------------------------------------------------------------
# Path safety


@pytest.mark.parametrize("path,status", [
    ("/static/../secret", 400),
    ("/static/%2e%2e/secret", 400),
    ("/static/..%2fsecret", 400),
    ("/static/%2e%2e%2fsecret", 400),
    ("/static/sub/..%5c..%5csecret", 400),
    ("/static/a.txt%00.png", 400),
    ("/static/%252e%252e/secret", 404),
    ("/static//etc/passwd", 404),
    ("/static/escape", 404),
    ("/static/abs-escape", 404),
    ("/static/.env", 404),
])
def test_traversal_is_refused(site, path, status):
    r = get(site, path)
    assert r.status == status, r.raw[:300]
    assert SECRET not in r.raw
    assert b"root:" not in r.raw


def test_absolute_path_goes_to_the_app(site):
    r = get(site, "//etc/passwd")
    assert r.status == 200
    assert r.body == b"app://etc/passwd"


def test_symlinks_inside_the_mount_are_served(site):
    assert get(site, "/static/alias.txt").body == TEXT
    assert get(site, "/static/sub/abs-alias.txt").body == TEXT


def test_other_methods_get_405(site):
    r = http_get(site.address, "/static/a.txt", method="POST", body=b"x=1",
                 headers={"Connection": "close"})
    assert r.status == 405
    assert r.header("Allow") == "GET, HEAD"
    assert TEXT not in r.raw


def test_missing_file_and_directory_get_404(site):
    assert get(site, "/static/nope.txt").status == 404
    assert get(site, "/static/sub").status == 404
    assert get(site, "/static/sub/").status == 404
    assert get(site, "/static").status == 404
    # A file's name with a trailing slash names a directory that is not there.
    assert get(site, "/static/a.txt/").status == 404


def test_other_paths_reach_the_app(site):
    for path in ("/", "/staticfile", "/other/a.txt"):
        r = get(site, path)
        assert r.status == 200 and r.body == b"app:" + path.encode()


# ---------------------------------------------------------------------------
# The connection, the logs and the hooks


def test_keep_alive_across_static_and_app_requests(site):
    with socket.create_connection(site.address, timeout=10) as sock:
        buf = bytearray()
        requests = [("GET", "/static/a.txt"), ("GET", "/app"), ("HEAD", "/static/a.txt"),
                    ("GET", "/static/nope"), ("GET", "/static/a.txt")]
        if site.worker == "sync":
            requests = requests[:1]
        for method, path in requests:
            sock.sendall(("%s %s HTTP/1.1\r\nHost: x\r\n\r\n" % (method, path)).encode())
            r = read_response(sock, buf, head_only=method == "HEAD")
            if site.worker == "sync":
                assert r.header("Connection") == "close"
            if path == "/app":
                assert r.body == b"app:/app"
            elif path == "/static/nope":
                assert r.status == 404
            elif method == "GET":
                assert r.body == TEXT
        # A body sent with a static GET is skipped and the connection goes on.
        if site.worker != "sync":
            sock.sendall(b"GET /static/a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                         b"GET /app HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock, buf).body == TEXT
            assert read_response(sock, buf).body == b"app:/app"


def test_access_log_line(site):
    get(site, "/static/a.txt?v=1", headers={"User-Agent": "static-test"})
    line = '"GET /static/a.txt?v=1 HTTP/1.1" 200 %d "-" "static-test"' % len(TEXT)
    wait_until(lambda: line in site.access_log.read_text(), what="the access log line")
    get(site, "/static/nope", headers={"User-Agent": "static-test"})
    line = '"GET /static/nope HTTP/1.1" 404 10 "-" "static-test"'
    wait_until(lambda: line in site.access_log.read_text(), what="the 404's access log line")


def test_hooks_do_not_run_for_static_requests(site):
    get(site, "/static/a.txt")
    get(site, "/hooked")
    wait_until(lambda: site.hook_log.exists() and "/hooked" in site.hook_log.read_text(),
               what="the pre_request hook for the app path")
    seen = site.hook_log.read_text().splitlines()
    assert not [p for p in seen if p == "/static" or p.startswith("/static/")], seen


@pytest.mark.parametrize("worker", list(WORKERS))
def test_a_python_logger_gets_the_access_call(tree, tmp_path, worker):
    record = tmp_path / "record.jsonl"
    server = start(tree, tmp_path, worker, "--logger-class",
                   "logcfg_custom_logger.RecordingLogger", "--access-logfile", "-",
                   env={"LOGCFG_RECORD": str(record)})
    try:
        get(server, "/static/a.txt")

        def access_calls():
            if not record.exists():
                return []
            lines = [json.loads(line) for line in record.read_text().splitlines()]
            return [e for e in lines if e["call"] == "access" and e["path"] == "/static/a.txt"]

        wait_until(access_calls, what="the logger's access() call")
        call = access_calls()[0]
        assert call["status"].startswith("200")
        assert call["method"] == "GET"
        assert call["path_info"] == "/static/a.txt"
        assert call["is_timedelta"]
    finally:
        server.stop()


@pytest.mark.parametrize("worker", list(WORKERS))
def test_static_requests_are_counted_in_the_metrics(tree, tmp_path, worker):
    server = start(tree, tmp_path, worker, "--prometheus-bind", "127.0.0.1:0")
    try:
        url = metrics_url(server)
        # The readiness probe went to the app; what it counted is the starting point.
        before = wait_scrape(url, lambda s: True, what="a first scrape").requests()
        get(server, "/static/a.txt")
        get(server, "/static/a.txt", method="HEAD")
        get(server, "/static/nope")
        want = dict(before)
        want[("GET", "2xx")] = want.get(("GET", "2xx"), 0) + 1
        want[("HEAD", "2xx")] = want.get(("HEAD", "2xx"), 0) + 1
        want[("GET", "4xx")] = want.get(("GET", "4xx"), 0) + 1
        wait_scrape(url, lambda s: s.requests() == want, what="the static requests counted")
    finally:
        server.stop()


# ---------------------------------------------------------------------------
# TLS and start-up


@pytest.mark.parametrize("worker", list(WORKERS))
def test_large_file_over_tls(tree, tmp_path, worker):
    pki = make_pki(tmp_path / "pki")
    server = Server(["-b", "127.0.0.1:0", *WORKERS[worker], *pki.server_args(),
                     "--static-mount", "/static=%s" % (tree / "files"), APPS[worker]],
                    tmp_path, env=base_env(tmp_path), address=FROM_LOG)
    try:
        server.wait_ready(mode="port")
        ctx = pki.client_context()
        wait_tls_ready(server, ctx)
        with tls_connect(server.address, ctx) as s:
            s.sendall(b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            raw = bytearray()
            while True:
                data = s.recv(1 << 20)
                if not data:
                    break
                raw += data
        r = RawResponse(bytes(raw))
        assert r.status == 200
        want = hashlib.sha256((tree / "files" / "big.bin").read_bytes()).hexdigest()
        assert hashlib.sha256(r.body).hexdigest() == want
    finally:
        server.stop()


@pytest.mark.parametrize("mount,message", [
    ("/=DIR", "must not be / itself"),
    ("static=DIR", "must start with /"),
    ("/static=DIR/missing", "static directory"),
    ("/static=DIR/a.txt", "is not a directory"),
    ("/static", "is not URL_PREFIX=DIRECTORY"),
    ("/a/../b=DIR", "plain path segments"),
])
def test_bad_mounts_stop_start_up(run, tree, mount, message):
    result = run("--static-mount", mount.replace("DIR", str(tree / "files")),
                 "--check-config", "static_app:app")
    assert result.returncode == 1, result.stderr
    assert "static_mount" in result.stderr and message in result.stderr


def test_config_file_dict_form(run, tree, tmp_path):
    conf = tmp_path / "c.py"
    conf.write_text("static_mount = {'/assets/': %r}\nstatic_max_age = 0\n" % str(tree / "files"))
    result = run("-c", conf, "--print-config", "static_app:app")
    assert result.returncode == 0, result.stderr
    assert "static_mount" in result.stdout and "/assets=" in result.stdout


def test_a_relative_directory_follows_chdir_across_hup(tree, tmp_path):
    # The directory of `--static-mount /static=files` is taken from `--chdir`, at start-up
    # and on HUP alike (the master's working directory is chdir by then).
    server = start(tree, tmp_path, "sync", "--chdir", str(tree), "--static-mount",
                   "/rel=files", "--log-level", "debug")
    try:
        assert get(server, "/rel/a.txt").body == TEXT
        server.send_signal(signal.SIGHUP)
        wait_until(lambda: "Hang up" in server.stderr_text(), what="the HUP to be handled")
        wait_until(lambda: server.stderr_text().count("Booting worker") >= 2,
                   what="a worker with the reloaded configuration")
        assert "Reload failed" not in server.stderr_text()
        assert get(server, "/rel/a.txt").body == TEXT
    finally:
        server.stop()


def test_static_files_behind_uwsgi_pass(tree, tmp_path):
    # A uWSGI gateway sends PATH_INFO decoded: it is not decoded again, and the access log
    # names the client the gateway reports.
    from uwsgi_support import exchange, packet

    files = tree / "files"
    (files / "100%41.txt").write_bytes(b"percent")
    access_log = tmp_path / "access.log"
    args = ["-b", "127.0.0.1:0", "-k", "sync", "--protocol", "uwsgi",
            "--static-mount", "/static=%s" % files, "--access-logfile", str(access_log),
            APPS["sync"]]
    runtime = tmp_path / "run-uwsgi"
    runtime.mkdir()
    server = Server(args, tmp_path, env=base_env(runtime), address=FROM_LOG)
    server.wait_ready(mode="port")
    try:
        vars_ = [("REQUEST_METHOD", "GET"), ("PATH_INFO", "/static/100%41.txt"),
                 ("REQUEST_URI", "/static/100%2541.txt"), ("QUERY_STRING", ""),
                 ("SERVER_PROTOCOL", "HTTP/1.1"), ("REMOTE_ADDR", "203.0.113.7"),
                 ("REMOTE_PORT", "4242"), ("SERVER_NAME", "example.org"),
                 ("SERVER_PORT", "80"), ("HTTP_HOST", "example.org")]
        resp = exchange(server.address, packet(vars_), timeout=10)
        assert resp.status == 200
        assert resp.body == b"percent"
        wait_until(lambda: "100%2541.txt" in access_log.read_text(), what="the access line")
        assert access_log.read_text().startswith("203.0.113.7 ")
    finally:
        server.stop()
        (files / "100%41.txt").unlink()
