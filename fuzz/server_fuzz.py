#!/usr/bin/env python3
"""Fuzz the real running server over sockets (plain Python 3, standard library only).

Starts the server command (``--cmd``, default ``.venv/bin/ferrocorn``; a ``gunicorn``
executable works too) with one worker of the chosen class, bound to 127.0.0.1:0, serving a
tiny WSGI app that reads the whole ``wsgi.input`` and answers 200. Any final response other
than 200 is therefore the server rejecting the request (or the app answering 408 when the
server's read of an incomplete body timed out).

Inputs are mutated from the Gunicorn request corpus (``../shared/conformance/
gunicorn-requests/{valid,invalid}/*.json``) and a few hand-written requests; each goes over a
fresh connection, cut into pieces in one of several ways, and the connection is read until the
server closes it (the client never half-closes). Checks, per input:

- the number of final responses is at most the number of requests the bytes could hold
  (occurrences of ``HTTP/`` plus one for a final rejection of garbage) -> ``desync``;
- nothing follows a non-200 final response, nor a response that said ``Connection: close``
  -> ``desync``;
- what came back parses as HTTP/1.x responses -> ``bad``;
- the server does not hold the connection longer than ``--timeout`` + 3 s -> ``hang``.

and, for the server as a whole:

- its log never shows a panic, a traceback, a worker exiting, timing out or being rebooted,
  and the master never exits -> ``crash``;
- the worker's RSS at start, at end and at most (reported, not judged).

A connection counts as held only from the moment the worker has accepted it (read from
/proc/net/tcp) and from the last byte that moved either way, so connections queued behind a
busy worker are not hangs. A connection held that long is a suspect; after the run each
suspect is replayed alone against the idle server and only one held again is a ``hang``. For
a crash, the inputs in flight around it are replayed in halves to narrow it down.

Every finding is saved as ``fuzz/server-findings/<worker>/<kind>-<n>.bin`` (the bytes) with a
``.json`` beside it (the pieces, the pauses, what came back, the detail); replay one with
``--replay FILE``. Exits 1 if anything was found, 2 on a usage or startup error.
"""

from __future__ import annotations

import argparse
import base64
import errno
import json
import os
import random
import re
import selectors
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFORMANCE_DIR = REPO_ROOT.parent / "shared" / "conformance" / "gunicorn-requests"
FINDINGS_DIR = REPO_ROOT / "fuzz" / "server-findings"

KINDS = ("crash", "hang", "desync", "bad")
MAX_INPUT = 64 * 1024

# The app under the server. It reads the whole body; a read the server times out (the client
# sent less than it announced) or a vanished client is answered 408, so the log shows a
# traceback only for something else going wrong. Parse errors raised by the body reader
# propagate, so the server answers them itself (400).
APP_SOURCE = '''\
import errno

_CLIENT_GONE = {"NoMoreData", "UnexpectedEOF", "ClientDisconnected"}


_TIMED_OUT = ("timed out", "Resource temporarily unavailable", "os error 11)", "os error 110)")


def _client_problem(exc):
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, OSError) and (exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ETIMEDOUT)
                                     or any(t in str(exc) for t in _TIMED_OUT)):
        return True
    return type(exc).__name__ in _CLIENT_GONE


def app(environ, start_response):
    try:
        body = environ["wsgi.input"].read()
    except Exception as exc:
        if not _client_problem(exc):
            raise
        out = b"client timeout: " + type(exc).__name__.encode() + b"\\n"
        start_response("408 Request Timeout", [("Content-Type", "text/plain"),
                                               ("Content-Length", str(len(out)))])
        return [out]
    path = environ.get("PATH_INFO", "").encode("latin-1", "replace")
    out = b"len=%d path=%s\\n" % (len(body), path[:200])
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    if environ.get("REQUEST_METHOD") == "HEAD":
        return []
    return [out]
'''

# Variables that change a server's configuration; never inherited from the caller.
CONFIG_ENV_VARS = (
    "GUNICORN_CMD_ARGS", "WEB_CONCURRENCY", "PORT", "FORWARDED_ALLOW_IPS", "SENDFILE",
    "SCRIPT_NAME", "GUNICORN_PID", "GUNICORN_FD", "LISTEN_PID", "LISTEN_FDS", "NOTIFY_SOCKET",
)

LISTENING_RE = re.compile(rb"Listening at: http://127\.0\.0\.1:(\d+)")
BOOTING_RE = re.compile(rb"Booting worker with pid: (\d+)")
CRASH_RE = re.compile(
    rb"panicked|Traceback|Worker exiting|WORKER TIMEOUT|exited with code|was sent SIG"
    rb"|Booting worker with pid"
)

HAND_WRITTEN = [
    b"GET /hello?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: fuzz\r\nAccept: */*\r\n\r\n",
    b"POST /post HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 11\r\n\r\nhello world",
    b"POST /chunked HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
    b"Trailer: X-Sum\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n",
    b"PUT /expect HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
    b"Content-Length: 4\r\n\r\ndata",
    b"GET /ten HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n",
    b"GET /close HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    b"HEAD /head HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET http://127.0.0.1/abs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"DELETE /d?q=%20 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
]


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: stop fuzzing, clean up, report."""


# ---------------------------------------------------------------------------
# Inputs: seeds, mutations, splits.


def load_seeds(conformance_dir: Path):
    """(valid, invalid) wire byte strings of the conformance corpus; empty lists if absent."""
    out = {"valid": [], "invalid": []}
    for kind in out:
        for path in sorted((conformance_dir / kind).glob("*.json")):
            try:
                wire = base64.b64decode(json.loads(path.read_text())["wire_base64"])
            except (OSError, ValueError, KeyError):
                continue
            if wire:
                out[kind].append(wire)
    return out["valid"], out["invalid"]


INTERESTING = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b":", b";", b",", b"-", b"0",
               b"9", b"f", b"\x7f", b"\x80", b"\xff", b"\x0b", b"\x0c", b"\"", b"\\", b"%",
               b"/", b"?", b"#", b"HTTP/1.1", b"\r\n\r\n", b"chunked", b"Content-Length"]

CL_VALUES = [b"0", b"1", b"-1", b"+5", b"99999999999999999999", b"18446744073709551616",
             b"0x10", b"1 2", b"", b"5,5", b" 5 ", b"00000000005", b"1e3", b"\t3", b"3\x00",
             b"4294967296", b"9223372036854775807", b"5, 6", b"\xd9\xa3"]
TE_VALUES = [b"chunked", b"chunked, chunked", b"identity", b"gzip, chunked", b"chunked, gzip",
             b"chunked\x00", b"\x0bchunked", b"xchunked", b"", b"cHuNkEd", b" chunked ",
             b"chunked;q=1", b"gzip", b"chunk", b"chunked\r\n", b"deflate,chunked"]
HOST_VALUES = [b"", b"a b", b"[::1]", b"x:99999", b"@", b"127.0.0.1", b"h\x00st", b"a,b",
               b"example.com:80", b"\xff", b"x" * 300]
HEADER_NAMES = [b"Transfer-Encoding", b"Content-Length", b"Host", b"transfer-encoding",
                b"CONTENT-LENGTH", b"Transfer-Encoding ", b"Content-Length\t", b" Host",
                b"Transfer_Encoding", b"Content-Length\x00", b"Expect", b"Connection"]
CHUNK_SIZES = [b"ffffffffffffffff", b"fffffffffffffffff", b"1" + b"0" * 20,
               b"7fffffffffffffff", b"-1", b"0x10", b"  5", b"5 ;ext", b"0" * 40 + b"5",
               b"10000000", b"ffffffff", b"8000000000000000", b"5;a=\"b\"", b"5\x00", b""]


def head_end(data: bytes) -> int:
    """Offset just past the first empty line (CRLF CRLF or LF LF), or -1."""
    best = -1
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = data.find(sep)
        if i >= 0 and (best < 0 or i + len(sep) < best):
            best = i + len(sep)
    return best


class Mutator:
    def __init__(self, rng: random.Random, valid, invalid):
        self.rng = rng
        self.valid = valid + HAND_WRITTEN
        self.invalid = invalid
        self.hand = HAND_WRITTEN

    def seed(self) -> bytes:
        r = self.rng.random()
        if r < 0.3 or not (self.valid or self.invalid):
            return self.rng.choice(self.hand)
        if r < 0.8 or not self.invalid:
            return self.rng.choice(self.valid)
        return self.rng.choice(self.invalid)

    # -- single mutations; each returns new bytes ---------------------------
    def m_flip(self, d):
        if not d:
            return d
        i = self.rng.randrange(len(d))
        return d[:i] + bytes([d[i] ^ (1 << self.rng.randrange(8))]) + d[i + 1:]

    def m_set(self, d):
        if not d:
            return d
        i = self.rng.randrange(len(d))
        b = self.rng.choice(INTERESTING)[:1] if self.rng.random() < 0.6 else bytes([self.rng.randrange(256)])
        return d[:i] + b + d[i + 1:]

    def m_insert(self, d):
        i = self.rng.randrange(len(d) + 1)
        b = self.rng.choice(INTERESTING) if self.rng.random() < 0.7 else os.urandom(self.rng.randint(1, 8))
        return d[:i] + b * self.rng.choice((1, 1, 1, 2, 50)) + d[i:]

    def m_delete(self, d):
        if not d:
            return d
        i = self.rng.randrange(len(d))
        n = self.rng.choice((1, 1, 2, 4, self.rng.randint(1, 64)))
        return d[:i] + d[i + n:]

    def m_dup_range(self, d):
        if not d:
            return d
        i = self.rng.randrange(len(d))
        n = self.rng.randint(1, 32)
        return d[:i + n] + d[i:i + n] + d[i + n:]

    def _lines(self, d):
        return d.splitlines(keepends=True)

    def m_dup_line(self, d):
        lines = self._lines(d)
        if not lines:
            return d
        i = self.rng.randrange(len(lines))
        lines.insert(self.rng.randrange(len(lines) + 1), lines[i])
        return b"".join(lines)

    def m_drop_line(self, d):
        lines = self._lines(d)
        if len(lines) < 2:
            return d
        del lines[self.rng.randrange(len(lines))]
        return b"".join(lines)

    def m_swap_lines(self, d):
        lines = self._lines(d)
        if len(lines) < 3:
            return d
        i, j = self.rng.sample(range(len(lines)), 2)
        lines[i], lines[j] = lines[j], lines[i]
        return b"".join(lines)

    def m_splice(self, d):
        other = self.seed()
        if self.rng.random() < 0.3:
            return d + other
        i = self.rng.randrange(len(d) + 1)
        j = self.rng.randrange(len(other) + 1)
        return d[:i] + other[j:]

    def m_line_endings(self, d):
        r = self.rng.random()
        if r < 0.25:
            return d.replace(b"\r\n", b"\n")
        if r < 0.4:
            return d.replace(b"\r\n", b"\r")
        if r < 0.55:
            return d.replace(b"\r\n", b"\n\r")
        # one line ending only
        ends = [m.start() for m in re.finditer(rb"\r\n", d)]
        if not ends:
            return d.replace(b"\n", b"\r\n")
        i = self.rng.choice(ends)
        return d[:i] + self.rng.choice((b"\n", b"\r", b"\r\r\n", b"\r\n\r\n", b" \r\n", b"")) + d[i + 2:]

    def m_content_length(self, d):
        m = list(re.finditer(rb"(?i)content-length[ \t]*:[ \t]*([^\r\n]*)", d))
        end = head_end(d)
        body_len = len(d) - end if end >= 0 else 0
        values = CL_VALUES + [str(max(0, body_len + k)).encode() for k in (-5, -1, 1, 2, 100)]
        value = self.rng.choice(values)
        if m:
            t = self.rng.choice(m)
            return d[:t.start(1)] + value + d[t.end(1):]
        return self._insert_header(d, b"Content-Length", value)

    def _insert_header(self, d, name, value):
        lines = self._lines(d)
        if not lines:
            return name + b": " + value + b"\r\n"
        head_lines = 1
        while head_lines < len(lines) and lines[head_lines].strip(b"\r\n"):
            head_lines += 1
        i = self.rng.randint(1, head_lines)
        sep = self.rng.choice((b": ", b":", b" : ", b":\t", b": "))
        lines.insert(i, name + sep + value + self.rng.choice((b"\r\n", b"\r\n", b"\r\n", b"\n")))
        return b"".join(lines)

    def m_odd_header(self, d):
        name = self.rng.choice(HEADER_NAMES)
        low = name.strip().lower()
        if low.startswith(b"transfer"):
            value = self.rng.choice(TE_VALUES)
        elif low.startswith(b"content"):
            value = self.rng.choice(CL_VALUES)
        elif low.startswith(b"host"):
            value = self.rng.choice(HOST_VALUES)
        elif low == b"expect":
            value = self.rng.choice((b"100-continue", b"100-Continue", b"200-ok", b""))
        else:
            value = self.rng.choice((b"close", b"keep-alive", b"upgrade", b"close, keep-alive", b""))
        return self._insert_header(d, name, value)

    def m_chunk_size(self, d):
        end = head_end(d)
        size = self.rng.choice(CHUNK_SIZES)
        if end < 0 or not re.search(rb"(?i)transfer-encoding", d[:end]):
            base = d if end >= 0 else d + b"\r\n\r\n"
            end = head_end(base)
            head = self._insert_header(base[:end], b"Transfer-Encoding", b"chunked")
            return head + size + b"\r\nabc\r\n0\r\n\r\n"
        body = d[end:]
        sizes = [m for m in re.finditer(rb"(?m)^([0-9a-fA-F]+)(;[^\r\n]*)?\r?$", body)]
        if not sizes:
            return d[:end] + size + b"\r\n" + body
        t = self.rng.choice(sizes)
        return d[:end] + body[:t.start(1)] + size + body[t.end(1):]

    def m_connection_close(self, d):
        return self._insert_header(d, b"Connection", b"close")

    MUTATIONS = ("flip", "set", "insert", "delete", "dup_range", "dup_line", "drop_line",
                 "swap_lines", "splice", "line_endings", "content_length", "odd_header",
                 "chunk_size", "connection_close")
    WEIGHTS = (4, 4, 4, 4, 1, 2, 2, 1, 2, 3, 4, 4, 3, 2)

    def request(self):
        """One mutated request: (bytes, [mutation names])."""
        d = self.seed()
        names = []
        if self.rng.random() < 0.15:
            return d, names
        for _ in range(self.rng.choice((1, 1, 1, 2, 2, 3, 4))):
            name = self.rng.choices(self.MUTATIONS, self.WEIGHTS)[0]
            d = getattr(self, "m_" + name)(d)[:MAX_INPUT]
            names.append(name)
        return d, names

    def generate(self):
        """One input (1-5 requests pipelined): (bytes, description)."""
        n = self.rng.choices((1, 2, 3, 4, 5), (70, 12, 8, 5, 5))[0]
        parts, desc = [], []
        for _ in range(n):
            d, names = self.request()
            parts.append(d)
            desc.append("+".join(names) or "seed")
        return b"".join(parts)[:MAX_INPUT], " | ".join(desc)


def choose_split(rng: random.Random, data: bytes):
    """How to cut `data` on the wire: (mode, [(start, end)], [pause before each piece])."""
    n = len(data)
    r = rng.random()
    if n <= 1 or r < 0.35:
        mode, cuts = "whole", []
    elif r < 0.5 and n <= 256:
        mode, cuts = "bytes", list(range(1, n))
    elif r < 0.7:
        mode = "lines"
        cuts = [m.end() for m in re.finditer(rb"\r\n|\n", data) if m.end() < n]
        if rng.random() < 0.3:
            cuts = [1] + cuts if n > 1 and (not cuts or cuts[0] != 1) else cuts
    else:
        mode = "random"
        cuts, at = [], 0
        while True:
            at += rng.randint(1, max(1, min(n // 4, 512)))
            if at >= n:
                break
            cuts.append(at)
    bounds = [0] + sorted(set(cuts)) + [n]
    pieces = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1) if bounds[i + 1] > bounds[i]]
    pauses = [0.0] * len(pieces)
    if len(pieces) > 1 and rng.random() < 0.25:
        budget = 0.3
        for i in range(1, len(pieces)):
            if rng.random() < min(1.0, 8.0 / len(pieces)):
                p = min(budget, rng.uniform(0.001, 0.02))
                pauses[i] = round(p, 4)
                budget -= p
                if budget <= 0:
                    break
        mode += "+pauses"
    return mode, pieces, pauses


# ---------------------------------------------------------------------------
# Responses.

# Any HTTP/1 minor version: like Gunicorn, the server echoes a request's `HTTP/1.9` in its
# status line; the harness counts those (odd_versions) but judges only framing.
STATUS_RE = re.compile(rb"HTTP/1\.(\d) (\d{3})(?: [^\r\n]*)?\r\n")
HEADER_RE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*")


def parse_responses(data: bytes, head_allowed: bool):
    """Parse `data` as a sequence of HTTP/1.x responses.

    Returns (responses, problem): each response is a dict with status, headers (lower-cased
    name, value), start and end offsets; problem is None or why the rest does not parse.
    `head_allowed`: a HEAD request may be among the requests, so a response with a
    Content-Length may have no body."""
    pos, out = 0, []
    while pos < len(data):
        m = STATUS_RE.match(data, pos)
        if not m:
            rest = data[pos:]
            if b"\r\n" not in rest and (rest.startswith(b"HTTP/1.") or b"HTTP/1."[:len(rest)] == rest):
                return out, "truncated status line at %d" % pos
            return out, "bad status line at %d: %r" % (pos, data[pos:pos + 60])
        status = int(m.group(2))
        end = data.find(b"\r\n\r\n", m.start())
        if end < 0:
            return out, "truncated head at %d" % pos
        headers = []
        for line in data[m.end():end].split(b"\r\n") if end > m.end() else []:
            h = HEADER_RE.fullmatch(line)
            if not h:
                return out, "bad header line %r in response at %d" % (line[:80], pos)
            headers.append((h.group(1).lower(), h.group(2)))
        body = end + 4
        resp = {"status": status, "headers": headers, "start": pos, "minor": int(m.group(1))}
        if 100 <= status < 200:
            resp["end"] = body
            out.append(resp)
            pos = body
            continue
        values = lambda name: [v for k, v in headers if k == name]  # noqa: E731
        te, cl = values(b"transfer-encoding"), values(b"content-length")
        if status in (204, 304):
            length = 0
        elif te:
            if te[-1].lower() != b"chunked":
                return out, "response Transfer-Encoding %r at %d" % (te, pos)
            at = body
            while True:
                lend = data.find(b"\r\n", at)
                if lend < 0:
                    return out, "truncated chunked body at %d" % pos
                try:
                    size = int(data[at:lend].split(b";")[0], 16)
                except ValueError:
                    return out, "bad chunk size %r at %d" % (data[at:lend][:40], at)
                at = lend + 2
                if size == 0:
                    tend = data.find(b"\r\n", at)
                    while tend > at:  # trailers
                        at = tend + 2
                        tend = data.find(b"\r\n", at)
                    if tend < 0:
                        return out, "truncated trailers at %d" % pos
                    at = tend + 2
                    break
                if data[at + size:at + size + 2] != b"\r\n":
                    return out, "truncated or misframed chunk at %d" % at
                at += size + 2
            resp["end"] = at
            out.append(resp)
            pos = at
            continue
        elif cl:
            if len(set(cl)) != 1 or not cl[0].isdigit():
                return out, "bad response Content-Length %r at %d" % (cl, pos)
            length = int(cl[0])
            if length and head_allowed and (body == len(data) or data.startswith(b"HTTP/1.", body)):
                length = 0  # the answer to a HEAD request
        else:
            length = len(data) - body  # delimited by the close
        if len(data) - body < length:
            return out, "truncated body at %d: %d of %d bytes" % (pos, len(data) - body, length)
        resp["end"] = body + length
        out.append(resp)
        pos = body + length
    return out, None


def check_exchange(sent: bytes, received: bytes, held: bool):
    """The findings for one connection: a list of (kind, detail), and its response statuses.

    `held`: the harness gave up waiting (the connection may have more to come), so a
    response cut off at the end is not a finding."""
    findings = []
    responses, problem = parse_responses(received, head_allowed=b"HEAD" in sent)
    finals = [r for r in responses if r["status"] >= 200]
    if problem and not (held and problem.startswith("truncated")):
        findings.append(("bad", problem))
    bound = sent.count(b"HTTP/") + 1
    if len(finals) > bound:
        findings.append(("desync", "%d final responses for at most %d requests" % (len(finals), bound)))
    for r in finals:
        closing = any(k == b"connection" and b"close" in v.lower() for k, v in r["headers"])
        if (r["status"] != 200 or closing) and r["end"] < len(received):
            why = "status %d" % r["status"] if r["status"] != 200 else "Connection: close"
            findings.append(("desync", "%d bytes after a final response with %s: %r" % (
                len(received) - r["end"], why, received[r["end"]:r["end"] + 80])))
            break
    return findings, [(r["status"], r["minor"]) for r in responses]


# ---------------------------------------------------------------------------
# The server under test.


class Server:
    def __init__(self, cmd, worker, timeout, threads, workdir: Path):
        self.workdir = workdir
        (workdir / "app.py").write_text(APP_SOURCE)
        (workdir / "run").mkdir(exist_ok=True)
        self.log_path = workdir / "server.log"
        argv = shlex.split(cmd)
        if argv and "/" in argv[0]:
            argv[0] = os.path.abspath(argv[0])  # the server runs in the temp dir
        self.argv = argv + [
            "-k", worker, "-w", "1", "--timeout", str(timeout), "--keep-alive", "2",
            "--graceful-timeout", "5", "--log-level", "debug", "-b", "127.0.0.1:0",
            "--chdir", str(workdir),
        ] + (["--threads", str(threads)] if worker == "gthread" else []) + ["app:app"]
        env = {k: v for k, v in os.environ.items() if k not in CONFIG_ENV_VARS}
        for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            env.pop(var, None)
        env["XDG_RUNTIME_DIR"] = str(workdir / "run")
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        self._log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                self.argv, cwd=str(workdir), env=env, stdin=subprocess.DEVNULL,
                stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        except OSError as exc:
            self._log.close()
            raise RuntimeError("cannot start %r: %s" % (self.argv[0], exc)) from None
        self.port = None
        self.boots = 0
        self.worker_pid = None
        self._scan_at = 0
        self._partial = b""

    def log_bytes(self) -> bytes:
        try:
            return self.log_path.read_bytes()
        except OSError:
            return b""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_bytes()
            m = LISTENING_RE.search(text)
            boots = BOOTING_RE.findall(text)
            if m and boots:
                self.port = int(m.group(1))
                if self._probe():
                    return
            if not self.alive():
                break
            time.sleep(0.05)
        raise RuntimeError("server not ready (%s); log tail:\n%s" % (
            "exited with %s" % self.proc.returncode if not self.alive() else "timed out",
            self.log_bytes()[-4000:].decode("utf-8", "replace")))

    def _probe(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                s.sendall(b"GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                got = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            return got.startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def scan_log(self):
        """New crash lines in the log since the last scan; tracks the worker pid."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._scan_at)
                new = f.read()
        except OSError:
            return []
        self._scan_at += len(new)
        new = self._partial + new
        lines = new.split(b"\n")
        self._partial = lines.pop()
        hits = []
        for line in lines:
            m = BOOTING_RE.search(line)
            if m:
                self.boots += 1
                self.worker_pid = int(m.group(1))
                if self.boots == 1:
                    continue
            if CRASH_RE.search(line):
                hits.append(line.decode("utf-8", "replace")[:300])
        return hits

    def rss_kb(self):
        if not self.worker_pid:
            return None
        try:
            for line in Path("/proc/%d/status" % self.worker_pid).read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return None

    def stop(self):
        """TERM the master and wait; KILL the whole group if anything is left."""
        if self.alive():
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


def accept_states(server_port: int, client_ports):
    """For each of our client ports: True if the server side of the connection has been
    accepted by the worker (its socket has an inode), False if it is still in the listen
    queue; ports not found are left out."""
    wanted = set(client_ports)
    out = {}
    key = ":%04X" % server_port
    try:
        with open("/proc/net/tcp") as f:
            next(f, None)
            for line in f:
                parts = line.split()
                if len(parts) < 10 or not parts[1].endswith(key):
                    continue
                rport = int(parts[2].rsplit(":", 1)[1], 16)
                if rport in wanted:
                    out[rport] = parts[9] != "0"
    except OSError:
        return {p: True for p in wanted}  # no /proc: count from the send, conservatively late
    return out


# ---------------------------------------------------------------------------
# Connections.


class Conn:
    __slots__ = ("inp", "sock", "piece", "off", "resume_at", "t_start", "t_sent", "t_active",
                 "t_accepted", "t_end", "received", "reset", "held", "port", "send_failed",
                 "writing")

    def __init__(self, inp):
        self.inp = inp
        self.sock = None
        self.piece = 0
        self.off = 0
        self.resume_at = None
        self.t_start = self.t_active = time.monotonic()
        self.t_sent = None
        self.t_accepted = None
        self.t_end = None
        self.received = bytearray()
        self.reset = False
        self.held = False
        self.port = None
        self.send_failed = False
        self.writing = True


class Input:
    """Bytes to send and how: pieces [(start, end)] with a pause before each."""

    __slots__ = ("data", "mode", "pieces", "pauses", "desc")

    def __init__(self, data, mode="whole", pieces=None, pauses=None, desc=""):
        self.data = data
        self.mode = mode
        self.pieces = pieces if pieces is not None else ([(0, len(data))] if data else [])
        self.pauses = pauses if pauses is not None else [0.0] * len(self.pieces)
        self.desc = desc

    def to_json(self):
        return {"wire_base64": base64.b64encode(self.data).decode(), "split": self.mode,
                "pieces": self.pieces, "pauses": self.pauses, "mutations": self.desc}

    @classmethod
    def from_json(cls, obj, data=None):
        if data is None:
            data = base64.b64decode(obj["wire_base64"])
        pieces = [tuple(p) for p in obj.get("pieces") or []] or None
        return cls(data, obj.get("split", "whole"), pieces, obj.get("pauses"), obj.get("mutations", ""))


class Pool:
    """Up to `jobs` connections in flight on one selector."""

    def __init__(self, port: int, hang_after: float):
        self.port = port
        self.hang_after = hang_after
        # Look up every connection's accept state, not only the late ones: for replays on an
        # idle server, where few connections are in flight and a hang should show at once.
        self.eager = False
        self.sel = selectors.DefaultSelector()
        self.conns = set()
        self.recent = deque()  # finished connections of the last few seconds (crash triage)
        self._scan_at = 0.0
        self.last_finish = time.monotonic()

    def submit(self, inp: Input):
        c = Conn(inp)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = s.connect_ex(("127.0.0.1", self.port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            raise OSError(err, "connect: %s" % os.strerror(err))
        c.sock = s
        c.port = s.getsockname()[1]
        self.sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
        self.conns.add(c)
        return c

    def _interest(self, c, writing):
        if c.writing != writing and c.sock is not None:
            c.writing = writing
            self.sel.modify(c.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0), c)

    def _send(self, c, now):
        """Send the current piece; one piece per writable event, so pieces go out apart."""
        inp = c.inp
        if c.piece >= len(inp.pieces) or c.send_failed:
            self._interest(c, False)
            return
        start, end = inp.pieces[c.piece]
        try:
            n = c.sock.send(inp.data[start + c.off:end])
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            c.send_failed = True
            self._interest(c, False)
            return
        c.t_active = now
        c.off += n
        if start + c.off < end:
            return
        c.piece += 1
        c.off = 0
        if c.piece >= len(inp.pieces):
            c.t_sent = now
            self._interest(c, False)
        elif inp.pauses[c.piece] > 0:
            c.resume_at = now + inp.pauses[c.piece]
            self._interest(c, False)

    def _finish(self, c, now, held=False):
        c.t_end = now
        c.held = held
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        if held:
            # A reset, so a server that is still reading gets no clean end of stream either.
            try:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        c.sock.close()
        c.sock = None
        self.conns.discard(c)
        self.recent.append(c)
        while self.recent and now - self.recent[0].t_end > 5.0:
            self.recent.popleft()
        self.last_finish = now

    def step(self, timeout=0.05):
        """Run I/O for up to `timeout` seconds; returns the connections that finished."""
        now = time.monotonic()
        for c in self.conns:
            if c.resume_at is not None and c.resume_at <= now:
                c.resume_at = None
                self._interest(c, True)
        waits = [c.resume_at - now for c in self.conns if c.resume_at is not None]
        events = self.sel.select(max(0.0, min([timeout] + waits)))
        now = time.monotonic()
        done = []
        for key, mask in events:
            c = key.data
            if c.sock is None:
                continue
            if mask & selectors.EVENT_READ:
                try:
                    chunk = c.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    chunk = None
                except OSError:
                    c.reset = True
                    chunk = b""
                if chunk is not None:
                    if not chunk:
                        self._finish(c, now)
                        done.append(c)
                        continue
                    c.received += chunk
                    c.t_active = now
            if mask & selectors.EVENT_WRITE and c.sock is not None and c.resume_at is None:
                self._send(c, now)
        done.extend(self._check_held(now))
        return done

    def _check_held(self, now):
        """Connections held past `hang_after` since the worker took them and since the last
        byte moved: closed, and returned as held (suspects)."""
        if now - self._scan_at < 0.25:
            return []
        self._scan_at = now
        late = [c for c in self.conns if now - c.t_active > self.hang_after]
        unknown = [c for c in (self.conns if self.eager else late) if c.t_accepted is None]
        if unknown:
            states = accept_states(self.port, [c.port for c in unknown])
            for c in unknown:
                # Accepted now, or gone from the table after bytes went through (so the
                # server closed it): either way the worker has had it since no later than now.
                if states.get(c.port, c.piece > 0 or c.off > 0):
                    c.t_accepted = now
        if not late:
            return []
        held = [c for c in late if c.t_accepted is not None
                and now - max(c.t_active, c.t_accepted) > self.hang_after]
        for c in held:
            self._finish(c, now, held=True)
        return held

    def close_all(self):
        for c in list(self.conns):
            self._finish(c, time.monotonic(), held=True)
        self.sel.close()


# ---------------------------------------------------------------------------
# The fuzzing run.


class Findings:
    def __init__(self, worker, cmd, seed, save_limit):
        self.dir = FINDINGS_DIR / worker
        self.worker = worker
        self.cmd = cmd
        self.seed = seed
        self.save_limit = save_limit
        self.counts = Counter()
        self.saved = []
        self._saved_per_kind = Counter()

    def _next_path(self, kind):
        self.dir.mkdir(parents=True, exist_ok=True)
        taken = [int(m.group(1)) for p in self.dir.glob(kind + "-*.bin")
                 for m in [re.fullmatch(re.escape(kind) + r"-(\d+)\.bin", p.name)] if m]
        return self.dir / ("%s-%d.bin" % (kind, max(taken, default=0) + 1))

    def add(self, kind, detail, inputs, received=None, extra=None, count=True):
        """Count one finding and save its input(s); returns the .bin path (or None)."""
        if count:
            self.counts[kind] += 1
        print("[%s] %s: %s" % (self.worker, kind.upper(), detail), file=sys.stderr, flush=True)
        if self._saved_per_kind[kind] >= self.save_limit or not inputs:
            return None
        self._saved_per_kind[kind] += 1
        path = self._next_path(kind)
        meta = {"kind": kind, "worker": self.worker, "detail": detail, "cmd": self.cmd,
                "seed": self.seed, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
        meta.update(inputs[0].to_json())
        if received is not None:
            meta["received_base64"] = base64.b64encode(bytes(received)).decode()
        if len(inputs) > 1:
            meta["inputs"] = [i.to_json() for i in inputs]
        if extra:
            meta.update(extra)
        path.write_bytes(inputs[0].data)
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
        self.saved.append(str(path))
        print("[%s]   saved %s" % (self.worker, path), file=sys.stderr, flush=True)
        return path


class Run:
    def __init__(self, args, server: Server, findings: Findings):
        self.args = args
        self.server = server
        self.findings = findings
        self.hang_after = args.timeout + 3.0
        self.pool = Pool(server.port, self.hang_after)
        self.stats = Counter()
        self.statuses = Counter()
        self.suspects = []  # held connections, to replay alone after the run
        self.crash_events = []  # [lines], [(input, seconds its connection lasted)], when
        self.rss = {"start": None, "end": None, "max": None}
        self._last_log_scan = time.monotonic()
        self.master_gone = False

    # -- per-connection results ---------------------------------------------
    def record(self, c: Conn, count=True):
        findings, statuses = check_exchange(c.inp.data, bytes(c.received), c.held)
        if count:
            self.stats["inputs"] += 1
            self.stats["requests_sent"] += c.inp.data.count(b"HTTP/")
            self.stats["responses"] += sum(1 for s, _ in statuses if s >= 200)
            self.stats["interim"] += sum(1 for s, _ in statuses if s < 200)
            self.stats["odd_versions"] += sum(1 for _, v in statuses if v > 1)
            self.statuses.update(str(s) for s, _ in statuses)
            if c.reset:
                self.stats["resets"] += 1
        for kind, detail in findings:
            self.findings.add(kind, detail, [c.inp], c.received, {"held": c.held, "reset": c.reset})
        if c.held and count:
            self.suspects.append(c.inp)
        return findings

    # -- housekeeping -------------------------------------------------------
    def maintain(self, force=False):
        now = time.monotonic()
        if not force and now - self._last_log_scan < 0.5:
            return
        window_start = self._last_log_scan - 1.0
        self._last_log_scan = now
        hits = self.server.scan_log()
        if hits and self.crash_events and now - self.crash_events[-1][2] < 1.5:
            # The rest of the same crash (a worker's death and its replacement often straddle
            # two scans).
            self.crash_events[-1][0].extend(hits)
            self.stats["crash_lines"] += len(hits)
        elif hits:
            cands = [(c.inp, c.t_end - c.t_start) for c in self.pool.recent if c.t_end >= window_start]
            cands += [(c.inp, now - c.t_start) for c in self.pool.conns]
            # Longest first: the connection that kills a worker is usually one it spent long on.
            cands = sorted(cands[-300:], key=lambda t: -t[1])
            self.crash_events.append((hits, cands, now))
            self.stats["crash_lines"] += len(hits)
        if not self.master_gone and not self.server.alive():
            self.master_gone = True
            self.crash_events.append((["master exited with %s" % self.server.proc.returncode],
                                      [(c.inp, 0.0) for c in self.pool.recent]
                                      + [(c.inp, 0.0) for c in self.pool.conns], now))
        rss = self.server.rss_kb()
        if rss is not None:
            self.rss["max"] = max(self.rss["max"] or 0, rss)

    def drive(self, source, until, jobs):
        """Keep `jobs` connections in flight with inputs from `source` until the deadline,
        then let the ones in flight finish."""
        while time.monotonic() < until and not self.master_gone:
            while len(self.pool.conns) < jobs:
                inp = source()
                if inp is None:
                    break
                try:
                    self.pool.submit(inp)
                except OSError as exc:
                    self.stats["connect_errors"] += 1
                    if self.stats["connect_errors"] % 100 == 1:
                        print("[%s] connect failed: %s" % (self.findings.worker, exc), file=sys.stderr)
                    time.sleep(0.05)
                    break
            if not self.pool.conns:
                self.maintain()
                continue
            for c in self.pool.step():
                self.record(c)
            self.maintain()
            self.progress()
            if self.stalled():
                return
        self.drain()

    def drain(self):
        while self.pool.conns and not self.master_gone:
            for c in self.pool.step():
                self.record(c)
            self.maintain()
            if self.stalled():
                return

    def stalled(self):
        """Nothing finished for three hang periods while connections wait: the server stopped
        serving (none of them got accepted, or they are all still within their time)."""
        now = time.monotonic()
        if self.pool.conns and now - self.pool.last_finish > 3 * self.hang_after:
            waiting = sorted(self.pool.conns, key=lambda c: c.t_start)
            self.findings.add("hang", "stall: no connection finished for %.0fs with %d in flight "
                              "(%d accepted)" % (now - self.pool.last_finish, len(waiting),
                                                 sum(1 for c in waiting if c.t_accepted)),
                              [c.inp for c in waiting[:50]])
            self.pool.close_all()
            self.pool = Pool(self.server.port, self.hang_after)
            return True
        return False

    _last_progress = 0.0

    def progress(self):
        now = time.monotonic()
        if now - self._last_progress < 10:
            return
        if self._last_progress:
            el = now - self.t0
            print("[%s] %5.0fs  inputs=%d (%.1f/s)  in flight=%d  rss=%skB  suspects=%d  %s" % (
                self.findings.worker, el, self.stats["inputs"], self.stats["inputs"] / el,
                len(self.pool.conns), self.server.rss_kb(), len(self.suspects),
                " ".join("%s=%d" % (k, self.findings.counts[k]) for k in KINDS)),
                file=sys.stderr, flush=True)
        self._last_progress = now

    # -- the phases ---------------------------------------------------------
    def warm_up(self):
        """Each hand-written request once, unmutated: they must all get a 200."""
        conns = [self.pool.submit(Input(d, desc="warm-up")) for d in HAND_WRITTEN]
        self.drain()
        for c in conns:
            statuses = [s for s in parse_responses(bytes(c.received), True)[0] if s["status"] >= 200]
            if not statuses or statuses[0]["status"] != 200:
                print("[%s] warning: warm-up request %r got %r" % (
                    self.findings.worker, c.inp.data[:40], bytes(c.received[:80])), file=sys.stderr)
        time.sleep(0.5)
        self.maintain(force=True)
        self.rss["start"] = self.server.rss_kb()

    def fuzz(self, seconds, mutator, rng):
        self.t0 = time.monotonic()

        def source():
            data, desc = mutator.generate()
            mode, pieces, pauses = choose_split(rng, data)
            return Input(data, mode, pieces, pauses, desc)

        try:
            self.drive(source, self.t0 + seconds, self.args.jobs)
        finally:
            self.elapsed = time.monotonic() - self.t0
        self.maintain(force=True)
        self.rss["end"] = self.server.rss_kb()

    def replay_alone(self, inputs, jobs=None, deadline=None):
        """Send `inputs` (concurrently, on an otherwise idle server) and wait for them all;
        returns their connections."""
        queue = deque(inputs)
        started = []

        def source():
            if not queue:
                return None
            return queue.popleft()

        jobs = jobs or len(inputs)
        self.pool.eager = True
        while (queue or self.pool.conns) and not self.master_gone:
            if deadline is not None and time.monotonic() > deadline:
                queue.clear()
            while queue and len(self.pool.conns) < jobs:
                started.append(self.pool.submit(source()))
            for c in self.pool.step():
                pass
            if self.stalled():
                break
        self.pool.eager = False
        return started

    def confirm_suspects(self, budget):
        """Replay each held connection alone; held again is a hang."""
        deadline = time.monotonic() + budget
        seen = set()
        checked = 0
        for inp in self.suspects:
            if inp.data in seen:
                continue
            seen.add(inp.data)
            if time.monotonic() > deadline or self.master_gone:
                break
            checked += 1
            (c,) = self.replay_alone([inp])
            if c.held:
                self.findings.add("hang", "connection held over %.0fs past the worker taking it "
                                  "and past its last byte (timeout %ss), also when replayed alone" % (
                                      self.hang_after, self.args.timeout),
                                  [inp], c.received, {"held": True})
        self.stats["suspects"] = len(self.suspects)
        self.stats["suspects_confirmed"] = self.findings.counts["hang"]
        self.stats["suspects_unchecked"] = len({i.data for i in self.suspects}) - checked

    def triage_crashes(self, budget, max_events=3):
        """Count every crash event; narrow the first few down to the input(s) that cause
        them by replaying the inputs in flight around them, in halves."""
        deadline = time.monotonic() + budget
        n = -1
        while self.crash_events:
            n += 1
            lines, cands, _ = self.crash_events.pop(0)
            detail = "; ".join(lines[:6]) + (" ..." if len(lines) > 6 else "")
            group = cands
            narrowed = ""
            if n < max_events and cands and not self.master_gone and time.monotonic() < deadline:
                group, narrowed = self._narrow(cands, deadline)
            elif n >= max_events:
                narrowed = " (not narrowed down: only the first %d crashes are)" % max_events
            if group is cands:
                group = [i for i, _ in cands]
            self.findings.add("crash", detail + narrowed, group,
                              extra={"log_lines": lines, "candidates": len(cands)})

    def _reproduces(self, group, deadline):
        self.stats["crash_lines"] += len(self.server.scan_log())  # late lines of the last try
        self.replay_alone(group, jobs=32, deadline=deadline)
        time.sleep(0.5)
        hits = self.server.scan_log()
        self.stats["crash_lines"] += len(hits)
        return bool(hits) or not self.server.alive()

    def _narrow(self, cands, deadline):
        """Replay the slow candidates (the connection that kills a worker is usually one the
        server spent long on), then all of them, then halve whichever reproduced."""
        slow = [i for i, d in cands if d >= 1.0]
        for group in ([slow] if 0 < len(slow) < len(cands) else []) + [[i for i, _ in cands]]:
            if time.monotonic() < deadline and self._reproduces(group, deadline):
                break
        else:
            return [i for i, _ in cands], " (not reproduced by replaying the %d inputs around it)" % len(cands)
        while len(group) > 1 and time.monotonic() < deadline and self.server.alive():
            half = len(group) // 2
            a, b = group[:half], group[half:]
            if self._reproduces(a, deadline):
                group = a
            elif self._reproduces(b, deadline):
                group = b
            else:
                break
        return group, " (reproduced by %d input(s) of %d)" % (len(group), len(cands))


def summary(args, run: Run, findings: Findings, interrupted):
    run.rss["max"] = max([v for v in run.rss.values() if v is not None], default=None)
    s = {
        "worker": args.worker, "cmd": args.cmd, "seed": args.seed,
        "seconds": round(getattr(run, "elapsed", 0.0), 1),
        "inputs": run.stats["inputs"],
        "inputs_per_sec": round(run.stats["inputs"] / max(getattr(run, "elapsed", 0.0), 1e-9), 1),
        "requests_sent": run.stats["requests_sent"],
        "responses": run.stats["responses"],
        "interim_responses": run.stats["interim"],
        "statuses": dict(sorted(run.statuses.items())),
        "resets": run.stats["resets"],
        "connect_errors": run.stats["connect_errors"],
        "odd_versions": run.stats["odd_versions"],
        "crashes": findings.counts["crash"],
        "hangs": findings.counts["hang"],
        "desyncs": findings.counts["desync"],
        "bad_responses": findings.counts["bad"],
        "suspects": run.stats["suspects"],
        "suspects_unchecked": run.stats["suspects_unchecked"],
        "crash_log_lines": run.stats["crash_lines"],
        "rss_start_kb": run.rss["start"], "rss_end_kb": run.rss["end"], "rss_max_kb": run.rss["max"],
        "saved": findings.saved,
        "interrupted": interrupted,
    }
    return s


def start_server(args, workdir):
    server = Server(args.cmd, args.worker, args.timeout, args.threads, workdir)
    try:
        server.wait_ready()
    except Exception:
        server.stop()
        raise
    return server


def fuzz_main(args):
    rng = random.Random(args.seed)
    valid, invalid = load_seeds(args.conformance)
    if not valid and not invalid:
        print("warning: no conformance seeds under %s; using the hand-written ones only" % args.conformance,
              file=sys.stderr)
    mutator = Mutator(rng, valid, invalid)
    workdir = Path(tempfile.mkdtemp(prefix="ferrocorn-server-fuzz-"))
    findings = Findings(args.worker, args.cmd, args.seed, args.save_limit)
    server = None
    interrupted = False
    run = None
    try:
        server = start_server(args, workdir)
        server.scan_log()
        print("[%s] server pid %d, worker pid %s, port %d; seed %d; %d valid + %d invalid seeds" % (
            args.worker, server.proc.pid, server.worker_pid, server.port, args.seed,
            len(valid), len(invalid)), file=sys.stderr, flush=True)
        run = Run(args, server, findings)
        try:
            run.warm_up()
            run.fuzz(args.seconds, mutator, rng)
            run.confirm_suspects(budget=max(30.0, args.seconds * 0.1))
            run.maintain(force=True)  # crashes while confirming are crashes too
            run.triage_crashes(budget=max(60.0, args.seconds * 0.1))
        except Interrupted:
            interrupted = True
            run.pool.close_all()
            run.maintain(force=True)
            run.rss["end"] = run.rss["end"] or server.rss_kb()
            for lines, cands, _ in run.crash_events:
                findings.add("crash", "; ".join(lines[:6]), [i for i, _ in cands], extra={"log_lines": lines})
    finally:
        if run is not None:
            run.pool.close_all()
        if server is not None:
            server.stop()
            if findings.counts["crash"]:
                keep = findings.dir / ("server-%d.log" % args.seed)
                keep.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(server.log_path, keep)
                print("[%s] server log kept as %s" % (args.worker, keep), file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
    s = summary(args, run, findings, interrupted)
    print("server-fuzz %s: %d inputs in %.0fs (%.1f/s), %d requests sent, %d responses; "
          "crashes=%d hangs=%d desyncs=%d bad=%d; rss start/end/max %s/%s/%s kB%s" % (
              args.worker, s["inputs"], s["seconds"], s["inputs_per_sec"], s["requests_sent"],
              s["responses"], s["crashes"], s["hangs"], s["desyncs"], s["bad_responses"],
              s["rss_start_kb"], s["rss_end_kb"], s["rss_max_kb"],
              " (interrupted)" if interrupted else ""))
    print(json.dumps(s, indent=1))
    return 1 if any(findings.counts[k] for k in KINDS) else (130 if interrupted else 0)


def replay_main(args):
    """Replay saved inputs, one file at a time, each on the same fresh server."""
    files = [Path(f) for f in args.replay]
    loaded = []
    for f in files:
        data = f.read_bytes()
        meta = {}
        side = f.with_suffix(".json")
        if side.exists():
            meta = json.loads(side.read_text())
        if "inputs" in meta:
            inputs = [Input.from_json(o) for o in meta["inputs"]]
        elif meta:
            inputs = [Input.from_json(meta, data)]
        else:
            inputs = [Input(data)]
        if args.whole:
            inputs = [Input(i.data) for i in inputs]
        loaded.append((f, meta, inputs))
        if args.worker is None and meta.get("worker"):
            args.worker = meta["worker"]
    args.worker = args.worker or "sync"
    workdir = Path(tempfile.mkdtemp(prefix="ferrocorn-server-replay-"))
    findings = Findings(args.worker, args.cmd, None, 0)
    status = 0
    server = None
    try:
        server = start_server(args, workdir)
        server.scan_log()
        run = Run(args, server, findings)
        for f, meta, inputs in loaded:
            print("== %s (%d input(s); %s)" % (f, len(inputs), meta.get("detail", "no sidecar")))
            t = time.monotonic()
            conns = run.replay_alone(inputs, jobs=32)
            time.sleep(0.5)
            hits = server.scan_log()
            for c in conns:
                print("-- sent %d bytes split %s in %d piece(s): %r" % (
                    len(c.inp.data), c.inp.mode, len(c.inp.pieces), c.inp.data[:600]))
                print("   received %d bytes%s%s in %.2fs: %r" % (
                    len(c.received), ", then reset" if c.reset else "",
                    ", HELD (closed by us)" if c.held else "", c.t_end - c.t_start,
                    bytes(c.received[:1200])))
                found, statuses = check_exchange(c.inp.data, bytes(c.received), c.held)
                if c.held:
                    found.append(("hang", "held past %.1fs" % run.hang_after))
                print("   statuses %s; findings: %s" % ([s for s, _ in statuses], found or "none"))
                status |= 1 if found else 0
            if hits or not server.alive():
                status = 1
                print("   server log: " + "\n   server log: ".join(hits or ["master exited"]))
            print("   (%.2fs)" % (time.monotonic() - t))
            if not server.alive():
                break
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return status


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", choices=("sync", "gthread"), default=None,
                   help="worker class (default sync; for --replay, the one the finding was saved with)")
    p.add_argument("--seconds", type=float, default=60.0, help="how long to fuzz (default 60)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    p.add_argument("--cmd", default=str(REPO_ROOT / ".venv" / "bin" / "ferrocorn"),
                   help="server command, split like a shell would (default .venv/bin/ferrocorn)")
    p.add_argument("--jobs", type=int, default=32, help="connections in flight (default 32)")
    p.add_argument("--timeout", type=int, default=3, help="the server's --timeout (default 3)")
    p.add_argument("--threads", type=int, default=4, help="gthread threads (default 4)")
    p.add_argument("--replay", action="append", metavar="FILE",
                   help="replay a saved finding (.bin, with its .json if present); repeatable")
    p.add_argument("--whole", action="store_true", help="with --replay: send each input in one piece")
    p.add_argument("--save-limit", type=int, default=20, help="findings saved per kind (default 20)")
    p.add_argument("--conformance", type=Path, default=CONFORMANCE_DIR, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 32)

    def on_signal(signum, frame):
        # Once: the cleanup that follows (stopping the server) must not be interrupted.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise Interrupted()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        if args.replay:
            return replay_main(args)
        args.worker = args.worker or "sync"
        return fuzz_main(args)
    except RuntimeError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
