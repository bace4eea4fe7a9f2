#!/usr/bin/env python3
"""Fuzz the real running server over sockets (plain Python 3, standard library only).

Starts the server command (``--cmd``, default ``.venv/bin/ferrocorn``; a ``gunicorn``
executable works too) with one worker of the chosen class (``sync``, ``gthread`` or
``asgi``), bound to 127.0.0.1:0, serving a tiny app (WSGI, or the same in ASGI 3 for
``asgi``) that reads the whole body and answers 200. Any final response other than 200 is
therefore the server rejecting the request (or the app answering 408 when the server's read
of an incomplete body timed out; for ``asgi``, when ``receive()`` said ``http.disconnect``
before the body ended).

Inputs are mutated from the Gunicorn request corpus (``../shared/conformance/
gunicorn-requests/{valid,invalid}/*.json``) and a few hand-written requests; each goes over a
fresh connection, cut into pieces in one of several ways, and the connection is read until the
server closes it (the client never half-closes). Checks, per input:

- the number of final responses is at most the number of requests the bytes could hold
  (occurrences of ``HTTP/`` plus one for a final rejection of garbage) -> ``desync``;
- nothing follows a non-200 final response, nor a response that said ``Connection: close``
  -> ``desync``;
- what came back parses as HTTP/1.x responses -> ``bad``;
- no final response is a 500: the app never fails, so the server made that up -> ``status``;
- the server does not hold the connection longer than ``--timeout`` + 3 s -> ``hang``.

and, for the server as a whole:

- its log never shows a panic, a traceback, a worker exiting, timing out or being rebooted,
  and the master never exits -> ``crash``;
- the worker's RSS at start, at end and at most (reported, not judged).

A connection counts as held only from the moment the worker has accepted it (read from
/proc/net/tcp) and from the last byte that moved either way, so connections queued behind a
busy worker are not hangs. A connection held that long is a suspect; after the run each
suspect is replayed alone against the idle server and only one held again is a ``hang``. For
a crash, the inputs in flight around it are replayed in halves to narrow it down.

Every finding is saved as ``fuzz/server-findings/<worker>/<kind>-<n>.bin`` (the bytes) with a
``.json`` beside it (the pieces, the pauses, what came back, the detail); replay one with
``--replay FILE``. Exits 1 if anything was found, 2 on a usage or startup error.

This file is the entry point (arguments and signals); the parts are in ``serverfuzz/``:
``mutate`` (seeds, mutations), ``wire`` (splits, connections), ``checks`` (response parsing,
per-connection checks), ``server`` (the process, its log, RSS), ``findings`` (saving them),
``run`` (a fuzzing run, suspects, crash triage, summary) and ``replay`` (``--replay``).
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
from pathlib import Path

from serverfuzz import CONFORMANCE_DIR, REPO_ROOT
from serverfuzz.replay import replay_main
from serverfuzz.run import Interrupted, fuzz_main
from serverfuzz.server import WORKERS


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", choices=WORKERS, default=None,
                   help="worker class (default sync; for --replay, the one the finding was saved with)")
    p.add_argument("--seconds", type=float, default=60.0, help="how long to fuzz (default 60)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    p.add_argument("--cmd", default=str(REPO_ROOT / ".venv" / "bin" / "ferrocorn"),
                   help="server command, split like a shell would (default .venv/bin/ferrocorn)")
    p.add_argument("--jobs", type=int, default=32, help="connections in flight (default 32)")
    p.add_argument("--timeout", type=int, default=3, help="the server's --timeout (default 3)")
    p.add_argument("--threads", type=int, default=4, help="gthread threads (default 4)")
    p.add_argument("--replay", action="append", metavar="FILE",
                   help="replay a saved finding (.bin, with its .json if present); repeatable")
    p.add_argument("--whole", action="store_true", help="with --replay: send each input in one piece")
    p.add_argument("--save-limit", type=int, default=20, help="findings saved per kind (default 20)")
    p.add_argument("--conformance", type=Path, default=CONFORMANCE_DIR, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 32)

    def on_signal(signum, frame):
        # Once: the cleanup that follows (stopping the server) must not be interrupted.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise Interrupted()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        if args.replay:
            return replay_main(args)
        args.worker = args.worker or "sync"
        return fuzz_main(args)
    except RuntimeError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
