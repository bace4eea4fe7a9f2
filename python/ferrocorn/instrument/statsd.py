"""A StatsD client that is also the logger: Gunicorn's ``instrument.statsd.Statsd``.

Used in Python logging mode when ``statsd_host`` is set (or the class is named). Every
access is timed and counted, warnings and errors are counted, and a log call carrying
``extra={"metric": ..., "value": ..., "mtype": ...}`` emits that metric; the wire format
is Gunicorn's byte for byte.

Two deliberate differences from Gunicorn:

* a non-empty ``statsd_prefix`` always ends in exactly one ``.``; Gunicorn's rule skips
  one-character prefixes, so ``a`` produced ``agunicorn.requests``;
* the socket never blocks and a datagram that cannot be sent is only counted in
  ``dropped``. Gunicorn logs a warning per failed datagram, so a collector that is down
  doubled the cost of every request and filled the error log.
"""

import logging
import re
import socket

from ferrocorn.glogging import Logger

# The ``extra`` keys and metric types a log call can carry; apps import these names.
METRIC_VAR = "metric"
VALUE_VAR = "value"
MTYPE_VAR = "mtype"
GAUGE_TYPE = "gauge"
COUNTER_TYPE = "counter"
HISTOGRAM_TYPE = "histogram"
TIMER_TYPE = "timer"

DEFAULT_PORT = 8125
_BAD_ADDRESS = "Value must be one of ('host:port', 'unix://PATH')"


def _is_ipv6(host):
    try:
        socket.inet_pton(socket.AF_INET6, host)
    except (OSError, ValueError):
        return False
    return True


def _inet(host, port):
    family = socket.AF_INET6 if _is_ipv6(host) else socket.AF_INET
    return family, (host, port)


def parse_statsd_address(value):
    """``(family, address)`` for a ``statsd_host`` value, as Gunicorn reads it.

    ``host``, ``host:port``, ``[v6]:port``, ``tcp://`` forms of those, or ``unix://PATH``
    (``unix:PATH`` too). ``unix:8125`` stays host ``unix`` port 8125, which is what it
    meant before Gunicorn 20 and what Gunicorn still keeps it as. A tuple, the form
    Gunicorn's parsed setting has, is taken as it is.
    """
    if isinstance(value, (tuple, list)):
        return _inet(value[0], int(value[1]))

    legacy = re.match(r"^unix:(\d+)$", value)
    if legacy:
        return socket.AF_INET, ("unix", int(legacy.group(1)))
    if value.startswith("unix:"):
        path = value[len("unix:"):]
        return socket.AF_UNIX, path[2:] if path.startswith("//") else path
    if value.startswith("fd://"):
        raise RuntimeError(_BAD_ADDRESS)

    if value.startswith("tcp://"):
        value = value[len("tcp://"):]
    host, port = value, DEFAULT_PORT
    if "[" in value and "]" in value:
        host = value.split("]")[0][1:]
        port = (value.split("]:") + [port])[1]
    elif ":" in value:
        host, port = (value.split(":") + [port])[:2]
    elif value == "":
        host = "0.0.0.0"
    try:
        port = int(port)
    except ValueError:
        raise RuntimeError(_BAD_ADDRESS) from None
    return _inet(host.lower(), port)


def metric_prefix(prefix):
    """``statsd_prefix`` as prepended to names: empty, or ending in exactly one dot."""
    if not prefix:
        return ""
    return prefix.rstrip(".") + "."


class Statsd(Logger):
    """The logger, plus StatsD counters, gauges, timers and histograms."""

    def __init__(self, cfg):
        # Logger.__init__ runs setup(), which may already log (and so count).
        self.prefix = ""
        self.sock = None
        self.dogstatsd_tags = ""
        self.dropped = 0
        self._address = None
        Logger.__init__(self, cfg)

    def setup(self, cfg):
        Logger.setup(self, cfg)
        # Re-read on HUP as well, so a changed prefix, tags or host takes effect without
        # a restart (Gunicorn reads them once, at start).
        self.prefix = metric_prefix(cfg.statsd_prefix)
        self.dogstatsd_tags = cfg.dogstatsd_tags or ""
        self._open(cfg.statsd_host)

    def _open(self, host):
        target = parse_statsd_address(host) if host else None
        if target == self._address and (self.sock is not None or target is None):
            return
        previous, self.sock, self._address = self.sock, None, target
        if previous is not None:
            previous.close()
        if target is None:
            return
        family, address = target
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError:
            return
        sock.setblocking(False)
        # A unix socket is addressed on every send rather than connected: a collector that
        # starts (or restarts, with a new socket file) after the server is then reached.
        if family != socket.AF_UNIX:
            try:
                sock.connect(address)
            except OSError:
                # The name does not resolve: every metric is dropped (and counted).
                sock.close()
                return
        self.sock = sock

    # -- log calls that count -----------------------------------------------------------

    def critical(self, msg, *args, **kwargs):
        Logger.critical(self, msg, *args, **kwargs)
        self.increment("gunicorn.log.critical", 1)

    def error(self, msg, *args, **kwargs):
        Logger.error(self, msg, *args, **kwargs)
        self.increment("gunicorn.log.error", 1)

    def warning(self, msg, *args, **kwargs):
        Logger.warning(self, msg, *args, **kwargs)
        self.increment("gunicorn.log.warning", 1)

    def exception(self, msg, *args, **kwargs):
        Logger.exception(self, msg, *args, **kwargs)
        self.increment("gunicorn.log.exception", 1)

    # info and debug are not counted, but may carry a metric in ``extra``.
    def info(self, msg, *args, **kwargs):
        self.log(logging.INFO, msg, *args, **kwargs)

    def debug(self, msg, *args, **kwargs):
        self.log(logging.DEBUG, msg, *args, **kwargs)

    def log(self, lvl, msg, *args, **kwargs):
        """Log ``msg`` if there is one, and emit the metric ``extra`` describes if any."""
        try:
            extra = kwargs.get("extra")
            if extra is not None:
                self._emit_extra(extra)
            # The arbiter sends metrics with an empty message: nothing to log then.
            if msg:
                Logger.log(self, lvl, msg, *args, **kwargs)
        except Exception:
            Logger.warning(self, "Failed to log to statsd", exc_info=True)

    def _emit_extra(self, extra):
        metric = extra.get(METRIC_VAR)
        value = extra.get(VALUE_VAR)
        mtype = extra.get(MTYPE_VAR)
        if not metric or value is None or not mtype:
            return
        send = {
            GAUGE_TYPE: self.gauge,
            COUNTER_TYPE: self.increment,
            HISTOGRAM_TYPE: self.histogram,
            TIMER_TYPE: self.timer,
        }.get(mtype)
        if send is not None:
            send(metric, value)

    def access(self, resp, req, environ, request_time):
        """The access line, then the request's duration, count and status count."""
        Logger.access(self, resp, req, environ, request_time)
        duration_in_ms = (request_time.seconds * 1000
                          + float(request_time.microseconds) / 10 ** 3)
        status = resp.status
        if isinstance(status, bytes):
            status = status.decode("utf-8")
        if isinstance(status, str):
            status = int(status.split(None, 1)[0])
        self.timer("gunicorn.request.duration", duration_in_ms)
        self.increment("gunicorn.requests", 1)
        self.increment("gunicorn.request.status.%d" % status, 1)

    # -- StatsD; apps may call these directly ---------------------------------------------

    def gauge(self, name, value):
        self._sock_send("%s%s:%s|g" % (self.prefix, name, value))

    def increment(self, name, value, sampling_rate=1.0):
        self._sock_send("%s%s:%s|c|@%s" % (self.prefix, name, value, sampling_rate))

    def decrement(self, name, value, sampling_rate=1.0):
        self._sock_send("%s%s:-%s|c|@%s" % (self.prefix, name, value, sampling_rate))

    def timer(self, name, value):
        self._sock_send("%s%s:%s|ms" % (self.prefix, name, value))

    def histogram(self, name, value):
        self._sock_send("%s%s:%s|h" % (self.prefix, name, value))

    def _sock_send(self, msg):
        if self._address is None:
            return
        try:
            if isinstance(msg, str):
                msg = msg.encode("ascii")
            if self.dogstatsd_tags:
                msg += b"|#" + self.dogstatsd_tags.encode("ascii")
            sock = self.sock
            if sock is None:
                raise OSError("no statsd socket")
            family, address = self._address
            if family == socket.AF_UNIX:
                sock.sendto(msg, address)
            else:
                sock.send(msg)
        except Exception:
            # Counted, never logged: see the module docstring. No lock: two threads may
            # rarely lose an increment, which is better than a lock a fork could copy
            # while another thread holds it.
            self.dropped += 1
