"""The deploy guide's container example, run without a container runtime: the command,
environment and working directory of docs/deploy/Dockerfile start the server (address and
app swapped for the test's), and its HEALTHCHECK command is polled until it passes; it
must fail again once the server has stopped. Then the server gets the Dockerfile's
STOPSIGNAL, as `docker stop` sends it, with fifty slow requests in flight or queued: every
one must be answered, and the exit must be clean (status 0) within the --graceful-timeout
the command gives.

Not emulated: the image build (FROM, COPY, RUN) and `USER` (the test runs as itself).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import re
import shlex
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import APPS_DIR, RawResponse, read_until_eof, wait_until
from deploy_support import example

pytestmark = pytest.mark.timeout(60)

REQUESTS = 50


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; comments dropped, continued lines joined."""
    out, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        name, _, args = whole.partition(" ")
        out.append((name.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


class Image:
    """What `docker run` takes from the Dockerfile."""

    def __init__(self, text: str):
        self.env: dict = {}
        self.workdir = "/"
        self.cmd = None
        self.healthcheck = None
        self.health_options: dict = {}
        self.stopsignal = "SIGTERM"
        for name, args in dockerfile_instructions(text):
            if name == "ENV":
                for item in shlex.split(args):
                    key, sep, value = item.partition("=")
                    assert sep, "ENV in the key=value form only: %r" % args
                    self.env[key] = value
            elif name == "WORKDIR":
                self.workdir = args
            elif name == "CMD":
                self.cmd = json.loads(args)  # the exec form; a shell form would not parse
            elif name == "HEALTHCHECK":
                options, _, command = args.partition("CMD ")
                self.health_options = dict(opt.lstrip("-").split("=", 1)
                                           for opt in options.split())
                self.healthcheck = json.loads(command)
            elif name == "STOPSIGNAL":
                self.stopsignal = args

    def option(self, flag: str) -> str:
        return self.cmd[self.cmd.index(flag) + 1]


def in_app(markers) -> int:
    """Requests that reached the app (deploy_app's /slow writes one marker each)."""
    return sum(1 for p in markers.iterdir() if not p.name.endswith(".tmp"))


def seconds(duration: str) -> float:
    m = re.fullmatch(r"(\d+)s", duration)
    assert m, "a duration in seconds: %r" % duration
    return float(m.group(1))


@pytest.fixture
def image():
    return Image(example("Dockerfile", {
        "0.0.0.0:8000": "127.0.0.1:0",
        "myproject.wsgi:application": "deploy_app:app",
        "WORKDIR /app": "WORKDIR %s" % APPS_DIR,
    }))


def health(image: Image, port: int) -> subprocess.CompletedProcess:
    """One run of the HEALTHCHECK command, bounded by its --timeout, as the runtime does
    (inside the image `python` is the interpreter the app runs on: here, ours)."""
    argv = [sys.executable if part == "python" else
            part.replace("127.0.0.1:8000", "127.0.0.1:%d" % port) for part in image.healthcheck]
    try:
        return subprocess.run(argv, capture_output=True, text=True,
                              timeout=seconds(image.health_options["timeout"]))
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(argv, -1, "", "timed out: %s" % exc)


def run_image(serve, image: Image):
    """The container's command, started as `docker run` would; returns the server once the
    HEALTHCHECK command passes, polled as the runtime would (faster than its --interval)."""
    assert image.cmd[0] == "ferrocorn"
    server = serve(*image.cmd[1:], bind="log", cwd=image.workdir, env=image.env, ready=None)
    deadline = time.monotonic() + seconds(image.health_options["start-period"])
    while (check := health(image, server.port)).returncode != 0:
        assert server.alive(), server.stderr_text()[-4000:]
        assert time.monotonic() < deadline, check.stderr[-2000:]
        time.sleep(0.1)
    return server


def test_health_check_follows_the_server(serve, image):
    server = run_image(serve, image)
    assert health(image, server.port).returncode == 0
    server.send_signal(getattr(signal, image.stopsignal))
    assert server.wait_exit(float(image.option("--graceful-timeout"))) == 0
    assert health(image, server.port).returncode != 0


@pytest.mark.ferrocorn_only
def test_stop_signal_drains_every_request(serve, tmp_path, image):
    # Gunicorn 27 may lose what is queued at TERM (Gunicorn #2409; docs/differences.md):
    # its gthread worker drops connections it has accepted but not yet read from.
    assert image.stopsignal == "SIGTERM"
    server = run_image(serve, image)
    started = tmp_path / "started"
    started.mkdir()
    capacity = int(image.option("--workers")) * int(image.option("--threads"))
    assert capacity < REQUESTS, "some requests must wait for a thread"
    request = ("GET /slow?s=1.5&started=%s HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"
               % started).encode()
    # Every request is sent before the stop: the kernel has accepted each connection.
    clients = []
    for _ in range(REQUESTS):
        client = socket.create_connection(server.address, timeout=20)
        clients.append(client)
        client.sendall(request)
    with concurrent.futures.ThreadPoolExecutor(REQUESTS) as pool, contextlib.ExitStack() as open_:
        for client in clients:
            open_.enter_context(client)
        pending = [pool.submit(read_until_eof, client, 20) for client in clients]
        # Every thread of every worker is inside a request; the others wait for one.
        wait_until(lambda: in_app(started) >= capacity, timeout=20,
                   what="%d requests in the app" % capacity)
        stopped = time.monotonic()
        server.send_signal(getattr(signal, image.stopsignal))
        graceful = float(image.option("--graceful-timeout"))
        code = server.wait_exit(graceful + 5)
        took = time.monotonic() - stopped
        answers = [RawResponse(f.result()) for f in pending]

    assert [a.status for a in answers] == [200] * REQUESTS, [a.raw[:200] for a in answers]
    assert all(a.body == b"slept\n" for a in answers)
    assert in_app(started) == REQUESTS
    assert code == 0, server.stderr_text()[-4000:]
    assert took < graceful, took
