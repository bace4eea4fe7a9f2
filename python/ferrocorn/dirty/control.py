"""What the control socket (``show dirty``, ``show all``, ``dirty add|remove``) asks the
dirty arbiter, over its own socket: blocking helpers the Rust control server calls.

Owns nothing but one short connection per query.
"""

import socket

from . import protocol as P
from .errors import DirtyError


def _ask(socket_path, msg_type, payload, timeout):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        sock.sendall(P.frame(msg_type, 1, payload))
        reply_type, _, reply = P.recv_message(sock)
    finally:
        sock.close()
    if reply_type == P.MSG_RESPONSE:
        return reply.get("result")
    if reply_type == P.MSG_ERROR:
        raise DirtyError.from_dict(reply.get("error") or {})
    raise DirtyError("Unexpected reply type 0x%02x" % reply_type)


def status(socket_path, timeout=2.0):
    """The dirty part of ``show dirty``: ``{"enabled", "pid", "workers", "apps"}`` as
    Gunicorn's control socket returns it (each app: import_path, worker_count,
    current_workers, worker_pids), plus ``target_workers``. Raises OSError/DirtyError
    when the arbiter cannot answer."""
    result = _ask(socket_path, P.MSG_STATUS, None, timeout)
    return {
        "enabled": True,
        "pid": result["arbiter_pid"],
        "workers": [
            {k: w[k] for k in ("pid", "age", "apps", "booted", "last_heartbeat")} for w in result["workers"]
        ],
        "apps": result["app_specs"],
        "target_workers": result["target_workers"],
    }


def manage(socket_path, op, count=1, timeout=10.0):
    """``dirty add|remove``: ``op`` is "add" or "remove"; returns Gunicorn's reply dict
    (``success``, ``operation``, ``requested``, ``spawned``/``removed``, ``total_workers``,
    ``target_workers``) or ``{"success": False, "error": ...}``."""
    codes = {"add": P.MANAGE_OP_ADD, "remove": P.MANAGE_OP_REMOVE}
    if op not in codes:
        return {"success": False, "error": "Unknown dirty operation: %s" % (op,)}
    try:
        return _ask(socket_path, P.MSG_MANAGE, {"op": codes[op], "count": max(1, int(count))}, timeout)
    except (OSError, DirtyError, ValueError) as e:
        return {"success": False, "error": str(e)}
