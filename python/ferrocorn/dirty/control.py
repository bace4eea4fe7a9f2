"""What the control socket (``show dirty``, ``show all``, ``dirty add|remove``) asks the
dirty arbiter over its socket: ``status`` and ``manage`` are the blocking helpers the Rust
control server calls; ``arbiter_status`` and ``arbiter_manage`` are the arbiter's answers
(STATUS and MANAGE frames).

The client half owns nothing but one short connection per query.
"""

import signal
import socket
import time

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
            {k: w[k] for k in ("pid", "age", "apps", "booted", "last_heartbeat")}
            for w in result["workers"]
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
        return _ask(
            socket_path, P.MSG_MANAGE, {"op": codes[op], "count": max(1, int(count))}, timeout
        )
    except (OSError, DirtyError, ValueError) as e:
        return {"success": False, "error": str(e)}


# ---- the arbiter's half ---------------------------------------------------------------------


def arbiter_status(arb):
    """The STATUS reply: Gunicorn's keys (arbiter_pid, workers, worker_count, apps) plus
    ``app_specs`` (per app: limit, workers loading it), ``target_workers`` and
    ``waiting_calls``."""
    now = time.monotonic()
    workers = sorted(
        (
            {
                "pid": pid,
                "age": w.age,
                "apps": list(w.app_paths),
                "booted": w.booted,
                "last_heartbeat": round(now - w.tmp.last_update(), 2) if arb.timeout > 0 else None,
                "busy": len(w.inflight),
                "generation": w.generation,
            }
            for pid, w in arb.workers.items()
        ),
        key=lambda w: w["age"],
    )
    specs = []
    for path in arb.app_specs:
        pids = [w["pid"] for w in workers if path in w["apps"]]
        specs.append(
            {
                "import_path": path,
                "worker_count": arb.app_limit(path),
                "current_workers": len(pids),
                "worker_pids": pids,
            }
        )
    return {
        "arbiter_pid": arb.pid,
        "workers": workers,
        "worker_count": len(workers),
        "apps": list(arb.app_specs),
        "app_specs": specs,
        "target_workers": arb.num_workers,
        "waiting_calls": len(arb.waiting),
    }


# A bound on `dirty add N` and TTIN: a typo must not fork the machine to death.
MAX_DIRTY_WORKERS = 1024


def arbiter_manage(arb, msg):
    """The MANAGE reply (``dirty add|remove``); DirtyError for a bad request."""
    op = msg.get("op")
    try:
        count = max(1, int(msg.get("count", 1)))
    except (TypeError, ValueError):
        raise DirtyError("Bad worker count: %r" % (msg.get("count"),)) from None
    if op == P.MANAGE_OP_ADD:
        spawned = 0
        reason = None
        for _ in range(count):
            current = arb.current_workers()
            if arb.num_workers >= MAX_DIRTY_WORKERS:
                reason = "At most %d dirty workers can run" % MAX_DIRTY_WORKERS
                break
            if arb.learning(current):
                reason = "A dirty worker is still booting; its apps' limits are not known yet"
                break
            apps = arb.apps_for_new_worker(current)
            if not apps:
                reason = "All apps have reached their worker limits"
                break
            if arb._backing_off(apps):
                reason = "An app failed to boot recently; waiting before the next worker"
                break
            arb.num_workers += 1
            arb.spawn_worker(apps)
            spawned += 1
        result = {"success": True, "operation": "add", "requested": count, "spawned": spawned}
        if spawned < count and reason is not None:
            result["reason"] = reason
    elif op == P.MANAGE_OP_REMOVE:
        floor = arb.minimum_workers()
        removed = 0
        for _ in range(count):
            current = arb.current_workers()
            if arb.num_workers <= floor or len(current) <= 1:
                break
            arb.num_workers -= 1
            arb.retire(arb.victim(current), signal.SIGTERM)
            removed += 1
        result = {"success": True, "operation": "remove", "requested": count, "removed": removed}
    else:
        raise DirtyError("Unknown manage operation: %s" % (op,))
    result["total_workers"] = len(arb.current_workers())
    result["target_workers"] = arb.num_workers
    arb.log.info(
        "Worker management: %s %d workers (spawned/removed: %d)",
        result["operation"],
        count,
        result.get("spawned", result.get("removed", 0)),
    )
    return result
