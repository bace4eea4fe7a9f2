#!/usr/bin/env python3
"""Seeds fuzz/corpus/<target>/ from the Gunicorn conformance vectors.

Each seed is the five-byte header that src/lib.rs decodes (settings from the vector's config, one
of several cutting modes) followed by wire bytes: the whole request for `request_head`, and the
bytes after the head of chunked requests for `chunked`. The corpus is generated, never committed.

Usage: corpus.py VECTORS_DIR OUT_DIR
"""
import base64
import glob
import hashlib
import json
import os
import sys

# Cutting bytes: one byte at a time, after every LF, first byte alone, random pieces of 1..6
# bytes, random pieces of up to 16 KiB.
CUTS = (0x00, 0x01, 0x02, 0x03 | (5 << 2), 0x03 | (26 << 2))

# Hand-made chunked bodies for states the vectors reach rarely: extensions, trailers, bad
# terminators, an overlong size, a bare LF in a trailer.
EXTRA_CHUNKED = (
    b"5\r\nhello\r\n6; a=b\r\n world\r\n0\r\nVary: *\r\n\r\nGET /",
    b"1e\r\nall your base are belong to us\r\n0\r\n\r\n",
    b"5\r\nhelloxy",
    b"0\r\nX: a\nY",
    b"ffffffffffffffffff\r\n",
    b"3;ext=\"quoted\\\" value\"\r\nabc\r\n0\r\nA: b\r\n c\r\n\r\n",
)


def settings_bytes(config):
    flags = 0
    for bit, key in enumerate((
        "permit_unconventional_http_method",
        "permit_unconventional_http_version",
        "casefold_http_method",
        "permit_obsolete_folding",
        "strip_header_spaces",
    )):
        if config.get(key):
            flags |= 1 << bit
    flags |= {"refuse": 1, "dangerous": 2}.get(config.get("header_map"), 0) << 5
    if config.get("forwarded_allow_ips") == "*":
        flags |= 0x80

    def limit(key, special, itself):
        """The header byte for a limit: a special code, the value itself, or the default (0)."""
        if key not in config:
            return 0
        value = int(config[key])
        if value in special:
            return special[value]
        return value if value in itself else 0

    line = limit("limit_request_line", {4094: 0, 0: 1, -1: 2, 8200: 3}, range(4, 256))
    fields = limit("limit_request_fields", {100: 0, 0: 255}, range(1, 255))
    field_size = limit("limit_request_field_size", {8190: 0, 0: 1, 8210: 2}, range(3, 256))
    return bytes((flags, line, fields, field_size))


def chunked_body(wire):
    """The bytes after the head when the head asks for chunked framing, else None."""
    start = 2 if wire.startswith(b"\r\n") else 0
    end = wire.find(b"\r\n\r\n", start)
    if end < 0:
        return None
    head = wire[start:end].lower()
    if b"transfer-encoding" not in head or b"chunked" not in head:
        return None
    return wire[end + 4:]


def write(directory, seed):
    name = hashlib.sha1(seed).hexdigest()
    with open(os.path.join(directory, name), "wb") as out:
        out.write(seed)


def main():
    vectors, out = sys.argv[1], sys.argv[2]
    heads = os.path.join(out, "request_head")
    chunked = os.path.join(out, "chunked")
    os.makedirs(heads, exist_ok=True)
    os.makedirs(chunked, exist_ok=True)
    counts = {"request_head": 0, "chunked": 0}
    bodies = list(EXTRA_CHUNKED)
    for path in sorted(glob.glob(os.path.join(vectors, "*", "*.json"))):
        with open(path) as f:
            vector = json.load(f)
        wire = base64.b64decode(vector["wire_base64"])
        settings = settings_bytes(vector.get("config", {}))
        for cut in CUTS:
            write(heads, settings + bytes((cut,)) + wire)
            counts["request_head"] += 1
        body = chunked_body(wire)
        if body is not None:
            bodies.append(body)
    for body in bodies:
        for cut in CUTS:
            write(chunked, bytes(4) + bytes((cut,)) + body)
            counts["chunked"] += 1
    print(f"seeded {counts['request_head']} request_head and {counts['chunked']} chunked inputs")


if __name__ == "__main__":
    main()
