"""What the deploy-guide tests share: the example files of docs/deploy/ with their test
values swapped in, a real nginx in front of the server, and the guide's fenced blocks.

Owns: reading docs/deploy/ and docs/deploy.md, starting and stopping nginx. Must not: start
the server under test (conftest's `serve` and the tests do) or judge its behaviour.

The example files are written for a real machine (port 80, /run/ferrocorn.sock, /srv/...).
A test swaps exact strings of a file for its own values with `example()`, which fails when
a string is missing, so an edit of an example that a test depends on cannot go unnoticed.

nginx gets its listening sockets already bound: the test binds and listens on loopback
ports and hands the descriptors over in the `NGINX` environment variable, the way nginx
passes its sockets to a new binary on an upgrade. nginx adopts an inherited socket whose
address equals a `listen` of its configuration, so no port is ever picked and released.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO_ROOT, raw_request

DOCS = REPO_ROOT / "docs"
EXAMPLES = DOCS / "deploy"
GUIDE = DOCS / "deploy.md"

# Debian's package installs nginx in /usr/sbin, which is not on every user's PATH.
NGINX_PLACES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


def example(name: str, swaps: dict | None = None) -> str:
    """The text of docs/deploy/`name` with each key of `swaps` replaced by its value; each
    key must occur in the file."""
    text = (EXAMPLES / name).read_text()
    for old, new in (swaps or {}).items():
        if old not in text:
            raise AssertionError(
                "%r no longer appears in docs/deploy/%s; the test swaps it for %r: update "
                "the test with the example" % (old, name, new))
        text = text.replace(old, str(new))
    return text


# ---------------------------------------------------------------------------
# The guide's fenced blocks.

# A block that shows a file: ```LANG file=deploy/NAME (the path is relative to docs/).
FENCE_RE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)


def guide_files() -> list[tuple[str, str]]:
    """(path relative to docs/, block text) for every fenced block of the guide labelled
    `file=PATH`."""
    found = []
    for match in FENCE_RE.finditer(GUIDE.read_text()):
        labels = dict(part.split("=", 1) for part in match.group(1).split() if "=" in part)
        if "file" in labels:
            found.append((labels["file"], match.group(2)))
    return found


# ---------------------------------------------------------------------------
# nginx.


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in NGINX_PLACES if os.access(p, os.X_OK)), None)
    if not found:
        pytest.fail("nginx is not installed: `make test` installs it (Debian package nginx); "
                    "or run `apt-get install nginx`", pytrace=False)
    return found


def loopback_listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(511)
    # nginx takes an inherited socket as it left it on an upgrade: non-blocking. A blocking
    # one would stall a worker in accept(2) with its other connections unattended.
    sock.setblocking(False)
    return sock


# The test's nginx.conf: a distribution's main file cut down to what the site file needs,
# with every path nginx writes under the test's directory. The access log records each
# upstream attempt, so a retry after a failed attempt shows as "502, 200".
NGINX_WORKERS = 2

MAIN_CONF = """\
daemon off;
master_process on;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{
    worker_connections 1024;
}}
http {{
    log_format deploy '$status "$upstream_status" "$upstream_addr" "$request" $request_length';
    access_log {dir}/access.log deploy;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {site};
}}
"""

ACCESS_RE = re.compile(r'^(\d{3}) "([^"]*)" "([^"]*)" "([^"]*)" (\d+)$')


@dataclass
class AccessLine:
    status: int
    upstream_status: str
    upstream_addr: str
    request: str


class Nginx:
    """A running nginx serving the site file `site` (text) on two loopback ports, plain and
    TLS, whose numbers are in `.http_port` and `.https_port` before the site is written:
    `site` is a function of (http_port, https_port) returning the file's text."""

    def __init__(self, dir: Path, site):
        self.dir = dir
        dir.mkdir(parents=True, exist_ok=True)
        plain, tls = loopback_listener(), loopback_listener()
        self.http_port = plain.getsockname()[1]
        self.https_port = tls.getsockname()[1]
        self.site_path = dir / "site.conf"
        self.site_path.write_text(site(self.http_port, self.https_port))
        uwsgi_params = Path("/etc/nginx/uwsgi_params")
        if uwsgi_params.exists():
            # A relative `include uwsgi_params;` is looked up beside the main file.
            shutil.copy(uwsgi_params, dir / "uwsgi_params")
        self.conf_path = dir / "nginx.conf"
        # Run as root, nginx's workers would switch to `nobody`, who cannot enter the
        # test's private directory.
        user = "user root;" if os.geteuid() == 0 else ""
        self.conf_path.write_text(MAIN_CONF.format(
            dir=dir, site=self.site_path, user=user, workers=NGINX_WORKERS))
        self.error_log = dir / "error.log"
        self.access_log = dir / "access.log"
        self.stderr_path = dir / "nginx.stderr"
        fds = (plain.fileno(), tls.fileno())
        env = dict(os.environ, NGINX="".join("%d;" % fd for fd in fds))
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                [nginx_binary(), "-p", str(dir), "-c", str(self.conf_path), "-e", "stderr"],
                env=env, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                pass_fds=fds, start_new_session=True,
            )
        # nginx holds its own copies; ours would keep the ports open after it stops.
        plain.close()
        tls.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    @property
    def http(self) -> tuple:
        return ("127.0.0.1", self.http_port)

    @property
    def https(self) -> tuple:
        return ("127.0.0.1", self.https_port)

    def logs(self) -> str:
        parts = []
        for path in (self.stderr_path, self.error_log):
            if path.exists():
                parts.append("---- %s ----\n%s" % (path.name, path.read_text()[-4000:]))
        return "\n".join(parts)

    def _wait_ready(self, timeout: float = 20.0):
        # The ports listen from the start (they are ours), so a connection is queued even
        # before nginx runs; an answer means a worker took it.
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    "nginx exited with %s\n%s" % (self.proc.returncode, self.logs()))
            try:
                raw_request(self.http, b"GET /healthz HTTP/1.0\r\nHost: example.com\r\n\r\n",
                            timeout=2)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        "nginx did not answer within %ss\n%s" % (timeout, self.logs()))
                time.sleep(0.05)

    def access_lines(self) -> list[AccessLine]:
        out = []
        # The last piece is empty, or a line still being written.
        for line in self.access_log.read_text().split("\n")[:-1]:
            m = ACCESS_RE.match(line)
            if not m:
                raise AssertionError("unexpected access log line %r" % line)
            out.append(AccessLine(int(m.group(1)), m.group(2), m.group(3), m.group(4)))
        return out

    def error_lines(self, levels=("error", "crit", "alert", "emerg")) -> list[str]:
        """The error log's lines at `levels` (nginx logs a failed upstream attempt at error)."""
        text = self.error_log.read_text() if self.error_log.exists() else ""
        pattern = re.compile(r"^\S+ \S+ \[(%s)\]" % "|".join(levels))
        return [line for line in text.splitlines() if pattern.match(line)]

    def stop(self):
        """Graceful stop (QUIT), then TERM, then KILL of the group, whatever it takes."""
        for sig, wait in ((signal.SIGQUIT, 10), (signal.SIGTERM, 5)):
            if self.proc.poll() is not None:
                break
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
