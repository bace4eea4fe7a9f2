"""Inputs: the seeds (conformance corpus and hand-written requests) and the mutations.

``Mutator.generate()`` makes one input: 1-5 mutated requests pipelined, with a description of
the mutations applied.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
from pathlib import Path


MAX_INPUT = 64 * 1024

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
