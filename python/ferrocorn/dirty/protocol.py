"""Wire format of the dirty arbiter, byte-compatible with Gunicorn 27's.

Every message is a 16-byte header ``>2sBBIQ`` (magic ``GD``, version 1, message type,
payload length, request id) followed by a TLV-encoded payload (a dict, or nothing).
TLV codes: 00 None, 01 bool, 05 int64, 06 float64, 10 bytes, 11 UTF-8 str, 20 list,
21 dict with str keys; lengths and counts are big-endian u32.

This module owns encoding, decoding and reading whole frames from a blocking socket or an
asyncio stream. It knows nothing of apps, workers or routing.
"""

import asyncio
import struct

from .errors import DirtyError, DirtyProtocolError

MAGIC = b"GD"
VERSION = 1

MSG_REQUEST = 0x01
MSG_RESPONSE = 0x02
MSG_ERROR = 0x03
MSG_CHUNK = 0x04
MSG_END = 0x05
MSG_STASH = 0x10
MSG_STATUS = 0x11
MSG_MANAGE = 0x12
# ferrocorn-internal, not in Gunicorn's protocol: per-call stream flow control. The
# arbiter sends PAUSE / RESUME (empty payload, the worker's request id) to a worker whose
# stream outruns its client; ferrocorn's async client sends them to the arbiter (its own
# request id) when a stream's queue is not being read. A Gunicorn peer never sends them.
MSG_PAUSE = 0x13
MSG_RESUME = 0x14
MSG_TYPES = frozenset(
    (
        MSG_REQUEST,
        MSG_RESPONSE,
        MSG_ERROR,
        MSG_CHUNK,
        MSG_END,
        MSG_STASH,
        MSG_STATUS,
        MSG_MANAGE,
        MSG_PAUSE,
        MSG_RESUME,
    )
)

STASH_OP_PUT = 1
STASH_OP_GET = 2
STASH_OP_DELETE = 3
STASH_OP_KEYS = 4
STASH_OP_CLEAR = 5
STASH_OP_INFO = 6
STASH_OP_ENSURE = 7
STASH_OP_DELETE_TABLE = 8
STASH_OP_TABLES = 9
STASH_OP_EXISTS = 10

MANAGE_OP_ADD = 1
MANAGE_OP_REMOVE = 2

HEADER = struct.Struct(">2sBBIQ")
HEADER_SIZE = HEADER.size
MAX_MESSAGE_SIZE = 64 * 1024 * 1024
MAX_BLOB_SIZE = 64 * 1024 * 1024
MAX_ITEMS = 1024 * 1024
# Lists and dicts nest at most this deep (the payload dict itself is level 1): deeper
# data, or a container holding itself, is refused rather than exhausting the stack.
MAX_DEPTH = 500

_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")
_TAG_U32 = struct.Struct(">BI")
_TAG_I64 = struct.Struct(">Bq")
_TAG_F64 = struct.Struct(">Bd")
_NONE = b"\x00"
_TRUE = b"\x01\x01"
_FALSE = b"\x01\x00"


# ---- TLV -----------------------------------------------------------------------------------


def _too_deep():
    return DirtyProtocolError("Data nested too deeply (max depth: %d)" % MAX_DEPTH)


def _encode_into(value, out, depth=0):
    # Exact type checks first: they are the common case and cheaper than isinstance chains.
    t = type(value)
    if t is str:
        data = value.encode("utf-8")
        if len(data) > MAX_BLOB_SIZE:
            raise DirtyProtocolError(
                "String too large: %d bytes (max: %d)" % (len(data), MAX_BLOB_SIZE)
            )
        out.append(_TAG_U32.pack(0x11, len(data)))
        out.append(data)
    elif value is None:
        out.append(_NONE)
    elif t is bool:
        out.append(_TRUE if value else _FALSE)
    elif isinstance(value, int):  # bool cannot be subclassed: it was caught just above
        try:
            out.append(_TAG_I64.pack(0x05, value))
        except struct.error:
            raise DirtyProtocolError("Integer out of int64 range: %d" % value) from None
    elif isinstance(value, float):
        out.append(_TAG_F64.pack(0x06, value))
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if len(data) > MAX_BLOB_SIZE:
            raise DirtyProtocolError(
                "Bytes too large: %d bytes (max: %d)" % (len(data), MAX_BLOB_SIZE)
            )
        out.append(_TAG_U32.pack(0x10, len(data)))
        out.append(data)
    elif isinstance(value, str):  # a str subclass
        _encode_into(str(value), out, depth)
    elif isinstance(value, (list, tuple)):
        if depth >= MAX_DEPTH:
            raise _too_deep()
        if len(value) > MAX_ITEMS:
            raise DirtyProtocolError("List too large: %d items (max: %d)" % (len(value), MAX_ITEMS))
        out.append(_TAG_U32.pack(0x20, len(value)))
        for item in value:
            _encode_into(item, out, depth + 1)
    elif isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise _too_deep()
        if len(value) > MAX_ITEMS:
            raise DirtyProtocolError("Dict too large: %d items (max: %d)" % (len(value), MAX_ITEMS))
        out.append(_TAG_U32.pack(0x21, len(value)))
        for k, v in value.items():
            # Gunicorn sends non-string keys as their str(); peers expect the same.
            _encode_into(k if type(k) is str else str(k), out, depth + 1)
            _encode_into(v, out, depth + 1)
    else:
        raise DirtyProtocolError("Unsupported type for TLV encoding: %s" % t.__name__)


def encode(value):
    """TLV bytes of ``value``; DirtyProtocolError for a type or size the format cannot carry."""
    out = []
    _encode_into(value, out)
    return b"".join(out)


def _truncated(what, buf, pos):
    return DirtyProtocolError("Truncated TLV data: %s" % what, raw_data=bytes(buf[pos : pos + 20]))


def _decode_at(buf, pos, end, depth=0):
    if pos >= end:
        raise _truncated("no type byte", buf, pos)
    tag = buf[pos]
    pos += 1
    if tag == 0x11 or tag == 0x10:
        if pos + 4 > end:
            raise _truncated("incomplete length", buf, pos - 1)
        (n,) = _U32.unpack_from(buf, pos)
        pos += 4
        if n > MAX_BLOB_SIZE:
            raise DirtyProtocolError("Value too large: %d bytes (max: %d)" % (n, MAX_BLOB_SIZE))
        if pos + n > end:
            raise _truncated("expected %d bytes, got %d" % (n, end - pos), buf, pos)
        raw = bytes(buf[pos : pos + n])
        if tag == 0x10:
            return raw, pos + n
        try:
            return raw.decode("utf-8"), pos + n
        except UnicodeDecodeError as e:
            raise DirtyProtocolError("Invalid UTF-8 in string: %s" % e) from None
    if tag == 0x05:
        if pos + 8 > end:
            raise _truncated("incomplete int64", buf, pos - 1)
        return _I64.unpack_from(buf, pos)[0], pos + 8
    if tag == 0x00:
        return None, pos
    if tag == 0x01:
        if pos >= end:
            raise _truncated("missing bool value", buf, pos - 1)
        return buf[pos] != 0, pos + 1
    if tag == 0x06:
        if pos + 8 > end:
            raise _truncated("incomplete float64", buf, pos - 1)
        return _F64.unpack_from(buf, pos)[0], pos + 8
    if tag == 0x20 or tag == 0x21:
        if depth >= MAX_DEPTH:
            raise _too_deep()
        if pos + 4 > end:
            raise _truncated("incomplete count", buf, pos - 1)
        (n,) = _U32.unpack_from(buf, pos)
        pos += 4
        if n > MAX_ITEMS:
            raise DirtyProtocolError("Container too large: %d items (max: %d)" % (n, MAX_ITEMS))
        if tag == 0x20:
            items = []
            append = items.append
            for _ in range(n):
                item, pos = _decode_at(buf, pos, end, depth + 1)
                append(item)
            return items, pos
        result = {}
        for _ in range(n):
            key, pos = _decode_at(buf, pos, end, depth + 1)
            if type(key) is not str:
                raise DirtyProtocolError("Dict key must be string, got %s" % type(key).__name__)
            result[key], pos = _decode_at(buf, pos, end, depth + 1)
        return result, pos
    raise DirtyProtocolError(
        "Unknown TLV type code: 0x%02x" % tag, raw_data=bytes(buf[pos - 1 : pos + 20])
    )


def decode(data):
    """The value TLV ``data`` holds; DirtyProtocolError if malformed or followed by more bytes."""
    buf = memoryview(data)
    value, pos = _decode_at(buf, 0, len(buf))
    if pos != len(buf):
        raise DirtyProtocolError(
            "Trailing data after TLV: %d bytes" % (len(buf) - pos),
            raw_data=bytes(buf[pos : pos + 20]),
        )
    return value


# ---- frames --------------------------------------------------------------------------------


def frame(msg_type, request_id, payload=None):
    """One whole message: header plus the TLV of ``payload`` (a dict), or no payload if None."""
    body = b"" if payload is None else encode(payload)
    if len(body) > MAX_MESSAGE_SIZE:
        raise DirtyProtocolError(
            "Message too large: %d bytes (max: %d)" % (len(body), MAX_MESSAGE_SIZE)
        )
    return HEADER.pack(MAGIC, VERSION, msg_type, len(body), request_id) + body


def raw_frame(msg_type, request_id, body):
    """A message around an already encoded payload (the arbiter forwards payloads as is)."""
    return HEADER.pack(MAGIC, VERSION, msg_type, len(body), request_id) + body


def parse_header(data):
    """``(msg_type, request_id, length)`` of a 16-byte header, checked."""
    magic, version, msg_type, length, request_id = HEADER.unpack(data)
    if magic != MAGIC:
        raise DirtyProtocolError("Invalid magic: %r, expected %r" % (magic, MAGIC), raw_data=data)
    if version != VERSION:
        raise DirtyProtocolError(
            "Unsupported protocol version: %d, expected %d" % (version, VERSION)
        )
    if msg_type not in MSG_TYPES:
        raise DirtyProtocolError("Unknown message type: 0x%02x" % msg_type, raw_data=data)
    if length > MAX_MESSAGE_SIZE:
        raise DirtyProtocolError(
            "Message too large: %d bytes (max: %d)" % (length, MAX_MESSAGE_SIZE)
        )
    return msg_type, request_id, length


def decode_payload(body):
    """The payload dict of a message body (empty body: empty dict)."""
    if not body:
        return {}
    value = decode(body)
    if not isinstance(value, dict):
        raise DirtyProtocolError("Payload is a %s, expected a dict" % type(value).__name__)
    return value


def request_payload(app_path, action, args, kwargs):
    return {"app_path": app_path, "action": action, "args": list(args), "kwargs": dict(kwargs)}


def error_payload(error):
    """``{"error": ...}`` for a DirtyError, or for any exception by its class name."""
    if isinstance(error, DirtyError):
        return {"error": error.to_dict()}
    return {"error": {"error_type": type(error).__name__, "message": str(error), "details": {}}}


# ---- blocking sockets ----------------------------------------------------------------------


def _recv_exactly(sock, n):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            if got == 0:
                raise EOFError("connection closed")
            raise DirtyProtocolError("Connection closed after %d of %d bytes" % (got, n))
        got += k
    return bytes(buf)


def recv_message(sock):
    """Read one message from a blocking socket: ``(msg_type, request_id, payload dict)``.

    EOFError if the peer closed before a new message began.
    """
    msg_type, request_id, length = parse_header(_recv_exactly(sock, HEADER_SIZE))
    body = _recv_exactly(sock, length) if length else b""
    return msg_type, request_id, decode_payload(body)


# ---- asyncio streams -----------------------------------------------------------------------


async def read_frame(reader):
    """Read one message from an asyncio stream: ``(msg_type, request_id, raw body)``.

    EOFError if the peer closed before a new message began.
    """
    try:
        header = await reader.readexactly(HEADER_SIZE)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            raise EOFError("connection closed") from None
        raise DirtyProtocolError("Incomplete header: %d bytes" % len(e.partial)) from None
    msg_type, request_id, length = parse_header(header)
    if not length:
        return msg_type, request_id, b""
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError as e:
        raise DirtyProtocolError(
            "Incomplete payload: %d of %d bytes" % (len(e.partial), length)
        ) from None
    return msg_type, request_id, body


async def read_message(reader):
    """Like read_frame, with the payload decoded to a dict."""
    msg_type, request_id, body = await read_frame(reader)
    return msg_type, request_id, decode_payload(body)
