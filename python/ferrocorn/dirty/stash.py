"""The stash: named key/value tables kept in the dirty arbiter's memory, shared by every
HTTP worker and dirty worker of one server (``gunicorn.dirty.stash``'s API).

The client half (``StashClient``, ``StashTable`` and the module functions, one connection
per thread) sends STASH frames to the arbiter; ``handle_stash`` is the arbiter's half.
Each operation is atomic on its own (the arbiter runs them one at a time); there are no
multi-operation transactions.
"""

import fnmatch
import itertools
import os
import socket
import threading

from . import protocol as P
from .errors import DirtyError, DirtyProtocolError


class StashError(DirtyError):
    """A stash operation failed."""


class StashTableNotFoundError(StashError):
    def __init__(self, table_name):
        self.table_name = table_name
        super().__init__("Stash table not found: %s" % table_name)


class StashKeyNotFoundError(StashError):
    def __init__(self, table_name, key):
        self.table_name = table_name
        self.key = key
        super().__init__("Key not found in %s: %s" % (table_name, key))


class StashClient:
    """A blocking connection to the arbiter's stash; thread-safe (one call at a time)."""

    def __init__(self, socket_path, timeout=30.0):
        self.socket_path = socket_path
        self.timeout = timeout
        self._sock = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def _connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError as e:
            sock.close()
            raise StashError("Failed to connect to arbiter: %s" % e) from e
        self._sock = sock

    def _close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def _execute(self, op, table, key=None, value=None, pattern=None):
        msg = {"op": op, "table": table}
        if key is not None:
            msg["key"] = key
        if value is not None:
            msg["value"] = value
        if pattern is not None:
            msg["pattern"] = pattern
        data = P.frame(P.MSG_STASH, 0, msg)
        with self._lock:
            for attempt in (1, 2):
                if self._sock is None:
                    self._connect()
                rid = next(self._ids)
                data = data[:8] + rid.to_bytes(8, "big") + data[16:]
                try:
                    self._sock.sendall(data)
                except OSError as e:
                    # Not delivered (the arbiter was restarted): safe to send once more.
                    self._close()
                    if attempt == 2:
                        raise StashError("Stash operation failed: %s" % e) from e
                    continue
                try:
                    msg_type, _, reply = P.recv_message(self._sock)
                except (OSError, EOFError, DirtyProtocolError) as e:
                    self._close()
                    raise StashError("Stash operation failed: %s" % e) from e
                break
        if msg_type == P.MSG_RESPONSE:
            return reply.get("result")
        if msg_type == P.MSG_ERROR:
            err = reply.get("error") or {}
            kind = err.get("error_type")
            if kind == "StashTableNotFoundError":
                raise StashTableNotFoundError(table)
            if kind == "StashKeyNotFoundError":
                raise StashKeyNotFoundError(table, key)
            raise StashError(err.get("message") or "Unknown stash error")
        raise StashError("Unexpected response type: 0x%02x" % msg_type)

    def put(self, table, key, value):
        self._execute(P.STASH_OP_PUT, table, key=key, value=value)

    def get(self, table, key, default=None):
        try:
            return self._execute(P.STASH_OP_GET, table, key=key)
        except StashKeyNotFoundError:
            return default

    def delete(self, table, key):
        return self._execute(P.STASH_OP_DELETE, table, key=key)

    def keys(self, table, pattern=None):
        return self._execute(P.STASH_OP_KEYS, table, pattern=pattern)

    def clear(self, table):
        self._execute(P.STASH_OP_CLEAR, table)

    def info(self, table):
        return self._execute(P.STASH_OP_INFO, table)

    def ensure(self, table):
        self._execute(P.STASH_OP_ENSURE, table)

    def exists(self, table, key=None):
        return self._execute(P.STASH_OP_EXISTS, table, key=key)

    def delete_table(self, table):
        self._execute(P.STASH_OP_DELETE_TABLE, table)

    def tables(self):
        return self._execute(P.STASH_OP_TABLES, "")

    def table(self, name):
        return StashTable(self, name)

    def close(self):
        with self._lock:
            self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class StashTable:
    """A dict-like view of one stash table."""

    def __init__(self, client, name):
        self._client = client
        self._name = name

    @property
    def name(self):
        return self._name

    def __getitem__(self, key):
        try:
            return self._client._execute(P.STASH_OP_GET, self._name, key=key)
        except StashKeyNotFoundError:
            raise KeyError(key) from None

    def __setitem__(self, key, value):
        self._client.put(self._name, key, value)

    def __delitem__(self, key):
        if not self._client.delete(self._name, key):
            raise KeyError(key)

    def __contains__(self, key):
        return self._client.exists(self._name, key)

    def __iter__(self):
        return iter(self._client.keys(self._name))

    def __len__(self):
        try:
            return self._client.info(self._name).get("size", 0)
        except StashTableNotFoundError:
            return 0

    def get(self, key, default=None):
        return self._client.get(self._name, key, default)

    def keys(self, pattern=None):
        return self._client.keys(self._name, pattern=pattern)

    def clear(self):
        self._client.clear(self._name)

    def items(self):
        for key in self._client.keys(self._name):
            yield key, self._client.get(self._name, key)

    def values(self):
        for key in self._client.keys(self._name):
            yield self._client.get(self._name, key)


# ---- module-level API (one client per thread) ------------------------------------------------

_local = threading.local()
_socket_path = None


def set_stash_socket_path(path):
    global _socket_path
    _socket_path = path


def get_stash_socket_path():
    path = _socket_path or os.environ.get("GUNICORN_DIRTY_SOCKET")
    if not path:
        raise StashError(
            "Stash socket path not configured. "
            "Make sure dirty_workers > 0 and dirty_apps are configured."
        )
    return path


def _client():
    client = getattr(_local, "client", None)
    if client is None:
        client = _local.client = StashClient(get_stash_socket_path())
    return client


def put(table, key, value):
    _client().put(table, key, value)


def get(table, key, default=None):
    return _client().get(table, key, default)


def delete(table, key):
    return _client().delete(table, key)


def keys(table, pattern=None):
    return _client().keys(table, pattern)


def clear(table):
    _client().clear(table)


def info(table):
    return _client().info(table)


def ensure(table):
    _client().ensure(table)


def exists(table, key=None):
    return _client().exists(table, key)


def delete_table(table):
    _client().delete_table(table)


def tables():
    return _client().tables()


def table(name):
    return _client().table(name)


# ---- the arbiter's half -----------------------------------------------------------------------


def _key(key):
    # Keys arrive as TLV values; lists are the only unhashable kind and stand for tuples.
    return tuple(key) if isinstance(key, list) else key


def handle_stash(tables, rid, msg):
    """Apply one stash operation to ``tables`` (the arbiter's dict); the reply frame."""
    try:
        return _apply(tables, rid, msg)
    except TypeError as e:  # an unhashable key (a dict)
        return _stash_error(rid, "StashError", "Bad stash key: %s" % e)


def _apply(tables, rid, msg):
    op = msg.get("op")
    name = msg.get("table", "")
    key = _key(msg.get("key"))
    table = tables.get(name)
    if op == P.STASH_OP_PUT:
        tables.setdefault(name, {})[key] = msg.get("value")
        result = True
    elif op == P.STASH_OP_GET:
        if table is None or key not in table:
            return _stash_error(
                rid, "StashKeyNotFoundError", "Key not found in %s: %s" % (name, key)
            )
        result = table[key]
    elif op == P.STASH_OP_DELETE:
        result = table is not None and table.pop(key, _MISSING) is not _MISSING
    elif op == P.STASH_OP_KEYS:
        result = list(table or ())
        pattern = msg.get("pattern")
        if pattern:
            result = [k for k in result if fnmatch.fnmatchcase(str(k), pattern)]
    elif op == P.STASH_OP_CLEAR:
        if table is not None:
            table.clear()
        result = True
    elif op == P.STASH_OP_INFO:
        if table is None:
            return _stash_error(rid, "StashTableNotFoundError", "Stash table not found: %s" % name)
        result = {"size": len(table), "table": name}
    elif op == P.STASH_OP_ENSURE:
        tables.setdefault(name, {})
        result = True
    elif op == P.STASH_OP_DELETE_TABLE:
        result = tables.pop(name, None) is not None
    elif op == P.STASH_OP_TABLES:
        result = list(tables)
    elif op == P.STASH_OP_EXISTS:
        result = table is not None and (key is None or key in table)
    else:
        return _stash_error(rid, "StashError", "Unknown stash operation: %s" % (op,))
    try:
        return P.frame(P.MSG_RESPONSE, rid, {"result": result})
    except DirtyProtocolError as e:
        return _stash_error(rid, "StashError", str(e))


_MISSING = object()


def _stash_error(rid, kind, message):
    return P.frame(
        P.MSG_ERROR, rid, {"error": {"error_type": kind, "message": message, "details": {}}}
    )
