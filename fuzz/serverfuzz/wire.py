"""Putting inputs on the wire: how an input is cut into pieces (``choose_split``), the
``Input`` record, and ``Pool``, which sends up to ``--jobs`` inputs over fresh non-blocking
connections on one selector, reads until the server closes, and closes (as held) connections
the server holds too long after accepting them (read from /proc/net/tcp by ``accept_states``).
"""

from __future__ import annotations

import base64
import errno
import os
import random
import re
import selectors
import socket
import struct
import time
from collections import deque


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
