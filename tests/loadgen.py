"""A bounded loopback load generator that classifies every request attempt.

``LoadGen(address, path, threads, limit)`` runs ``threads`` loops; each opens a fresh TCP
connection, sends one raw ``GET`` with ``Connection: close`` and reads until the server
closes. Every attempt becomes an ``Attempt`` with one outcome:

- ``ok``: a 200 whose body is complete (Content-Length or chunked framing satisfied);
- ``refused``: ECONNREFUSED at connect time, i.e. nothing was listening;
- ``failed``: anything else: connect timeout, reset or EOF after connecting, a read
  timeout, a short or unframed body, a status other than 200.

The generator can never run away: each thread stops at ``limit`` seconds after start even
if nobody calls ``stop()``, and each attempt is bounded by ``timeout``. Timestamps are
``time.monotonic()`` values; ``mark(name)`` records when the test did something (sent a
signal, say) so ``report()`` can place every failure relative to it.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

from conftest import decode_chunked, wait_until

OK, REFUSED, FAILED = "ok", "refused", "failed"

# Enough of a body to tell which app version answered, without keeping megabytes around.
BODY_KEEP = 512


@dataclass
class Attempt:
    started: float
    finished: float = 0.0
    connected: float | None = None  # None: the connect itself did not succeed
    outcome: str = FAILED
    kind: str = ""  # a short class: "ok", "refused", "reset before the response head", "status 500"...
    error: str = ""
    status: int | None = None
    body: bytes = b""
    worker_pid: int | None = None
    received: int = 0  # bytes read from the server, head included


@dataclass
class _Parsed:
    status: int
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    complete: bool = False
    problem: str = ""


def _parse(raw: bytes) -> _Parsed | None:
    """The response in `raw`, or None when not even the head arrived."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        return _Parsed(status=0, problem="bad status line %r" % lines[0])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    parsed = _Parsed(status=status, headers=headers, body=rest)
    if headers.get("transfer-encoding", "").lower() == "chunked":
        try:
            parsed.body, _ = decode_chunked(rest)
            parsed.complete = True
        except (ValueError, AssertionError, IndexError) as exc:
            parsed.problem = "incomplete chunked body (%s) after %d bytes" % (exc, len(rest))
    elif "content-length" in headers:
        expected = int(headers["content-length"])
        parsed.complete = len(rest) >= expected
        parsed.body = rest[:expected]
        if not parsed.complete:
            parsed.problem = "short body: %d of %d bytes" % (len(rest), expected)
    else:
        # Framed by the close alone: whatever arrived before a clean EOF is the body.
        parsed.complete = True
    return parsed


class LoadGen:
    """Threads of fresh-connection requests; see the module docstring."""

    def __init__(self, address, path: str = "/", threads: int = 4, limit: float = 30.0,
                 timeout: float = 10.0, host: str = "127.0.0.1"):
        self.address = tuple(address)
        self.request = (
            "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, host)
        ).encode("latin-1")
        self.timeout = timeout
        self.limit = limit
        self.started = time.monotonic()
        self.deadline = self.started + limit
        self.marks: list[tuple[str, float]] = []
        self._attempts: list[Attempt] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, name="loadgen-%d" % i, daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    # -- the load ----------------------------------------------------------
    def _loop(self):
        while not self._stop.is_set() and time.monotonic() < self.deadline:
            attempt = self._attempt()
            with self._lock:
                self._attempts.append(attempt)
            if attempt.outcome != OK:
                # Nothing to talk to, or something broke: do not spin on it.
                time.sleep(0.02)

    def _attempt(self) -> Attempt:
        attempt = Attempt(started=time.monotonic())
        try:
            sock = socket.create_connection(self.address, timeout=self.timeout)
        except ConnectionRefusedError:
            return self._done(attempt, REFUSED, "refused", "ECONNREFUSED at connect")
        except OSError as exc:
            return self._done(attempt, FAILED, "connect: %s" % type(exc).__name__, repr(exc))
        attempt.connected = time.monotonic()
        chunks: list[bytes] = []
        end = attempt.connected + self.timeout
        error = ""  # how reading ended, when it did not end with a clean EOF
        with sock:
            try:
                sock.sendall(self.request)
                while True:
                    sock.settimeout(max(0.01, end - time.monotonic()))
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
            except socket.timeout:
                error = "timeout"
            except ConnectionResetError:
                error = "reset"
            except OSError as exc:  # broken pipes and the like
                error = type(exc).__name__
        raw = b"".join(chunks)
        attempt.received = len(raw)
        parsed = _parse(raw)
        if parsed is not None:
            attempt.status = parsed.status
            attempt.body = parsed.body[:BODY_KEEP]
            pid = parsed.headers.get("x-worker-pid")
            attempt.worker_pid = int(pid) if pid and pid.isdigit() else None
        ended = error or "EOF"
        if parsed is None:
            return self._done(attempt, FAILED, "%s before the response head" % ended,
                              "%d bytes received: %r" % (len(raw), raw[:80]))
        if parsed.problem or not parsed.complete:
            return self._done(attempt, FAILED, "%s in the body" % ended,
                              parsed.problem or "incomplete response")
        if parsed.status != 200:
            return self._done(attempt, FAILED, "status %d" % parsed.status,
                              repr(parsed.body[:80]))
        # A complete 200 is a success even if the close came as a reset: the client has it all.
        return self._done(attempt, OK, "ok", error)

    @staticmethod
    def _done(attempt: Attempt, outcome: str, kind: str, error: str) -> Attempt:
        attempt.finished = time.monotonic()
        attempt.outcome = outcome
        attempt.kind = kind
        attempt.error = error
        return attempt

    # -- control -----------------------------------------------------------
    def mark(self, name: str) -> float:
        """Record that `name` happens now; returns the timestamp."""
        now = time.monotonic()
        self.marks.append((name, now))
        return now

    def stop(self):
        """Stop every thread after its current attempt; fail if one cannot finish."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            raise AssertionError("load threads did not stop: %s" % stuck)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- results -----------------------------------------------------------
    def attempts(self, outcome: str | None = None, since: float | None = None,
                 until: float | None = None) -> list:
        """Finished attempts, optionally of one outcome and started within [since, until)."""
        with self._lock:
            found = list(self._attempts)
        return [
            a for a in found
            if (outcome is None or a.outcome == outcome)
            and (since is None or a.started >= since)
            and (until is None or a.started < until)
        ]

    def count(self, outcome: str = OK, since: float | None = None) -> int:
        return len(self.attempts(outcome, since=since))

    def wait_ok(self, count: int, since: float | None = None, timeout: float = 20.0,
                what: str = "load to flow"):
        """Wait for `count` ok attempts started at or after `since` (default: now)."""
        since = time.monotonic() if since is None else since
        wait_until(lambda: self.count(OK, since) >= count, timeout=timeout,
                   what="%s (%d ok); %s" % (what, count, self.report()))

    def assert_lossless(self):
        """Every attempt so far was a complete 200, and there was at least one."""
        report = self.report()
        assert self.count(FAILED) == 0, report
        assert self.count(REFUSED) == 0, report
        assert self.count(OK) > 0, report

    def worker_pids(self, since: float | None = None, until: float | None = None) -> set:
        return {a.worker_pid for a in self.attempts(OK, since, until) if a.worker_pid}

    def bodies(self, since: float | None = None, until: float | None = None) -> set:
        return {a.body for a in self.attempts(OK, since, until)}

    def report(self, limit: int = 8) -> str:
        """Counts by outcome, the marks, and the first failures, all relative to start."""
        found = self.attempts()
        counts = {k: sum(1 for a in found if a.outcome == k) for k in (OK, REFUSED, FAILED)}
        lines = ["load: %s over %.1fs" % (counts, time.monotonic() - self.started)]
        if self.marks:
            lines.append("marks: " + ", ".join("%s@+%.3fs" % (n, t - self.started)
                                               for n, t in self.marks))
        bad = [a for a in found if a.outcome == FAILED]
        kinds: dict = {}
        for a in bad:
            kinds[a.kind] = kinds.get(a.kind, 0) + 1
        if kinds:
            lines.append("failure kinds: %s" % kinds)
        for a in sorted(bad, key=lambda a: a.started)[:limit]:
            lines.append("  failed: started +%.3fs%s, ended +%.3fs: %s (%s)" % (
                a.started - self.started, self._relative(a.started),
                a.finished - self.started, a.kind, a.error))
        return "\n".join(lines)

    def _relative(self, when: float) -> str:
        before = [(n, t) for n, t in self.marks if t <= when]
        if not before:
            return ""
        name, t = before[-1]
        return " (%.3fs after %s)" % (when - t, name)
