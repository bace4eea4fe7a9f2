"""Text rendering of control-socket replies: tables for the show commands and help, JSON for
everything else.

Owns: the layout of every table (the same columns, widths and totals as gunicornc, so scripts
and eyes used to it keep working).
Must not: talk to the socket or decide exit statuses. Replies come from another process and
may be malformed; a field of the wrong type is shown as text, a reply of the wrong shape as
its JSON, and nothing here raises on either.
"""

from __future__ import annotations

import json
import math
import numbers

# Columns of the worker tables: (heading, width); the last column is not padded.
_WORKER_COLUMNS = (("PID", 10), ("AGE", 6), ("BOOTED", 8), ("LAST_BEAT", 0))


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _text(value) -> str:
    return value if isinstance(value, str) else str(value)


def _row(cells, widths) -> str:
    out = []
    for cell, width in zip(cells, widths):
        out.append(_text(cell).ljust(width) if width else _text(cell))
    return " ".join(out)


def _heartbeat(entry: dict) -> str:
    beat = entry.get("last_heartbeat")
    return "n/a" if beat is None else "%ss ago" % _text(beat)


def _as_json(data) -> str:
    return json.dumps(data, indent=2)


def _worker_rows(workers: list, indent: str = "") -> list:
    widths = [w for _, w in _WORKER_COLUMNS]
    lines = []
    for entry in workers:
        worker = _dict(entry)
        cells = (
            worker.get("pid", "?"),
            worker.get("age", "?"),
            "yes" if worker.get("booted") else "no",
            _heartbeat(worker),
        )
        lines.append(indent + _row(cells, widths))
    return lines


def format_workers(data) -> str:
    if not isinstance(data, dict):
        return _as_json(data)
    workers = data.get("workers", [])
    if not isinstance(workers, list):
        return _as_json(data)
    if not workers:
        return "No workers running"
    lines = [_row([h for h, _ in _WORKER_COLUMNS], [w for _, w in _WORKER_COLUMNS]), "-" * 40]
    lines += _worker_rows(workers)
    lines += ["", "Total: %s workers" % _text(data.get("count", len(workers)))]
    return "\n".join(lines)


def format_dirty(data) -> str:
    if not isinstance(data, dict):
        return _as_json(data)
    if not data.get("enabled"):
        return "Dirty arbiter not running"
    lines = ["Dirty arbiter PID: %s" % _text(data.get("pid")), ""]
    workers = _list(data.get("workers"))
    if workers:
        widths = (10, 6, 30, 0)
        lines += ["DIRTY WORKERS:", _row(("PID", "AGE", "APPS", "LAST_BEAT"), widths), "-" * 60]
        for entry in workers:
            worker = _dict(entry)
            apps = ", ".join(_text(a) for a in _list(worker.get("apps")))[:30]
            cells = (worker.get("pid", "?"), worker.get("age", "?"), apps, _heartbeat(worker))
            lines.append(_row(cells, widths))
        lines.append("")
    apps = _list(data.get("apps"))
    if apps:
        widths = (30, 10, 0)
        lines += ["DIRTY APPS:", _row(("APP", "WORKERS", "LIMIT"), widths), "-" * 50]
        for entry in apps:
            app = _dict(entry)
            limit = app.get("worker_count")
            cells = (
                _text(app.get("import_path", "?"))[:30],
                app.get("current_workers", 0),
                "none" if limit is None else limit,
            )
            lines.append(_row(cells, widths))
    return "\n".join(lines)


def _uptime(value) -> str:
    # Zero and missing both read "unknown", as in gunicornc.
    if not value or isinstance(value, bool) or not isinstance(value, numbers.Real):
        return "unknown"
    if not math.isfinite(value):
        return _text(value)
    hours = int(value // 3600)
    minutes = int((value % 3600) // 60)
    seconds = int(value % 60)
    if hours:
        return "%dh %dm %ds" % (hours, minutes, seconds)
    if minutes:
        return "%dm %ds" % (minutes, seconds)
    return "%ds" % seconds


def format_stats(data) -> str:
    if not isinstance(data, dict):
        return _as_json(data)
    rows = [
        ("Uptime:", _uptime(data.get("uptime"))),
        ("PID:", data.get("pid", "unknown")),
        ("Workers current:", data.get("workers_current", 0)),
        ("Workers target:", data.get("workers_target", 0)),
        ("Workers spawned:", data.get("workers_spawned", 0)),
        ("Workers killed:", data.get("workers_killed", 0)),
        ("Reloads:", data.get("reloads", 0)),
    ]
    if data.get("dirty_arbiter_pid"):
        rows.append(("Dirty arbiter:", data["dirty_arbiter_pid"]))
    return "\n".join("%s %s" % (label.ljust(17), _text(value)) for label, value in rows)


def format_listeners(data) -> str:
    if not isinstance(data, dict):
        return _as_json(data)
    listeners = data.get("listeners", [])
    if not isinstance(listeners, list):
        return _as_json(data)
    if not listeners:
        return "No listeners bound"
    widths = (40, 8, 0)
    lines = [_row(("ADDRESS", "TYPE", "FD"), widths), "-" * 55]
    for entry in listeners:
        listener = _dict(entry)
        cells = (listener.get("address", "?"), listener.get("type", "?"), listener.get("fd", "?"))
        lines.append(_row(cells, widths))
    lines += ["", "Total: %s listeners" % _text(data.get("count", len(listeners)))]
    return "\n".join(lines)


def format_config(data) -> str:
    if not isinstance(data, dict):
        return _as_json(data)
    lines = []
    for key in sorted(data):
        value = data[key]
        if isinstance(value, list):
            value = ", ".join(_text(v) for v in value)
        lines.append("%s: %s" % (key, _text(value)))
    return "\n".join(lines)


def format_help(data) -> str:
    commands = data.get("commands", {}) if isinstance(data, dict) else None
    if not isinstance(commands, dict):
        return _as_json(data)
    width = max((len(name) for name in commands), default=0) + 2
    lines = ["Available commands:", ""]
    for name in sorted(commands):
        lines.append("  %s %s" % (name.ljust(width), _text(commands[name])))
    return "\n".join(lines)


def format_all(data) -> str:
    if not isinstance(data, dict):
        return _as_json(data)
    arbiter = _dict(data.get("arbiter"))
    lines = ["ARBITER (master)", "  PID: %s" % _text(arbiter.get("pid", "?")), ""]

    web_workers = _list(data.get("web_workers"))
    lines.append("WEB WORKERS (%s)" % _text(data.get("web_worker_count", 0)))
    if web_workers:
        widths = [w for _, w in _WORKER_COLUMNS]
        lines.append("  " + _row([h for h, _ in _WORKER_COLUMNS], widths))
        lines.append("  " + "-" * 38)
        lines += _worker_rows(web_workers, indent="  ")
    else:
        lines.append("  (none)")
    lines.append("")

    lines.append("DIRTY ARBITER")
    dirty_arbiter = data.get("dirty_arbiter")
    if not dirty_arbiter:
        lines.append("  (not running)")
        return "\n".join(lines)
    lines += ["  PID: %s" % _text(_dict(dirty_arbiter).get("pid", "?")), ""]
    dirty_workers = _list(data.get("dirty_workers"))
    lines.append("DIRTY WORKERS (%s)" % _text(data.get("dirty_worker_count", 0)))
    if not dirty_workers:
        lines.append("  (none)")
        return "\n".join(lines)
    widths = (10, 6, 0)
    lines += ["  " + _row(("PID", "AGE", "APPS"), widths), "  " + "-" * 50]
    for entry in dirty_workers:
        worker = _dict(entry)
        pid, age = worker.get("pid", "?"), worker.get("age", "?")
        # Only the part after the last colon (the class), one app per line.
        apps = [_text(a).split(":")[-1] for a in _list(worker.get("apps"))]
        if not apps:
            lines.append("  " + _row((pid, age, "(no apps)"), widths))
            continue
        lines.append("  " + _row((pid, age, apps[0]), widths))
        lines += ["  " + _row(("", "", app), widths) for app in apps[1:]]
    return "\n".join(lines)


_FORMATTERS = {
    "show all": format_all,
    "show workers": format_workers,
    "show dirty": format_dirty,
    "show stats": format_stats,
    "show listeners": format_listeners,
    "show config": format_config,
    "help": format_help,
}


def format_reply(words: list, data) -> str:
    """The text shown for the `data` of an ok reply to the command whose words are `words`."""
    formatter = _FORMATTERS.get(" ".join(words).lower())
    if formatter is not None:
        return formatter(data)
    return _as_json(data) if data else "OK"
