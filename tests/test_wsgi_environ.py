"""The WSGI environ, key by key, against a recording of Gunicorn 27.0.1's for the same requests.

`tests/data/gunicorn_environ.json` holds what `apps/environ_full.py` answered under Gunicorn
27.0.1 for every request in CASES. Re-record it (after changing CASES or the app) with

    python tests/test_wsgi_environ.py --record /tmp/gvenv/bin/gunicorn

which starts that command with the same fixtures the tests use. Values that change from run to
run (ports, the unix socket path) are replaced by placeholders in both the recording and the
live answer, so the presence of each key is still compared.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from conftest import RawResponse, raw_request

RECORDING = Path(__file__).resolve().parent / "data" / "gunicorn_environ.json"
HOST = "example.test:8080"

# Each case: the bytes sent, how the server is bound, and extra environment for it.
CASES = {
    "get-query": {
        "request": b"GET /path/to/x?a=1&b=%20two&c&d=%E9 HTTP/1.1\r\nHost: " + HOST.encode()
        + b"\r\nUser-Agent: environ-test\r\n\r\n",
    },
    "percent-encoded-path": {
        "request": b"GET /caf%C3%A9/a%2Fb/sp%20ace/%7Etilde HTTP/1.1\r\nHost: " + HOST.encode()
        + b"\r\n\r\n",
    },
    "latin1-path-and-header": {
        # Raw non-ASCII bytes are refused in the request line, so latin-1 arrives
        # percent-encoded there; header values may carry it raw (obs-text).
        "request": b"GET /caf%E9/%FF%80?q=%E9 HTTP/1.1\r\nHost: " + HOST.encode()
        + b"\r\nX-Latin: caf\xe9 cr\xe8me\r\n\r\n",
    },
    "repeated-headers": {
        "request": b"GET / HTTP/1.1\r\nHost: " + HOST.encode()
        + b"\r\nAccept: text/html\r\nX-Multi: one\r\nAccept: application/json\r\n"
        b"x-multi: two\r\nCookie: a=1\r\nCookie: b=2\r\nX-Empty:\r\n"
        b"X-Dash-Name: dashed\r\n\r\n",
    },
    "head": {
        "request": b"HEAD /head/path?x=y HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n\r\n",
    },
    "post-body": {
        "request": b"POST /submit?via=form HTTP/1.1\r\nHost: " + HOST.encode()
        + b"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 19\r\n\r\n"
        b"name=Ada&colour=red",
    },
    "post-chunked": {
        "request": b"PUT /upload HTTP/1.1\r\nHost: " + HOST.encode()
        + b"\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n",
    },
    "http10-no-host": {
        "request": b"GET /old?v=1.0 HTTP/1.0\r\n\r\n",
    },
    "script-name-env": {
        "request": b"GET /mount/app/page?x=1 HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n\r\n",
        "env": {"SCRIPT_NAME": "/mount"},
    },
    "forwarded-and-underscore": {
        # 127.0.0.1 is a trusted forwarder by default, so X-Forwarded-Proto sets the scheme;
        # a header name with an underscore is dropped (header_map = drop).
        "request": b"GET /fwd HTTP/1.1\r\nHost: " + HOST.encode()
        + b"\r\nX-Forwarded-Proto: https\r\nX-Forwarded-For: 203.0.113.9\r\n"
        b"Under_Score: dropped\r\n\r\n",
    },
    "expect-continue": {
        "request": b"POST /expect HTTP/1.1\r\nHost: " + HOST.encode()
        + b"\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
    },
    "two-workers": {
        "request": b"GET /multi HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n\r\n",
        "args": ["--workers", "2"],
    },
    "unix-socket": {
        "request": b"GET /over/unix?u=1 HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n\r\n",
        "bind": "unix",
    },
    "unix-socket-no-host": {
        "request": b"GET /over/unix HTTP/1.0\r\n\r\n",
        "bind": "unix",
    },
}

# The private classes each server uses for these keys have their own names (Gunicorn's
# `Body`, `WSGIErrorsWrapper` and a plain function for early hints); what an application may
# rely on is the interface PEP 3333 (and Gunicorn 25+ for early hints) gives them, so the
# comparison keeps only those methods. Every other object (the socket, the file_wrapper
# class) is compared by its type name and methods as recorded.
INTERFACE_ONLY = {
    "wsgi.input": {"read", "readline", "readlines", "__iter__"},
    "wsgi.errors": {"write", "writelines", "flush"},
    "wsgi.early_hints": {"__call__"},
}


def normalise(environ: dict, address) -> dict:
    """Replace the values that change between runs (and servers) with placeholders."""
    env = dict(environ)
    if "REMOTE_PORT" in env:
        assert re.fullmatch(r"\d+", env["REMOTE_PORT"]), env["REMOTE_PORT"]
        env["REMOTE_PORT"] = "<port>"
    if isinstance(address, tuple):
        assert env["SERVER_PORT"] == str(address[1]), env["SERVER_PORT"]
        env["SERVER_PORT"] = "<port>"
    elif env.get("SERVER_NAME") == address:
        env["SERVER_NAME"] = "<socket path>"
    # SERVER_SOFTWARE names the server by design (docs/differences.md): only its shape,
    # `<name>/<version>`, is compared.
    software = env["SERVER_SOFTWARE"]
    assert re.fullmatch(r"(gunicorn|ferrocorn)/\d+\.\d+\.\d+\S*", software), software
    env["SERVER_SOFTWARE"] = "<server>/<version>"
    return env


def comparable(environ: dict) -> dict:
    """The recorded or live environ with INTERFACE_ONLY keys reduced to their interface."""
    env = dict(environ)
    for key, methods in INTERFACE_ONLY.items():
        if isinstance(env.get(key), dict):
            env[key] = {"interface": sorted(methods & set(env[key]["has"]))}
    return env


def fetch_environ(serve, case: dict) -> dict:
    server = serve(*case.get("args", ()), "environ_full:app", bind=case.get("bind", "tcp"),
                   env=case.get("env"))
    raw = raw_request(server.address, case["request"], timeout=10)
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    if b"Expect: 100-continue" in case["request"] and raw.startswith(interim):
        # Gunicorn always answers the expectation; a server that already holds the body may
        # omit it (RFC 9110 10.1.1). When it is sent is tested in test_wsgi_input.py.
        raw = raw[len(interim):]
    resp = RawResponse(raw)
    assert resp.status == 200, resp.raw[:500]
    if case["request"].startswith(b"HEAD "):
        # No body comes back for HEAD; the app sends the same JSON in a header.
        assert resp.raw_body == b""
        return normalise(json.loads(resp.header("x-environ")), server.address), server
    return normalise(json.loads(resp.body), server.address), server


def load_recording() -> dict:
    return json.loads(RECORDING.read_text())


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_environ_matches_gunicorn_27(serve, case_id):
    recorded = load_recording()["cases"][case_id]
    live = comparable(fetch_environ(serve, CASES[case_id])[0])
    expected = comparable(recorded)
    missing = sorted(set(expected) - set(live))
    extra = sorted(set(live) - set(expected))
    assert not missing, "keys Gunicorn sets that are missing: %s" % missing
    assert not extra, "keys Gunicorn does not set: %s" % extra
    differing = {k: (expected[k], live[k]) for k in expected if expected[k] != live[k]}
    assert not differing, "values differ (gunicorn, ours): %s" % json.dumps(differing, indent=1)


def test_recording_is_gunicorn_27_0_1():
    recording = load_recording()
    assert recording["server"] == "gunicorn 27.0.1"
    assert set(recording["cases"]) == set(CASES)


# ---------------------------------------------------------------------------
# Recording: `python tests/test_wsgi_environ.py --record <gunicorn command>`.


def _record(command: str):
    import os
    import shutil
    import tempfile

    os.environ["FERROCORN_CMD"] = command
    import conftest

    version = conftest.run_command(["--version"], Path(tempfile.mkdtemp()))
    text = (version.stdout + version.stderr).strip()
    match = re.search(r"gunicorn \(version (\S+)\)", text)
    assert match, "not a gunicorn: %r" % text
    cases = {}
    for case_id, case in sorted(CASES.items()):
        tmp = Path(tempfile.mkdtemp(prefix="environ-record-"))
        started = []

        def serve(*args, bind="tcp", env=None):  # the test fixture's signature, reduced
            address = None
            args = list(args)
            if bind == "tcp":
                address = conftest.FROM_LOG
                args = ["-b", "127.0.0.1:0"] + args
            else:
                address = str(tmp / "s.sock")
                args = ["-b", "unix:%s" % address] + args
            runtime = tmp / "run"
            runtime.mkdir()
            server = conftest.Server(args, tmp, env=conftest.base_env(runtime, env),
                                     address=address)
            started.append(server)
            return server.wait_ready()

        try:
            cases[case_id], _ = fetch_environ(serve, case)
        finally:
            for server in started:
                server.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    RECORDING.parent.mkdir(exist_ok=True)
    RECORDING.write_text(
        json.dumps({"server": "gunicorn %s" % match.group(1), "cases": cases},
                   indent=1, sort_keys=True) + "\n"
    )
    print("recorded %d cases from %s into %s" % (len(cases), text, RECORDING))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--record":
        sys.exit("usage: python tests/test_wsgi_environ.py --record /path/to/gunicorn")
    _record(sys.argv[2])


def test_path_outside_script_name_gets_gunicorns_error_page(serve):
    """SCRIPT_NAME set in the environment and a request path outside it: the environ cannot
    be built, so the server answers with Gunicorn's 500 page naming the problem, logs it,
    closes the connection, and goes on serving."""
    server = serve("environ_dump:app", env={"SCRIPT_NAME": "/mount"}, ready_path="/mount/")
    raw = raw_request(server.address, b"GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n")
    resp = RawResponse(raw)
    assert resp.header("Connection") == "close"
    assert resp.status_line == "HTTP/1.1 500 Bad Request"
    assert (b"Configuration problem: Request path &#x27;/elsewhere&#x27; does not start with "
            b"SCRIPT_NAME &#x27;/mount&#x27;") in resp.body, resp.body
    server.wait_for_log(r"\[WARNING\] Invalid request from ip=127\.0\.0\.1: Configuration "
                        r"problem: Request path '/elsewhere' does not start with SCRIPT_NAME "
                        r"'/mount'$")
    ok = RawResponse(raw_request(server.address, b"GET /mount/in HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert ok.status_line == "HTTP/1.1 200 OK"
