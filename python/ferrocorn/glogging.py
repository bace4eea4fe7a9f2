"""Gunicorn's ``glogging.Logger`` for ferrocorn's Python logging mode.

On the default path the Rust side writes the error and access logs, syslog and StatsD
itself. When a configuration asks for Python's ``logging`` (``logconfig``,
``logconfig_dict``, ``logconfig_json``) or names its own ``logger_class``, an instance of
this class, or of the user's subclass, receives every log call instead. Subclasses written
for Gunicorn override these methods and read these attributes, so the names, signatures and
the order in which ``setup`` does things follow Gunicorn 27.
"""

import base64
import binascii
import fcntl
import importlib
import inspect
import json
import logging
import logging.config
import logging.handlers
import os
import socket
import sys
import threading
import time
import traceback

SYSLOG_FACILITIES = {
    "auth": 4,
    "authpriv": 10,
    "cron": 9,
    "daemon": 3,
    "ftp": 11,
    "kern": 0,
    "lpr": 6,
    "mail": 2,
    "news": 7,
    "security": 4,
    "syslog": 5,
    "user": 1,
    "uucp": 8,
    "local0": 16,
    "local1": 17,
    "local2": 18,
    "local3": 19,
    "local4": 20,
    "local5": 21,
    "local6": 22,
    "local7": 23,
}

# What logconfig_dict and logconfig_json are merged over (top-level keys replaced), and the
# defaults an ini logconfig sees. Users' configurations reference these names
# ("console", "error_console", "generic"), so the content is Gunicorn's exactly.
CONFIG_DEFAULTS = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {
            "level": "INFO",
            "handlers": ["error_console"],
            "propagate": True,
            "qualname": "gunicorn.error",
        },
        "gunicorn.access": {
            "level": "INFO",
            "handlers": ["console"],
            "propagate": True,
            "qualname": "gunicorn.access",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "stream": "ext://sys.stdout",
        },
        "error_console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "stream": "ext://sys.stderr",
        },
    },
    "formatters": {
        "generic": {
            "format": "%(asctime)s [%(process)d] [%(levelname)s] %(message)s",
            "datefmt": "[%Y-%m-%d %H:%M:%S %z]",
            "class": "logging.Formatter",
        }
    },
}

# The errors dictConfig reports a bad configuration with; anything else is a bug worth a
# traceback rather than a one-line "Error: ...".
_CONFIG_ERRORS = (AttributeError, ImportError, ValueError, TypeError)


def loggers():
    """Every logger the logging module knows, placeholders included (made real)."""
    names = list(logging.Logger.manager.loggerDict)
    return [logging.getLogger(name) for name in names]


class SafeAtoms(dict):
    """The mapping ``access_log_format`` is %-formatted against.

    Quotes in string values are escaped because the common formats put atoms inside
    ``"..."``; an unknown atom prints ``-`` so one typo does not lose every access line.
    ``{name}i/o/e`` atoms are stored lower-cased, and looked up that way, so a format can
    spell header names however it likes.
    """

    def __init__(self, atoms):
        super().__init__()
        for key, value in atoms.items():
            if isinstance(value, str):
                value = value.replace('"', '\\"')
            self[key] = value

    def __getitem__(self, key):
        if key.startswith("{"):
            key = key.lower()
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        return "-"


def parse_syslog_address(addr):
    """``(socktype, address)`` for ``syslog_addr``, as SysLogHandler takes them.

    For ``unix://`` the type stays None unless ``#dgram`` is given: SysLogHandler then
    tries a datagram socket and falls back to a stream one, which local syslog daemons
    differ on.
    """
    if addr.startswith("unix://"):
        path, _, kind = addr[len("unix://"):].partition("#")
        return (socket.SOCK_DGRAM if kind == "dgram" else None), path

    if addr.startswith("udp://"):
        rest, socktype = addr[len("udp://"):], socket.SOCK_DGRAM
    elif addr.startswith("tcp://"):
        rest, socktype = addr[len("tcp://"):], socket.SOCK_STREAM
    else:
        raise RuntimeError("invalid syslog address")

    if "[" in rest and "]" in rest:
        host = rest.split("]", 1)[0][1:]
    elif ":" in rest:
        host = rest.split(":", 1)[0]
    else:
        host = rest or "localhost"

    after_host = rest.rsplit("]", 1)[-1]
    port = 514
    if ":" in after_host:
        text = after_host.split(":", 1)[1]
        if not (text.isascii() and text.isdigit()):
            raise RuntimeError("%r is not a valid port number." % text)
        port = int(text)
    return socktype, (host.lower(), port)


def _check_is_writable(path):
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        raise RuntimeError("Error: '%s' isn't writable [%r]" % (path, exc)) from exc


def _set_cloexec(fd):
    flags = fcntl.fcntl(fd, fcntl.F_GETFD)
    fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)


def _owner_id(value):
    # os.chown leaves an id unchanged when given -1.
    return -1 if value is None else value


def _is_ours(handler):
    return getattr(handler, "_gunicorn", False)


def _request_line_environ(req):
    """The request-line keys of an environ, rebuilt from ``req``.

    When no WSGI environ was built (an error page answered before the app ran), ferrocorn
    passes an empty dict; Gunicorn passes its default environ there, which has these keys
    but no PATH_INFO, and formats depend on them.
    """
    out = {}
    for key, attr in (("REQUEST_METHOD", "method"), ("RAW_URI", "uri"),
                      ("QUERY_STRING", "query")):
        value = getattr(req, attr, None)
        if value is not None:
            out[key] = value
    version = getattr(req, "version", None)
    if isinstance(version, tuple) and len(version) == 2:
        out["SERVER_PROTOCOL"] = "HTTP/%s.%s" % version
    return out


_REQUEST_LINE_KEYS = ("REQUEST_METHOD", "RAW_URI", "QUERY_STRING", "SERVER_PROTOCOL")


class Logger:
    LOG_LEVELS = {
        "critical": logging.CRITICAL,
        "error": logging.ERROR,
        "warning": logging.WARNING,
        "info": logging.INFO,
        "debug": logging.DEBUG,
    }
    loglevel = logging.INFO

    error_fmt = r"%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
    datefmt = r"[%Y-%m-%d %H:%M:%S %z]"

    access_fmt = "%(message)s"
    syslog_fmt = "[%(process)d] %(message)s"

    atoms_wrapper_class = SafeAtoms

    def __init__(self, cfg):
        self.error_log = logging.getLogger("gunicorn.error")
        self.error_log.propagate = False
        self.access_log = logging.getLogger("gunicorn.access")
        self.access_log.propagate = False
        self.error_handlers = []
        self.access_handlers = []
        self.logfile = None
        self.lock = threading.Lock()
        self.cfg = cfg
        self.setup(cfg)

    def setup(self, cfg):
        # A reload hands over a new cfg object; later calls must read that one.
        self.cfg = cfg
        self._access_log_enabled = self._compute_access_log_enabled()
        self.loglevel = self.LOG_LEVELS.get(cfg.loglevel.lower(), logging.INFO)
        self.error_log.setLevel(self.loglevel)
        self.access_log.setLevel(logging.INFO)

        # HUP runs setup again on the same loggers: without this each reload would add
        # another copy of every handler. Handlers the user attached are left alone.
        for log in (self.error_log, self.access_log):
            for handler in [h for h in log.handlers if _is_ours(h)]:
                log.removeHandler(handler)
                handler.close()

        if cfg.capture_output and cfg.errorlog != "-":
            self._redirect_stdio()

        self._set_handler(self.error_log, cfg.errorlog,
                          logging.Formatter(self.error_fmt, self.datefmt))

        if cfg.accesslog is not None:
            self._set_handler(self.access_log, cfg.accesslog,
                              fmt=logging.Formatter(self.access_fmt), stream=sys.stdout)

        if cfg.syslog:
            self._set_syslog_handler(self.error_log, cfg, self.syslog_fmt, "error")
            if not cfg.disable_redirect_access_to_syslog:
                self._set_syslog_handler(self.access_log, cfg, self.syslog_fmt, "access")

        # Applied last, as Gunicorn does: a logging configuration may replace the handlers
        # set above (and with the defaults' propagate=True, lines then appear twice).
        if cfg.logconfig_dict:
            config = dict(CONFIG_DEFAULTS)
            config.update(cfg.logconfig_dict)
            try:
                logging.config.dictConfig(config)
            except _CONFIG_ERRORS as exc:
                raise RuntimeError(str(exc)) from exc
        elif cfg.logconfig_json:
            # A missing file is not an error in Gunicorn: the setting is simply inert.
            if os.path.exists(cfg.logconfig_json):
                config = dict(CONFIG_DEFAULTS)
                try:
                    with open(cfg.logconfig_json) as f:
                        config.update(json.load(f))
                    logging.config.dictConfig(config)
                except _CONFIG_ERRORS as exc:
                    raise RuntimeError(str(exc)) from exc
        elif cfg.logconfig:
            if not os.path.exists(cfg.logconfig):
                raise RuntimeError("Error: log config '%s' not found" % cfg.logconfig)
            defaults = dict(CONFIG_DEFAULTS)
            defaults["__file__"] = cfg.logconfig
            defaults["here"] = os.path.dirname(cfg.logconfig)
            logging.config.fileConfig(cfg.logconfig, defaults=defaults,
                                      disable_existing_loggers=False)

    def _redirect_stdio(self):
        # Whatever Python buffered so far belongs to the old destination.
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        with self.lock:
            previous = self.logfile
            self.logfile = open(self.cfg.errorlog, "a+")
            # Descriptors 1 and 2, not sys.stdout: output written by C code and by child
            # processes must land in the error log too.
            os.dup2(self.logfile.fileno(), 1)
            os.dup2(self.logfile.fileno(), 2)
            if previous is not None:
                previous.close()

    # -- the error log ------------------------------------------------------------------

    def critical(self, msg, *args, **kwargs):
        self.error_log.critical(msg, *args, **kwargs)

    def error(self, msg, *args, **kwargs):
        self.error_log.error(msg, *args, **kwargs)

    def warning(self, msg, *args, **kwargs):
        self.error_log.warning(msg, *args, **kwargs)

    def info(self, msg, *args, **kwargs):
        self.error_log.info(msg, *args, **kwargs)

    def debug(self, msg, *args, **kwargs):
        self.error_log.debug(msg, *args, **kwargs)

    def exception(self, msg, *args, **kwargs):
        self.error_log.exception(msg, *args, **kwargs)

    def log(self, lvl, msg, *args, **kwargs):
        if isinstance(lvl, str):
            lvl = self.LOG_LEVELS.get(lvl.lower(), logging.INFO)
        self.error_log.log(lvl, msg, *args, **kwargs)

    # -- the access log -----------------------------------------------------------------

    def atoms(self, resp, req, environ, request_time):
        """The values ``access_log_format`` can name, for one request."""
        if not all(key in environ for key in _REQUEST_LINE_KEYS):
            merged = _request_line_environ(req)
            merged.update(environ)
            environ = merged

        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        sent = getattr(resp, "sent", None)
        secs, micros = request_time.seconds, request_time.microseconds
        atoms = {
            "h": environ.get("REMOTE_ADDR", "-"),
            "l": "-",
            "u": self._get_user(environ) or "-",
            "t": self.now(),
            "r": "%s %s %s" % (environ.get("REQUEST_METHOD", "-"),
                               environ.get("RAW_URI", "-"),
                               environ.get("SERVER_PROTOCOL", "-")),
            "s": status,
            "m": environ.get("REQUEST_METHOD"),
            "U": environ.get("PATH_INFO"),
            "q": environ.get("QUERY_STRING"),
            "H": environ.get("SERVER_PROTOCOL"),
            "b": "-" if sent is None else str(sent),
            "B": sent,
            "f": environ.get("HTTP_REFERER", "-"),
            "a": environ.get("HTTP_USER_AGENT", "-"),
            "T": secs,
            "D": secs * 1000000 + micros,
            "M": secs * 1000 + int(micros / 1000),
            "L": "%d.%06d" % (secs, micros),
            "p": "<%s>" % os.getpid(),
        }

        # Gunicorn accepts a bare header collection in place of a request object.
        req_headers = req.headers if hasattr(req, "headers") else req
        if hasattr(req_headers, "items"):
            req_headers = req_headers.items()
        for name, value in req_headers:
            atoms["{%s}i" % name.lower()] = value

        resp_headers = resp.headers
        if hasattr(resp_headers, "items"):
            resp_headers = resp_headers.items()
        for name, value in resp_headers:
            atoms["{%s}o" % name.lower()] = value

        for name, value in environ.items():
            atoms["{%s}e" % name.lower()] = value
        return atoms

    @property
    def access_log_enabled(self):
        """Whether access() writes anything; callers skip building its arguments if not."""
        try:
            return self._access_log_enabled
        except AttributeError:
            # A subclass whose setup() does not call ours never stored it.
            return self._compute_access_log_enabled()

    def _compute_access_log_enabled(self):
        cfg = self.cfg
        return bool(
            cfg.accesslog or cfg.logconfig or cfg.logconfig_dict or cfg.logconfig_json
            or (cfg.syslog and not cfg.disable_redirect_access_to_syslog)
        )

    def access(self, resp, req, environ, request_time):
        """One access-log line, Apache combined style by default.

        ``request_time`` is a ``datetime.timedelta``.
        """
        if not self.access_log_enabled:
            return
        safe_atoms = self.atoms_wrapper_class(
            self.atoms(resp, req, environ, request_time))
        try:
            self.access_log.info(self.cfg.access_log_format, safe_atoms)
        except Exception:
            self.error(traceback.format_exc())

    def now(self):
        """The time in Apache's common log format, e.g. ``[22/Nov/2026:02:55:45 +0000]``."""
        return time.strftime("[%d/%b/%Y:%H:%M:%S %z]")

    # -- files --------------------------------------------------------------------------

    def reopen_files(self):
        """USR1: reopen every log file by name, so rotated files are let go of."""
        if self.cfg.capture_output and self.cfg.errorlog != "-":
            self._redirect_stdio()

        for log in loggers():
            for handler in log.handlers:
                if not isinstance(handler, logging.FileHandler):
                    continue
                handler.acquire()
                try:
                    # A handler with no stream is one delay=True has not opened yet.
                    if handler.stream:
                        handler.close()
                        handler.stream = handler._open()
                finally:
                    handler.release()

    def close_on_exec(self):
        """Keep log files from leaking into processes the server or the app exec."""
        for log in loggers():
            for handler in log.handlers:
                if not isinstance(handler, logging.FileHandler):
                    continue
                handler.acquire()
                try:
                    if handler.stream:
                        _set_cloexec(handler.stream.fileno())
                finally:
                    handler.release()

    # -- handlers -----------------------------------------------------------------------

    def _get_gunicorn_handler(self, log):
        for handler in log.handlers:
            if _is_ours(handler):
                return handler
        return None

    def _set_handler(self, log, output, fmt, stream=None):
        previous = self._get_gunicorn_handler(log)
        if previous is not None:
            log.removeHandler(previous)
            previous.close()

        if output is None:
            return
        if output == "-":
            handler = logging.StreamHandler(stream)
        else:
            _check_is_writable(output)
            handler = logging.FileHandler(output)
            # The server may drop privileges later and still has to reopen the file on USR1.
            try:
                os.chown(handler.baseFilename, _owner_id(self.cfg.user),
                         _owner_id(self.cfg.group))
            except OSError:
                # Not ours to change (/dev/null, or not running as root): reopening works
                # or fails the same either way.
                pass
        handler.setFormatter(fmt)
        handler._gunicorn = True
        log.addHandler(handler)

    def _set_syslog_handler(self, log, cfg, fmt, name):
        prefix = cfg.syslog_prefix or cfg.proc_name.replace(":", ".")
        formatter = logging.Formatter("gunicorn.%s.%s: %s" % (prefix, name, fmt))

        # The facility is checked before the address, so a configuration wrong in both
        # reports the facility, as Gunicorn does.
        try:
            facility = SYSLOG_FACILITIES[cfg.syslog_facility.lower()]
        except KeyError as exc:
            raise RuntimeError("unknown facility name") from exc

        socktype, address = parse_syslog_address(cfg.syslog_addr)
        handler = logging.handlers.SysLogHandler(address=address, facility=facility,
                                                 socktype=socktype)
        handler.setFormatter(formatter)
        handler._gunicorn = True
        log.addHandler(handler)

    def _get_user(self, environ):
        """The user name of ``Authorization: Basic``, or None."""
        header = environ.get("HTTP_AUTHORIZATION")
        if not header or not header.lower().startswith("basic"):
            return None
        parts = header.split(" ", 1)
        if len(parts) != 2:
            return None
        try:
            decoded = base64.b64decode(parts[1].strip().encode("utf-8"))
            return decoded.split(b":", 1)[0].decode("utf-8")
        except (TypeError, binascii.Error, UnicodeDecodeError) as exc:
            self.debug("Couldn't get username: %s", exc)
            return None


# -- logger_class -----------------------------------------------------------------------

_LOGGER_NAMES = frozenset((
    "simple",
    "glogging.Logger",
    "gunicorn.glogging.Logger",
    "ferrocorn.glogging.Logger",
    "egg:gunicorn#simple",
))
_STATSD_NAMES = frozenset((
    "gunicorn.instrument.statsd.Statsd",
    "ferrocorn.instrument.statsd.Statsd",
))
_ENTRY_POINT_GROUP = "gunicorn.loggers"


def _invalid_class(uri):
    msg = "class uri %r invalid or not found: \n\n[%s]"
    return RuntimeError(msg % (uri, traceback.format_exc()))


def _entry_point(dist, name):
    from importlib import metadata

    for ep in metadata.distribution(dist).entry_points:
        if ep.group == _ENTRY_POINT_GROUP and ep.name == name:
            return ep.load()
    raise ImportError("Entry point %r not found" % ((_ENTRY_POINT_GROUP, name),))


def _resolve(uri):
    if uri in _LOGGER_NAMES:
        return Logger
    if uri in _STATSD_NAMES:
        from ferrocorn.instrument.statsd import Statsd

        return Statsd

    if uri.startswith("egg:"):
        dist, sep, name = uri[len("egg:"):].rpartition("#")
        if not sep:
            dist, name = name, "simple"
        try:
            return _entry_point(dist, name)
        except Exception:
            raise _invalid_class(uri) from None

    if ":" in uri:
        module_name, _, attr_path = uri.partition(":")
    else:
        module_name, _, attr_path = uri.rpartition(".")
    if not module_name:
        # A bare name means an entry point of Gunicorn's own distribution, whose logger
        # group holds only "simple" (handled above), and Gunicorn need not be installed.
        name = uri[1:] if uri.startswith("#") else uri
        if name in _LOGGER_NAMES:
            return Logger
        try:
            raise ImportError("Entry point %r not found" % ((_ENTRY_POINT_GROUP, name),))
        except ImportError:
            raise _invalid_class(name) from None

    try:
        target = importlib.import_module(module_name)
        for part in attr_path.split("."):
            target = getattr(target, part)
    except Exception:
        raise _invalid_class(uri) from None
    return target


def load_logger_class(uri):
    """The class ``logger_class`` names, with Gunicorn's names meaning ferrocorn's classes.

    As with Gunicorn's ``cfg.logger_class``, a classmethod ``install()`` on the class is
    called each time it is loaded.
    """
    cls = uri if inspect.isclass(uri) else _resolve(uri)
    if hasattr(cls, "install"):
        cls.install()
    return cls


def _log_exception(log, msg, exc, tb):
    # Gunicorn logs request failures from inside its `except` block, so custom loggers
    # (and error trackers) read the exception from sys.exc_info(); recreate that state
    # without leaving this frame in the traceback.
    try:
        raise exc
    except BaseException:
        exc.__traceback__ = tb
        log.exception(msg)
