"""The client end of the control socket: one connection, framed requests, checked replies.

Owns: the wire format (a 4-byte big-endian length, then UTF-8 JSON), request ids, the
connection's lifetime and its time limit, and turning every way a connection or a reply can
go wrong into a `ControlError` whose message says what to do about it.
Must not: print anything, or know the shape of any command's data (cli.py and format.py do).
"""

from __future__ import annotations

import errno
import json
import os
import select
import shlex
import socket
import stat
import struct
import time

# The server drops a message longer than this; a reply claiming more is not one of its own.
MAX_MESSAGE = 16 * 1024 * 1024

# gunicornc's fixed limit; here it is only the default of --timeout.
DEFAULT_TIMEOUT = 30.0

# sun_path holds 108 bytes on Linux, the last one the terminating NUL.
_MAX_UNIX_PATH = 107

_LENGTH = struct.Struct(">I")


class ControlError(Exception):
    """A command did not get an ok reply; the message is meant for the user."""


class ConnectError(ControlError):
    """The control socket could not be reached."""


class ReplyError(ControlError):
    """The server understood the request and answered with an error."""


class TransportError(ControlError):
    """The connection broke, timed out, or carried something that is not a reply."""


def default_socket_path() -> str:
    """Where the server puts its control socket when not told: the same rule as Gunicorn's
    (and ferrocorn's) `control_socket` default, so both ends agree without flags."""
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and os.path.isdir(runtime_dir):
        return os.path.join(runtime_dir, "gunicorn.ctl")
    return os.path.join(os.path.expanduser("~"), ".gunicorn", "gunicorn.ctl")


def split_command(line: str) -> tuple[list[str], list[str]]:
    """Split a typed command into its command words and its arguments.

    The words run up to the first number or dash-led token (`worker add 2` gives
    `["worker", "add"]` and `["2"]`), which is how the formatter for a reply is chosen.
    """
    try:
        parts = shlex.split(line)
    except ValueError as exc:
        raise ControlError("cannot parse the command: %s" % exc) from None
    words: list[str] = []
    args: list[str] = []
    for part in parts:
        if args or part.isdigit() or part.startswith("-"):
            args.append(part)
        else:
            words.append(part)
    return words, args


def _describe_connect_error(path: str, exc: OSError) -> str:
    prefix = "cannot connect to %s: " % path
    code = exc.errno
    if code in (errno.ENOENT, errno.ENOTDIR):
        return prefix + (
            "no such socket; is the server running, and is this its --control-socket path? "
            "(-s chooses the path)"
        )
    if code in (errno.EACCES, errno.EPERM):
        return prefix + (
            "permission denied; run as the server's user, or start the server with a wider "
            "--control-socket-mode"
        )
    if code == errno.ECONNREFUSED:
        try:
            is_socket = stat.S_ISSOCK(os.stat(path).st_mode)
        except OSError:
            is_socket = True
        if not is_socket:
            return prefix + "this is not a socket"
        return prefix + (
            "nothing is listening; the server that made this socket has stopped, or runs "
            "with --no-control-socket"
        )
    if code is None and len(os.fsencode(path)) > _MAX_UNIX_PATH:
        return prefix + (
            "the path is %d bytes long, a unix socket path can have at most %d"
            % (len(os.fsencode(path)), _MAX_UNIX_PATH)
        )
    return prefix + (exc.strerror or str(exc))


class ControlClient:
    """One connection to a control socket; `request()` sends a command and returns the data
    of its ok reply. Use it as a context manager, or call `close()`."""

    def __init__(self, path: str, timeout: float = DEFAULT_TIMEOUT):
        self.path = path
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._last_id = 0

    def __enter__(self) -> ControlClient:
        self.connect()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def connect(self) -> None:
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except socket.timeout:
            sock.close()
            raise ConnectError(
                "cannot connect to %s: no answer within %g s" % (self.path, self.timeout)
            ) from None
        except OSError as exc:
            sock.close()
            raise ConnectError(_describe_connect_error(self.path, exc)) from None
        self._sock = sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _drop_if_closed_by_server(self) -> None:
        # The server closes connections that sit idle (300 s in Gunicorn). Nothing has been
        # sent yet, so reconnecting now cannot run a command twice.
        if self._sock is None:
            return
        try:
            readable, _, _ = select.select([self._sock], [], [], 0)
            if not readable:
                return
            # Readable before a request means EOF, a reset, or bytes no request asked for:
            # this connection cannot carry a request/reply pair any more.
        except (OSError, ValueError):
            pass
        self.close()

    def request(self, command: str, args: list[str] | tuple = ()):
        """Send `command` (plus `args`) and return the `data` of the ok reply.

        Raises ReplyError for an error reply, ConnectError or TransportError otherwise; after a
        TransportError the connection is closed, and the next request opens a new one.
        """
        self._drop_if_closed_by_server()
        self.connect()
        self._last_id += 1
        request_id = self._last_id
        payload = json.dumps({"id": request_id, "command": command, "args": list(args)})
        body = payload.encode("utf-8")
        deadline = time.monotonic() + self.timeout
        try:
            self._sock.settimeout(self.timeout)
            self._sock.sendall(_LENGTH.pack(len(body)) + body)
            reply = self._read_reply(deadline)
        except socket.timeout:
            self.close()
            raise TransportError(
                "no reply from %s within %g s (-t sets the limit)" % (self.path, self.timeout)
            ) from None
        except TransportError:
            self.close()
            raise
        except OSError as exc:
            self.close()
            raise TransportError(
                "connection to %s failed: %s" % (self.path, exc.strerror or exc)
            ) from None
        return _check_reply(reply, request_id)

    def _recv_exactly(self, size: int, deadline: float, reply_start: bool) -> bytes:
        chunks = []
        remaining = size
        while remaining:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout()
            self._sock.settimeout(left)
            chunk = self._sock.recv(min(remaining, 1 << 16))
            if not chunk:
                if reply_start and remaining == size:
                    raise TransportError(
                        "the server closed the connection without replying (it drops requests "
                        "it cannot read)"
                    )
                raise TransportError("the server closed the connection in the middle of a reply")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _read_reply(self, deadline: float):
        (length,) = _LENGTH.unpack(self._recv_exactly(4, deadline, True))
        if length > MAX_MESSAGE:
            raise TransportError(
                "the reply announces %d bytes, more than the %d a control message may have; "
                "is %s a control socket?" % (length, MAX_MESSAGE, self.path)
            )
        body = self._recv_exactly(length, deadline, False)
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise TransportError("the reply is not UTF-8 JSON: %s" % exc) from None


def _check_reply(reply, request_id: int):
    if not isinstance(reply, dict):
        raise TransportError("the reply is a JSON %s, not an object" % type(reply).__name__)
    reply_id = reply.get("id")
    if reply_id != request_id:
        raise TransportError("the reply is for request %r, not %r" % (reply_id, request_id))
    status = reply.get("status")
    if status == "ok":
        return reply.get("data", {})
    if status == "error":
        message = reply.get("error")
        if message is None or message == "":
            raise ReplyError("the server reported an error without saying what")
        raise ReplyError(message if isinstance(message, str) else json.dumps(message))
    raise TransportError("the reply's status is %r, neither 'ok' nor 'error'" % (status,))
