"""The deploy guide's nginx examples, run: a real nginx in front of the server, configured
with docs/deploy/nginx-tcp.conf, nginx-unix.conf and nginx-uwsgi.conf, and the server
configured with docs/deploy/ferrocorn.conf.py (ports, paths and the app swapped for the
test's, nothing else). Also: every file the guide shows is byte for byte the file tested.

Through nginx, over TCP and over a unix socket (and over the uwsgi protocol):
- plain and TLS requests, the scheme the app sees following X-Forwarded-Proto, the client's
  address arriving as X-Forwarded-For (and in the server's access log) while REMOTE_ADDR
  stays nginx's, and a client unable to fake either;
- a 32 MiB upload hashed by the app, an 8 MiB download, and the 413 above
  client_max_body_size;
- nginx's upstream connections kept alive: requests from many client connections arrive
  on one server connection;
- a HUP of the server under load with no failed request, as the clients and as nginx see
  it (every access-log line a 200 from one upstream attempt, nothing in nginx's error log).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import signal
import ssl

import pytest
import trustme

from conftest import APPS_DIR, children, wait_until
from deploy_support import EXAMPLES, GUIDE, NGINX_WORKERS, Nginx, example, guide_files
from loadgen import LoadGen

pytestmark = pytest.mark.timeout(60)

# The client's connections to nginx come from this loopback address, so that what nginx
# forwards (the client's address) differs from nginx's own address at the server.
CLIENT_ADDR = "127.0.0.5"


def test_guide_shows_the_files():
    shown = guide_files()
    names = [name for name, _ in shown]
    assert len(names) == len(set(names)), "a file is shown twice in %s: %s" % (GUIDE, names)
    for name, text in shown:
        path = GUIDE.parent / name
        assert path.is_file(), "%s shows %s, which does not exist" % (GUIDE.name, name)
        assert text == path.read_text(), (
            "the block labelled file=%s in %s differs from the file; copy the file into "
            "the guide" % (name, GUIDE.name))
    examples = {"deploy/%s" % p.name for p in EXAMPLES.iterdir() if p.is_file()}
    assert examples == set(names), "docs/deploy/ and the guide's blocks differ: %s" % (
        examples ^ set(names))


# ---------------------------------------------------------------------------
# The stack: the server with the guide's config, nginx with one of the guide's sites.


class Stack:
    def __init__(self, server, nginx: Nginx, ca: trustme.CA, transport: str):
        self.server = server
        self.nginx = nginx
        self.ca = ca
        self.transport = transport

    def request(self, method="GET", path="/", headers=None, body=None, tls=False,
                timeout=30.0):
        """One request through nginx from CLIENT_ADDR: (status, headers, body)."""
        if tls:
            ctx = ssl.create_default_context()
            self.ca.configure_trust(ctx)
            conn = http.client.HTTPSConnection(
                "127.0.0.1", self.nginx.https_port, timeout=timeout, context=ctx,
                source_address=(CLIENT_ADDR, 0))
        else:
            conn = http.client.HTTPConnection(
                "127.0.0.1", self.nginx.http_port, timeout=timeout,
                source_address=(CLIENT_ADDR, 0))
        with contextlib.closing(conn):
            conn.request(method, path, body=body, headers=dict({"Host": "example.com"},
                                                               **(headers or {})))
            resp = conn.getresponse()
            return resp.status, resp, resp.read()

    def env(self, **kw) -> dict:
        status, _, body = self.request(path="/env", **kw)
        assert status == 200, body
        return json.loads(body)


def server_config(tmp_path, bind="127.0.0.1:0"):
    path = tmp_path / "ferrocorn.conf.py"
    path.write_text(example("ferrocorn.conf.py", {
        "myproject.wsgi:application": "deploy_app:app",
        '"/srv/myproject"': repr(str(APPS_DIR)),
        '"127.0.0.1:8000"': repr(bind),
    }))
    return path


def site_swaps(ca_dir, ca: trustme.CA):
    ca_dir.mkdir(exist_ok=True)
    leaf = ca.issue_cert("example.com", "127.0.0.1")
    cert, key = ca_dir / "cert.pem", ca_dir / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    for extra in leaf.cert_chain_pems[1:]:
        extra.write_to_path(str(cert), append=True)
    leaf.private_key_pem.write_to_path(str(key))
    return {"/etc/ssl/certs/example.com.pem": cert, "/etc/ssl/private/example.com.key": key}


def start_stack(serve, tmp_path, site_file: str, transport: str, server_args=()):
    conf = server_config(tmp_path)
    if transport == "unix":
        sock = str(tmp_path / "ferrocorn.sock")
        server = serve("-c", conf, "-b", "unix:%s" % sock, *server_args, bind=sock)
        upstream = {"/run/ferrocorn.sock": sock}
    else:
        server = serve("-c", conf, *server_args, bind="log",
                       ready="port" if "uwsgi" in server_args else "http")
        upstream = {"127.0.0.1:8000;": "127.0.0.1:%d;" % server.port}
    ca = trustme.CA()
    swaps = dict(site_swaps(tmp_path / "pki", ca), **upstream)

    def site(http_port, https_port):
        return example(site_file, dict(swaps, **{
            "listen 80;": "listen 127.0.0.1:%d;" % http_port,
            "listen 443 ssl;": "listen 127.0.0.1:%d ssl;" % https_port,
        }))

    nginx = Nginx(tmp_path / "nginx", site)
    return Stack(server, nginx, ca, transport)


@pytest.fixture
def nginx_stacks(request):
    started = []
    yield started
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for stack in started:
        stack.nginx.stop()
        if failed:
            print(stack.nginx.logs())


@pytest.fixture(params=["tcp", "unix"])
def stack(request, serve, tmp_path, nginx_stacks):
    site_file = {"tcp": "nginx-tcp.conf", "unix": "nginx-unix.conf"}[request.param]
    built = start_stack(serve, tmp_path, site_file, request.param)
    nginx_stacks.append(built)
    return built


# ---------------------------------------------------------------------------
# proxy_pass over TCP and over a unix socket.


def test_requests_scheme_and_forwarded_headers(stack):
    status, resp, body = stack.request(path="/")
    assert (status, body) == (200, b"ok\n")
    assert resp.getheader("X-Worker-Pid")

    plain = stack.env(headers={"X-Forwarded-For": "203.0.113.9"})
    assert plain["wsgi.url_scheme"] == "http"
    assert plain["HTTP_X_FORWARDED_PROTO"] == "http"
    # nginx replaced what the client claimed with the client's real address.
    assert plain["HTTP_X_FORWARDED_FOR"] == CLIENT_ADDR
    assert plain["HTTP_X_FORWARDED_HOST"] == "example.com"
    assert plain["HTTP_HOST"] == "example.com"
    # REMOTE_ADDR is the peer of the server's socket: nginx (nothing on a unix socket).
    assert plain["REMOTE_ADDR"] == ("127.0.0.1" if stack.transport == "tcp" else "")
    # Keep-alive to the upstream: HTTP/1.1 without the client's Connection header.
    assert plain["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert plain["HTTP_CONNECTION"] is None

    secure = stack.env(tls=True)
    assert secure["wsgi.url_scheme"] == "https"
    assert secure["HTTP_X_FORWARDED_PROTO"] == "https"
    assert secure["HTTP_X_FORWARDED_FOR"] == CLIENT_ADDR

    # A client over plain http cannot make the app believe https: nginx overwrites
    # X-Forwarded-Proto, and the config trusts no other scheme header.
    spoof = stack.env(headers={"X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "on",
                               "X-Forwarded-Protocol": "ssl"})
    assert spoof["wsgi.url_scheme"] == "http"
    assert spoof["HTTP_X_FORWARDED_PROTO"] == "http"

    # The access log's first field is the client, from X-Forwarded-For.
    wait_until(lambda: any(line.startswith(CLIENT_ADDR + " ") and "GET /env" in line
                           for line in stack.server.stdout_text().splitlines()),
               timeout=10, what="an access-log line naming the client; stdout:\n"
               + stack.server.stdout_text()[-2000:])


def test_only_the_trusted_proxy_sets_the_scheme(serve, tmp_path):
    # What makes X-Forwarded-Proto count: forwarded_allow_ips. Straight to the server, the
    # same header is believed from 127.0.0.1 (where nginx runs) and not from elsewhere.
    server = serve("-c", server_config(tmp_path), bind="log")
    for source, scheme in (("127.0.0.1", "https"), (CLIENT_ADDR, "http")):
        conn = http.client.HTTPConnection(*server.address, timeout=10,
                                          source_address=(source, 0))
        with contextlib.closing(conn):
            conn.request("GET", "/env", headers={"X-Forwarded-Proto": "https"})
            seen = json.loads(conn.getresponse().read())
        assert seen["REMOTE_ADDR"] == source
        assert seen["wsgi.url_scheme"] == scheme, (source, seen)


def test_large_upload_download_and_body_limit(stack):
    payload = os.urandom(32 * 1024 * 1024)
    status, _, body = stack.request("POST", "/upload", body=payload, timeout=60,
                                    headers={"Content-Type": "application/octet-stream"})
    assert status == 200, body[:300]
    assert json.loads(body) == {"length": len(payload),
                                "sha256": hashlib.sha256(payload).hexdigest()}

    size = 8 * 1024 * 1024
    status, _, body = stack.request(path="/download?n=%d" % size, tls=True, timeout=60)
    assert status == 200 and len(body) == size
    assert body == (bytes(range(256)) * (size // 256))

    # One byte over client_max_body_size (64m): nginx answers 413 from the head alone.
    conn = http.client.HTTPConnection("127.0.0.1", stack.nginx.http_port, timeout=10)
    with contextlib.closing(conn):
        conn.putrequest("POST", "/upload")
        conn.putheader("Content-Length", str(64 * 1024 * 1024 + 1))
        conn.endheaders()
        assert conn.getresponse().status == 413


def test_upstream_connections_are_kept_alive(stack):
    # Twenty clients one after the other, each on its own connection to nginx: each nginx
    # worker sends them over the one connection it keeps open to the server.
    seen = [stack.env()["conn"] for _ in range(20)]
    assert len(set(seen)) <= NGINX_WORKERS, seen


def hup_under_load(stack, path="/slow?s=0.02"):
    """HUP the server while a load generator goes through nginx: nothing may fail."""
    server, nginx = stack.server, stack.nginx
    master = server.proc.pid
    # ferrocorn.conf.py's `workers = 2`.
    old_workers = wait_until(lambda: (lambda kids: kids if len(kids) == 2 else None)(
        children(master)), what="both workers")
    logged_before = len(nginx.access_lines())
    load = LoadGen(nginx.http, path, threads=6, limit=40, host="example.com")
    try:
        load.wait_ok(30)
        load.mark("HUP")
        server.send_signal(signal.SIGHUP)
        wait_until(lambda: not (children(master) & old_workers), timeout=20,
                   what="the old workers to exit; " + load.report())
        new_workers = children(master)
        settled = load.mark("old workers gone")
        wait_until(lambda: load.worker_pids(since=settled), timeout=15,
                   what="the new workers to answer; " + load.report())
        load.wait_ok(100)
    finally:
        load.stop()
    report = load.report()
    load.assert_lossless()
    assert load.worker_pids(since=settled) <= new_workers, report
    assert load.worker_pids(until=load.marks[0][1]) <= old_workers, report
    # What nginx saw: every request it logged during the load got a 200 from the first
    # upstream attempt ("502, 200" would be a retry after a failed one), and no upstream
    # error was logged.
    # (nginx writes a request's line once the response is out: wait for the last ones.)
    lines = wait_until(lambda: (lambda got: got if len(got) >= load.count() else None)(
        nginx.access_lines()[logged_before:]), timeout=10,
        what="a line in nginx's access log for each request; " + report)
    bad = [line for line in lines if line.status != 200 or line.upstream_status != "200"]
    assert not bad, bad[:10]
    assert nginx.error_lines() == [], nginx.error_lines()[:10]


def test_hup_under_load_loses_nothing(stack):
    hup_under_load(stack)


# ---------------------------------------------------------------------------
# uwsgi_pass: the server speaks the uwsgi protocol (`--protocol uwsgi`).


@pytest.fixture
def uwsgi_stack(serve, tmp_path, nginx_stacks):
    built = start_stack(serve, tmp_path, "nginx-uwsgi.conf", "tcp",
                        server_args=("--protocol", "uwsgi"))
    nginx_stacks.append(built)
    return built


def test_uwsgi_pass(uwsgi_stack):
    stack = uwsgi_stack
    status, _, body = stack.request(path="/?a=1")
    assert (status, body) == (200, b"ok\n")

    plain = stack.env(headers={"X-Forwarded-For": "203.0.113.9"})
    assert plain["wsgi.url_scheme"] == "http"
    assert plain["HTTP_X_FORWARDED_FOR"] == CLIENT_ADDR
    assert plain["HTTP_HOST"] == "example.com"
    assert plain["PATH_INFO"] == "/env"
    secure = stack.env(tls=True)
    assert secure["wsgi.url_scheme"] == "https"

    payload = os.urandom(32 * 1024 * 1024)
    status, _, body = stack.request("POST", "/upload", body=payload, timeout=60)
    assert status == 200, body[:300]
    assert json.loads(body) == {"length": len(payload),
                                "sha256": hashlib.sha256(payload).hexdigest()}

    hup_under_load(stack)
