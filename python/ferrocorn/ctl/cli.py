"""`ferrocornc`: the command line of the control socket, one command (-c) or a prompt.

Owns: the flags (gunicornc's, plus --timeout), what goes to stdout and stderr, exit
statuses (0 for any ok reply, 1 for an error reply or a failed connection, 130 on Ctrl-C, 2
for bad flags), and the interactive session with its readline history.
Must not: frame messages or read sockets (client.py), or lay out tables (format.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

from ferrocorn.ctl.client import (
    DEFAULT_TIMEOUT,
    ConnectError,
    ControlClient,
    ControlError,
    ReplyError,
    default_socket_path,
    split_command,
)
from ferrocorn.ctl.format import format_reply

PROG = "ferrocornc"
PROMPT = "ferrocorn> "
QUIT_WORDS = ("quit", "exit", "q")

# Recall is per user, like gunicornc's ~/.gunicornc_history. Until ferrocornc has a history
# of its own it starts from gunicornc's: the commands are the same, so someone switching
# servers keeps what they typed. gunicornc's file is only ever read.
HISTORY_FILE = ".ferrocornc_history"
GUNICORNC_HISTORY_FILE = ".gunicornc_history"
HISTORY_LENGTH = 1000

EXAMPLES = """\
examples:
  ferrocornc                        prompt, on the default socket
  ferrocornc -s /run/app.ctl        prompt, on that socket
  ferrocornc -c "show workers"      one command, then exit
  ferrocornc -c "worker add 2"      two more workers
  ferrocornc -j -c "show stats"     the reply's data as JSON, for scripts
"""


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number of seconds: %r" % text) from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be more than 0 seconds: %r" % text)
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Control a running ferrocorn (or Gunicorn) through its control socket.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-s",
        "--socket",
        default=default_socket_path(),
        help="the control socket (default: $XDG_RUNTIME_DIR/gunicorn.ctl when that directory "
        "exists, else ~/.gunicorn/gunicorn.ctl, as the server's --control-socket)",
    )
    parser.add_argument("-c", "--command", help="run this command, print the reply and exit")
    parser.add_argument(
        "-j", "--json", action="store_true", help="print the reply's data as JSON"
    )
    parser.add_argument("-v", "--version", action="store_true", help="print the version and exit")
    parser.add_argument(
        "-t",
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="give up on a connection or reply after this long (default: %g)" % DEFAULT_TIMEOUT,
    )
    return parser


def _render(words, data, as_json: bool) -> str:
    return json.dumps(data, indent=2) if as_json else format_reply(words, data)


def run_one(client: ControlClient, line: str, as_json: bool) -> str:
    """The text to print for one command's ok reply; raises ControlError otherwise."""
    words, args = split_command(line)
    # Re-quoted, so the server's own split of the line gives back the same tokens.
    data = client.request(shlex.join(words + args))
    return _render(words, data, as_json)


def run_command(path: str, line: str, as_json: bool, timeout: float) -> int:
    try:
        with ControlClient(path, timeout) as client:
            text = run_one(client, line, as_json)
    except ControlError as exc:
        print("Error: %s" % exc, file=sys.stderr)
        return 1
    print(text)
    return 0


def _history_setup():
    """readline with the saved history loaded, or None when there is no terminal to edit
    on (piped commands neither read nor grow the history)."""
    if not sys.stdin.isatty():
        return None
    try:
        import readline
    except ImportError:
        return None
    load_history(readline, os.path.expanduser("~"))
    return readline


def load_history(readline, home: str) -> None:
    readline.set_history_length(HISTORY_LENGTH)
    for name in (HISTORY_FILE, GUNICORNC_HISTORY_FILE):
        try:
            readline.read_history_file(os.path.join(home, name))
            return
        except OSError:
            continue


def save_history(readline, home: str) -> None:
    try:
        readline.write_history_file(os.path.join(home, HISTORY_FILE))
    except OSError as exc:
        print("ferrocornc: history not saved: %s" % (exc.strerror or exc), file=sys.stderr)


def run_interactive(path: str, as_json: bool, timeout: float) -> int:
    client = ControlClient(path, timeout)
    try:
        client.connect()
    except ControlError as exc:
        print("Error: %s" % exc, file=sys.stderr)
        return 1
    print("Connected to %s" % path)
    print("Type 'help' for available commands, 'quit' to exit.")
    print()
    readline = _history_setup()
    status = 0
    try:
        status = _session(client, as_json)
    except KeyboardInterrupt:
        print()
        status = 130
    finally:
        client.close()
        if readline is not None:
            save_history(readline, os.path.expanduser("~"))
    return status


def _session(client: ControlClient, as_json: bool) -> int:
    while True:
        try:
            line = input(PROMPT).strip()
        except EOFError:
            print()
            return 0
        if not line:
            continue
        if line.lower() in QUIT_WORDS:
            return 0
        try:
            print(run_one(client, line, as_json))
        except ReplyError as exc:
            # The connection is fine; only this command failed.
            print("Error: %s" % exc)
        except ConnectError as exc:
            # The server is gone (request() reconnects when a connection breaks).
            print("Error: %s" % exc)
            return 1
        except ControlError as exc:
            print("Error: %s" % exc)
        print()


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = _run(args)
        # Flushed here, where a reader that went away can still be dealt with.
        sys.stdout.flush()
        return status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`ferrocornc -c ... | head`): nothing more can be shown.
        # Pointing stdout at /dev/null keeps the interpreter's final flush from failing too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _run(args) -> int:
    if args.version:
        from ferrocorn import __version__

        print("%s (ferrocorn %s)" % (PROG, __version__))
        return 0
    path = os.path.join(os.getcwd(), args.socket)  # an absolute path stays as it is
    if args.command is not None:
        return run_command(path, args.command, args.json, args.timeout)
    return run_interactive(path, args.json, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
