"""Shared by the Python-mode logger unit tests: a stand-in cfg, logging isolation, and a
UDP collector."""

import base64
import logging
import os
import socket
import types

import pytest

DEFAULT_ACCESS_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


def make_cfg(**overrides):
    values = dict(
        errorlog="-", accesslog=None, loglevel="info", access_log_format=DEFAULT_ACCESS_FORMAT,
        logconfig=None, logconfig_dict={}, logconfig_json=None,
        syslog=False, syslog_addr="udp://localhost:514", syslog_prefix=None,
        syslog_facility="user", disable_redirect_access_to_syslog=False,
        capture_output=False, statsd_host=None, statsd_prefix="", dogstatsd_tags="",
        proc_name="myapp:main", user=os.getuid(), group=os.getgid(), uid=os.getuid(),
        gid=os.getgid(),
    )
    values.update(overrides)
    return types.SimpleNamespace(**values)


@pytest.fixture(autouse=True)
def isolated_logging():
    """Loggers are process-global; each test starts from, and leaves, the same state."""
    names = ("gunicorn.error", "gunicorn.access", "marker.dict", "marker.json", "marker.ini")
    saved = {}
    for name in names + ("",):
        log = logging.getLogger(name or None)
        saved[name] = (list(log.handlers), log.level, log.propagate, log.disabled)
    yield
    for name, (handlers, level, propagate, disabled) in saved.items():
        log = logging.getLogger(name or None)
        for h in list(log.handlers):
            if h not in handlers:
                log.removeHandler(h)
                h.close()
        log.handlers[:] = handlers
        log.setLevel(level)
        log.propagate = propagate
        log.disabled = disabled


class Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def messages(self):
        return [(r.levelno, r.getMessage()) for r in self.records]


def ours(log):
    return [h for h in log.handlers if getattr(h, "_gunicorn", False)]



def udp_collector():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    return sock


def fake_exchange(sent=1234):
    resp = types.SimpleNamespace(
        status="404 Not Found", status_code=404, sent=sent, response_length=sent,
        headers=[("Content-Type", "text/html"), ("X-Trace", 'a"b')],
    )
    req = types.SimpleNamespace(
        method="GET", uri="/p%20q?x=1", path="/p q", query="x=1", version=(1, 1),
        headers=[("HOST", "example.com"), ("X-DUP", "first"), ("X-DUP", "second")],
    )
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/p%20q?x=1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "PATH_INFO": "/p q",
        "QUERY_STRING": "x=1",
        "REMOTE_ADDR": "10.0.0.7",
        "HTTP_REFERER": "http://ref/",
        "HTTP_USER_AGENT": 'agent "quoted"',
        "HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"alice:secret").decode(),
    }
    return resp, req, environ
