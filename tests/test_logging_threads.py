"""Python-mode logging (a logconfig_dict) while Rust threads that do not hold the GIL log:
the gthread leader under TLS, where plain HTTP sent to the TLS port makes the connection
layer log warnings while it holds the connection table, and the ASGI worker, whose access
lines come from its I/O thread. Nothing may hang and no line may be lost."""

import concurrent.futures
import socket
import threading

import pytest
import requests

from conftest import wait_until
from logcfg_support import write_conf
from tls_support import make_pki, tls_request, wait_tls_ready

pytestmark = pytest.mark.timeout(120)

LOG_DICT = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"py": {"format": "PY %(levelname)s %(message)s"}},
    "handlers": {
        "err": {"class": "logging.StreamHandler", "formatter": "py",
                "stream": "ext://sys.stderr"},
        "out": {"class": "logging.StreamHandler", "formatter": "py",
                "stream": "ext://sys.stdout"},
    },
    "root": {"level": "INFO", "handlers": ["err"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["err"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["out"], "propagate": False},
    },
}


def test_gthread_tls_python_logging_with_plain_http_noise(serve, tmp_path):
    pki = make_pki(tmp_path / "pki")
    conf = write_conf(tmp_path / "log.conf.py", logconfig_dict=LOG_DICT, accesslog="-")
    server = serve("-k", "gthread", "--threads", "4", "-c", str(conf), *pki.server_args(),
                   "metrics_app:app", ready="port")
    ctx = pki.client_context()
    wait_tls_ready(server, ctx)
    stop = threading.Event()

    def plain_http_noise():
        while not stop.is_set():
            try:
                with socket.create_connection(server.address, timeout=5) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    s.recv(1024)
            except OSError:
                pass

    def https_requests(count):
        answered = 0
        for _ in range(count):
            raw = tls_request(server.address, ctx, "/sleep?s=0.02", timeout=15)
            answered += raw.startswith(b"HTTP/1.1 200")
        return answered

    noise = [threading.Thread(target=plain_http_noise) for _ in range(2)]
    for t in noise:
        t.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            answered = sum(pool.map(https_requests, [25] * 6))
    finally:
        stop.set()
        for t in noise:
            t.join(10)
    assert answered == 150, server.stderr_text()[-3000:]
    # The connection layer's warnings went through Python logging, and the worker still
    # serves.
    wait_until(lambda: "PY WARNING" in server.stderr_text(), what="a warning via Python")
    assert tls_request(server.address, ctx, "/").startswith(b"HTTP/1.1 200")


def test_asgi_access_lines_through_python_logging_are_all_delivered(serve, tmp_path):
    conf = write_conf(tmp_path / "log.conf.py", logconfig_dict=LOG_DICT, accesslog="-")
    server = serve("-k", "asgi", "-c", str(conf), "metrics_asgi:app")

    def get(i):
        return requests.get(server.url + "/n%d" % i, timeout=15).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(get, range(400)))
    assert codes == [200] * 400

    def delivered():
        lines = [line for line in server.stdout_text().splitlines()
                 if line.startswith("PY INFO ") and '"GET /n' in line]
        return len(lines) == 400
    wait_until(delivered, what="400 access lines through Python logging")
