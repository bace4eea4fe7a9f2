"""Unit tests of the Python-mode StatsD logger (ferrocorn.instrument.statsd): exact lines,
counters, `extra` metrics and silent drops, against a local collector. No server is started."""

import datetime
import logging
import os
import socket
import tempfile

import pytest

# The Python-mode logger is ferrocorn's own module; a Gunicorn-mode run has no ferrocorn.
pytest.importorskip("ferrocorn.glogging")

from ferrocorn.instrument import statsd as statsd_mod
from ferrocorn.instrument.statsd import Statsd
from glogging_support import (  # noqa: F401  (isolated_logging is an autouse fixture)
    Capture, fake_exchange, isolated_logging, make_cfg, udp_collector,
)


# -- StatsD ------------------------------------------------------------------------------

def statsd_pair(**overrides):
    collector = udp_collector()
    cfg = make_cfg(statsd_host="127.0.0.1:%d" % collector.getsockname()[1], **overrides)
    return Statsd(cfg), collector


def received(collector, count):
    return [collector.recv(4096) for _ in range(count)]


@pytest.mark.parametrize("prefix,expected", [
    ("", ""), (None, ""), ("a", "a."), ("a.", "a."), ("ab", "ab."), ("ab...", "ab."),
    ("a.b", "a.b."), ("...", "."),
])
def test_metric_prefix(prefix, expected):
    assert statsd_mod.metric_prefix(prefix) == expected


def test_statsd_wire_format():
    log, collector = statsd_pair(statsd_prefix="a")
    with collector:
        assert log.prefix == "a." and log.sock.getblocking() is False
        log.increment("x", 1)
        log.increment("x", 0, sampling_rate=0.5)
        log.decrement("x", 3)
        log.gauge("g", 7)
        log.timer("t", 0.283)
        log.histogram("h", 0)
        log.increment("none", None)
        assert received(collector, 7) == [
            b"a.x:1|c|@1.0", b"a.x:0|c|@0.5", b"a.x:-3|c|@1.0", b"a.g:7|g",
            b"a.t:0.283|ms", b"a.h:0|h", b"a.none:None|c|@1.0",
        ]
        assert log.dropped == 0
    log, collector = statsd_pair(statsd_prefix="app...", dogstatsd_tags="env:prod,team:x")
    with collector:
        log.gauge("gunicorn.workers", 1)
        assert collector.recv(4096) == b"app.gunicorn.workers:1|g|#env:prod,team:x"


def test_statsd_access_metrics_in_order():
    log, collector = statsd_pair()
    with collector:
        resp, req, environ = fake_exchange()
        log.access(resp, req, environ, datetime.timedelta(microseconds=283))
        resp.status = b"201 Created"
        log.access(resp, req, environ, datetime.timedelta(seconds=2, microseconds=500000))
        assert received(collector, 6) == [
            b"gunicorn.request.duration:0.283|ms", b"gunicorn.requests:1|c|@1.0",
            b"gunicorn.request.status.404:1|c|@1.0",
            b"gunicorn.request.duration:2500.0|ms", b"gunicorn.requests:1|c|@1.0",
            b"gunicorn.request.status.201:1|c|@1.0",
        ]


def test_statsd_log_counters():
    log, collector = statsd_pair(loglevel="debug")
    cap = Capture()
    log.error_log.addHandler(cap)
    with collector:
        log.critical("c")
        log.error("e")
        log.warning("w")
        log.info("i")
        log.debug("d")
        try:
            raise KeyError("k")
        except KeyError:
            log.exception("x")
        log.log(logging.ERROR, "via log")
        assert received(collector, 4) == [
            b"gunicorn.log.critical:1|c|@1.0", b"gunicorn.log.error:1|c|@1.0",
            b"gunicorn.log.warning:1|c|@1.0", b"gunicorn.log.exception:1|c|@1.0",
        ]
        collector.settimeout(0.2)
        with pytest.raises(socket.timeout):
            collector.recv(4096)
    assert [m for _, m in cap.messages()] == ["c", "e", "w", "i", "d", "x", "via log"]


def test_statsd_extra_metrics():
    log, collector = statsd_pair(loglevel="debug")
    cap = Capture()
    log.error_log.addHandler(cap)
    with collector:
        log.info("", extra={"metric": "m.g", "value": 5, "mtype": "gauge"})
        log.debug("3 workers", extra={"metric": "m.c", "value": 0, "mtype": "counter"})
        log.log(logging.WARNING, "h", extra={"metric": "m.h", "value": 2, "mtype": "histogram"})
        log.log("info", None, extra={"metric": "m.t", "value": 1.5, "mtype": "timer"})
        log.info("skipped", extra={"metric": "m.x", "value": 1, "mtype": "meter"})
        log.info("skipped", extra={"metric": "m.x", "value": None, "mtype": "gauge"})
        log.info("skipped", extra={"metric": "", "value": 1, "mtype": "gauge"})
        log.debug("last", extra={"metric": "m.last", "value": 9, "mtype": "gauge"})
        assert received(collector, 5) == [
            b"m.g:5|g", b"m.c:0|c|@1.0", b"m.h:2|h", b"m.t:1.5|ms", b"m.last:9|g",
        ]
    # Empty messages are not logged, but the others are, extra attributes included.
    assert [m for _, m in cap.messages()] == ["3 workers", "h", "skipped", "skipped",
                                              "skipped", "last"]
    assert cap.records[0].metric == "m.c"


def test_statsd_drops_silently_on_missing_unix_socket():
    path = os.path.join(tempfile.mkdtemp(dir="/tmp"), "nobody.sock")
    log = Statsd(make_cfg(statsd_host="unix://" + path, loglevel="debug"))
    cap = Capture()
    log.error_log.addHandler(cap)
    log.increment("x", 1)
    log.warning("w")
    assert log.dropped == 2
    assert [m for _, m in cap.messages()] == ["w"]

    # A collector that starts later is reached without a restart.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as collector:
        collector.bind(path)
        collector.settimeout(5)
        log.gauge("g", 1)
        assert collector.recv(4096) == b"g:1|g"
    assert log.dropped == 2
    os.unlink(path)

    # No host at all is not a collector that is down: nothing is counted.
    log = Statsd(make_cfg())
    log.increment("x", 1)
    assert log.sock is None and log.dropped == 0


def test_statsd_drops_silently_on_refused_udp():
    probe = udp_collector()
    port = probe.getsockname()[1]
    probe.close()
    log = Statsd(make_cfg(statsd_host="127.0.0.1:%d" % port))
    cap = Capture()
    log.error_log.addHandler(cap)
    for _ in range(5):
        log.increment("x", 1)
    assert log.dropped >= 1
    assert cap.records == []


def test_statsd_setup_rereads_settings():
    log, collector = statsd_pair(statsd_prefix="one")
    with collector:
        sock = log.sock
        log.setup(make_cfg(statsd_host="127.0.0.1:%d" % collector.getsockname()[1],
                           statsd_prefix="two", dogstatsd_tags="t:1"))
        assert log.sock is sock
        log.increment("x", 1)
        assert collector.recv(4096) == b"two.x:1|c|@1.0|#t:1"


@pytest.mark.parametrize("value,expected", [
    ("localhost", (socket.AF_INET, ("localhost", 8125))),
    ("StatsD.Example:9125", (socket.AF_INET, ("statsd.example", 9125))),
    ("127.0.0.1:1", (socket.AF_INET, ("127.0.0.1", 1))),
    ("[::1]:9000", (socket.AF_INET6, ("::1", 9000))),
    ("[::1]", (socket.AF_INET6, ("::1", 8125))),
    ("tcp://host:7", (socket.AF_INET, ("host", 7))),
    ("unix:///tmp/s.sock", (socket.AF_UNIX, "/tmp/s.sock")),
    ("unix:/tmp/s.sock", (socket.AF_UNIX, "/tmp/s.sock")),
    ("unix:8125", (socket.AF_INET, ("unix", 8125))),
    (("10.0.0.1", 8126), (socket.AF_INET, ("10.0.0.1", 8126))),
])
def test_parse_statsd_address(value, expected):
    assert statsd_mod.parse_statsd_address(value) == expected


@pytest.mark.parametrize("value", ["host:port", "host:", "fd://3"])
def test_parse_statsd_address_errors(value):
    expected = r"^Value must be one of \('host:port', 'unix://PATH'\)$"
    with pytest.raises(RuntimeError, match=expected):
        statsd_mod.parse_statsd_address(value)
