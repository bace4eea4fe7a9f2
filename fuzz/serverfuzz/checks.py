"""What came back: parsing HTTP/1.x responses and the per-connection checks (``bad``,
``desync`` and ``status`` findings).
"""

from __future__ import annotations

import re


# Any HTTP/1 minor version: like Gunicorn, the server echoes a request's `HTTP/1.9` in its
# status line; the harness counts those (odd_versions) but judges only framing.
STATUS_RE = re.compile(rb"HTTP/1\.(\d) (\d{3})(?: [^\r\n]*)?\r\n")
HEADER_RE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*")

# Final statuses the server must never send to the harness's app, whatever the request: the
# app never fails (an exception it raises also logs a traceback, a crash), so a 500 means the
# server decided on its own that the call went wrong. (The ASGI worker answers 500 when the
# app returns without a complete response, which this app never does while it has a client.)
NEVER_STATUSES = {500: "the app never fails"}


def parse_responses(data: bytes, head_allowed: bool):
    """Parse `data` as a sequence of HTTP/1.x responses.

    Returns (responses, problem): each response is a dict with status, headers (lower-cased
    name, value), start and end offsets; problem is None or why the rest does not parse.
    `head_allowed`: a HEAD request may be among the requests, so a response with a
    Content-Length may have no body: it is followed at once by the end of the data or, if it
    keeps the connection, by the next status line. A `Connection: close` response must carry
    its body even when that starts with `HTTP/1.`: the ASGI worker's error responses (as
    Gunicorn's) have the bare message as their body, and a message can quote the request's
    version (Gunicorn's 400 for `HTTP/1.P/1.1` is the body `HTTP/1.P/1.1`)."""
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
            closing = any(k == b"connection" and b"close" in v.lower() for k, v in headers)
            if length and head_allowed and (
                    body == len(data) or (not closing and data.startswith(b"HTTP/1.", body))):
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
        if r["status"] in NEVER_STATUSES:
            findings.append(("status", "final status %d (%s): %r" % (
                r["status"], NEVER_STATUSES[r["status"]], received[r["start"]:r["start"] + 160])))
            break
    for r in finals:
        closing = any(k == b"connection" and b"close" in v.lower() for k, v in r["headers"])
        if (r["status"] != 200 or closing) and r["end"] < len(received):
            why = "status %d" % r["status"] if r["status"] != 200 else "Connection: close"
            findings.append(("desync", "%d bytes after a final response with %s: %r" % (
                len(received) - r["end"], why, received[r["end"]:r["end"] + 80])))
            break
    return findings, [(r["status"], r["minor"]) for r in responses]
