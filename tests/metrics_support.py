"""Shared helpers of the metrics tests (tests/test_statsd.py, tests/test_prometheus.py): a
StatsD collector the server sends to, a Prometheus scrape parsed with prometheus_client,
and the /proc lookups that tell which process holds which socket.

StatsD: Gunicorn sends one metric per datagram; ferrocorn may pack several into one
datagram, separated by ``\\n`` (the standard multi-metric packet). ``StatsdReceiver``
splits every datagram and the tests only ever compare the resulting lines.
"""

from __future__ import annotations

import collections
import os
import re
import socket
import threading
import time
from pathlib import Path

import requests

from conftest import wait_until
from netstate import TCP_LISTEN, tcp_sockets

# One StatsD line as Gunicorn's client writes it: name, value, type, an optional sample
# rate (counters always carry `|@1.0`) and optional DogStatsD tags.
STATSD_LINE_RE = re.compile(
    r"^(?P<name>[^:|#\s]+):(?P<value>-?\d+(?:\.\d+)?)\|(?P<type>c|g|ms|h)"
    r"(?:\|@(?P<rate>\d+(?:\.\d+)?))?(?:\|#(?P<tags>\S+))?$"
)

# A request duration: milliseconds as a float (Gunicorn: `s*1000 + µs/1000`, e.g. 0.283).
DURATION_VALUE_RE = r"\d+(?:\.\d+)?"


class StatsdReceiver:
    """A datagram socket collecting what a server sends: UDP on 127.0.0.1 (or ::1), or a
    unix datagram socket at `path`. A thread receives until `close()`."""

    def __init__(self, kind: str = "udp", path: Path | None = None):
        self.kind = kind
        if kind == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
            self.host = "127.0.0.1:%d" % self.sock.getsockname()[1]
        elif kind == "udp6":
            self.sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            self.sock.bind(("::1", 0))
            self.host = "[::1]:%d" % self.sock.getsockname()[1]
        elif kind == "unix":
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.bind(str(path))
            self.host = "unix://%s" % path
        else:
            raise ValueError(kind)
        # Bursts of one datagram per metric: a roomy buffer so none is lost on our side.
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        except OSError:
            pass
        self.sock.settimeout(0.1)
        self._lock = threading.Lock()
        self._datagrams: list[tuple[float, bytes]] = []
        self._lines: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="statsd-receiver", daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.monotonic()
            text = data.decode("ascii", "replace")
            with self._lock:
                self._datagrams.append((now, data))
                for line in text.split("\n"):
                    self._lines.append((now, line))

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    # -- what arrived ------------------------------------------------------
    def mark(self) -> int:
        """A position in the stream of lines; `lines(since=mark)` is what came after."""
        with self._lock:
            return len(self._lines)

    def lines(self, since: int = 0) -> list:
        with self._lock:
            return [line for _, line in self._lines[since:]]

    def timed_lines(self, since: int = 0) -> list:
        """(monotonic arrival time, line) pairs."""
        with self._lock:
            return list(self._lines[since:])

    def datagrams(self) -> list:
        with self._lock:
            return [d for _, d in self._datagrams]

    def matching(self, pattern: str, since: int = 0) -> list:
        """`re.fullmatch` objects of the lines matching `pattern`."""
        regex = re.compile(pattern)
        return [m for m in (regex.fullmatch(line) for line in self.lines(since)) if m]

    def count(self, pattern: str, since: int = 0) -> int:
        return len(self.matching(pattern, since))

    def wait_count(self, pattern: str, count: int = 1, since: int = 0,
                   timeout: float = 10.0) -> list:
        """Wait until `count` lines fully match `pattern`; return the matches."""
        def enough():
            found = self.matching(pattern, since)
            return found if len(found) >= count else None
        try:
            return wait_until(enough, timeout=timeout, what="%d StatsD lines like %r" % (
                count, pattern))
        except AssertionError as exc:
            raise AssertionError("%s; received:\n%s" % (exc, self.dump(since))) from None

    def dump(self, since: int = 0, limit: int = 200) -> str:
        found = self.lines(since)
        text = "\n".join(found[-limit:])
        return text if len(found) <= limit else "(%d earlier lines)\n%s" % (
            len(found) - limit, text)

    def assert_well_formed(self):
        """Every line that arrived is one well-formed StatsD metric (no empty lines, no
        trailing separators), and no datagram is empty."""
        bad = [line for line in self.lines() if not STATSD_LINE_RE.fullmatch(line)]
        assert not bad, "malformed StatsD lines %r; received:\n%s" % (bad[:10], self.dump())
        assert all(self.datagrams()), "an empty datagram arrived"


def request_lines(lines, prefix: str = "", suffix: str = "") -> collections.Counter:
    """The per-request lines (`requests`, `request.status.*`, `request.duration`) as a
    multiset, each duration checked against the float pattern and then written
    `<prefix>gunicorn.request.duration:<ms>|ms<suffix>` so durations compare equal."""
    duration = re.compile(
        re.escape(prefix + "gunicorn.request.duration:") + "(" + DURATION_VALUE_RE + ")"
        + re.escape("|ms" + suffix)
    )
    out = collections.Counter()
    for line in lines:
        if not re.match(re.escape(prefix) + r"gunicorn\.request(s|\.)", line):
            continue
        if line.startswith(prefix + "gunicorn.request.duration:"):
            assert duration.fullmatch(line), "a duration line that is not a float in ms: %r" % line
            line = prefix + "gunicorn.request.duration:<ms>|ms" + suffix
        out[line] += 1
    return out


def expected_request_lines(statuses, prefix: str = "", suffix: str = "") -> collections.Counter:
    """What `request_lines` must give for requests answered with `statuses`."""
    out = collections.Counter()
    for status in statuses:
        out[prefix + "gunicorn.requests:1|c|@1.0" + suffix] += 1
        out[prefix + "gunicorn.request.status.%d:1|c|@1.0" % status + suffix] += 1
        out[prefix + "gunicorn.request.duration:<ms>|ms" + suffix] += 1
    return out


def wait_request_lines(receiver: StatsdReceiver, statuses, prefix: str = "", suffix: str = "",
                       since: int = 0, timeout: float = 10.0) -> collections.Counter:
    """Wait until as many `<prefix>gunicorn.requests` lines as `statuses` arrived after
    `since`, then assert the per-request multiset is exactly the expected one."""
    want = expected_request_lines(statuses, prefix, suffix)
    total = re.escape(prefix + "gunicorn.requests:") + r".*"

    def arrived():
        got = request_lines(receiver.lines(since), prefix, suffix)
        # Every kind of per-request line, not just the counter, before comparing: a
        # sender may put them in separate datagrams.
        return got if sum(got.values()) >= sum(want.values()) else None
    try:
        got = wait_until(arrived, timeout=timeout, what="%d request metrics" % len(statuses))
    except AssertionError as exc:
        raise AssertionError("%s; got %s; received:\n%s" % (
            exc, dict(request_lines(receiver.lines(since), prefix, suffix)),
            receiver.dump(since))) from None
    assert got == want, "request metrics differ:\n got  %s\n want %s\nreceived:\n%s" % (
        sorted(got.items()), sorted(want.items()), receiver.dump(since))
    assert receiver.count(total, since) == len(statuses)
    return got


# ---------------------------------------------------------------------------
# Prometheus.

METRICS_AT_RE = r"Metrics at: (http://\S+/metrics)$"


def metrics_url(server, timeout: float = 15.0) -> str:
    """The URL the master logged in its "Metrics at:" line."""
    return server.wait_for_log(METRICS_AT_RE, timeout=timeout)[0].group(1)


class Scrape:
    """One scrape of a metrics endpoint, parsed by prometheus_client's text parser."""

    def __init__(self, text: str):
        from prometheus_client.parser import text_string_to_metric_families

        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def series(self, name: str) -> dict:
        """{frozenset(label items): value} of every sample called `name`."""
        return {frozenset(s.labels.items()): s.value for s in self.samples if s.name == name}

    def get(self, name: str, **labels):
        """The value of the sample `name` with exactly these labels, or None."""
        return self.series(name).get(frozenset(labels.items()))

    def value(self, name: str, **labels) -> float:
        found = self.get(name, **labels)
        assert found is not None, "no sample %s%s in:\n%s" % (name, labels, self.text)
        return found

    def by_label(self, name: str, label: str) -> dict:
        """{value of `label`: sample value} for the samples called `name`."""
        return {dict(k)[label]: v for k, v in self.series(name).items()}

    def requests(self) -> dict:
        """{(method, status class): count} of ferrocorn_requests_total, zeros left out."""
        out = {}
        for labels, value in self.series("ferrocorn_requests_total").items():
            labels = dict(labels)
            if value:
                out[(labels["method"], labels["status"])] = value
        return out

    def histogram(self, name: str) -> tuple:
        """([(le, cumulative count)] in order, _sum, _count) of histogram `name`,
        checked: cumulative buckets, ending in +Inf, whose count is _count."""
        buckets = [(s.labels["le"], s.value) for s in self.samples if s.name == name + "_bucket"]
        assert buckets, "no %s_bucket samples in:\n%s" % (name, self.text)
        assert buckets[-1][0] == "+Inf", buckets
        bounds = [float(le) for le, _ in buckets]
        assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds), buckets
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), "buckets are not cumulative: %s" % buckets
        total = self.value(name + "_count")
        assert counts[-1] == total, (buckets, total)
        return buckets, self.value(name + "_sum"), total


def scrape(url: str, timeout: float = 10.0) -> Scrape:
    resp = requests.get(url, timeout=timeout)
    assert resp.status_code == 200, (resp.status_code, resp.text[:500])
    return Scrape(resp.text)


def wait_scrape(url: str, predicate, what: str, timeout: float = 15.0) -> Scrape:
    """Scrape until `predicate(scrape)` is true; the failure shows the last scrape."""
    last = []

    def attempt():
        current = scrape(url)
        last[:] = [current]
        return current if predicate(current) else None
    try:
        return wait_until(attempt, timeout=timeout, what=what)
    except AssertionError as exc:
        raise AssertionError("%s; last scrape:\n%s" % (
            exc, last[0].text if last else "(none)")) from None


# ---------------------------------------------------------------------------
# Processes and their sockets.


def listening_inode(port: int) -> int:
    """The inode of the socket listening on TCP `port` (from /proc/net/tcp{,6})."""
    found = [s["inode"] for s in tcp_sockets(port) if s["state"] == TCP_LISTEN]
    assert len(found) == 1, "listening sockets on port %d: %s" % (port, tcp_sockets(port))
    return found[0]


def socket_inodes(pid: int) -> set:
    """The inodes of the sockets process `pid` holds open (its /proc/<pid>/fd links)."""
    out = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m:
            out.add(int(m.group(1)))
    return out
