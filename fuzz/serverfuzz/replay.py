"""Replaying saved findings (``--replay``) against a fresh server and printing what happened.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from .checks import check_exchange
from .findings import Findings
from .run import Run
from .server import start_server
from .wire import Input


def replay_main(args):
    """Replay saved inputs, one file at a time, each on the same fresh server."""
    files = [Path(f) for f in args.replay]
    loaded = []
    for f in files:
        data = f.read_bytes()
        meta = {}
        side = f.with_suffix(".json")
        if side.exists():
            meta = json.loads(side.read_text())
        if "inputs" in meta:
            inputs = [Input.from_json(o) for o in meta["inputs"]]
        elif meta:
            inputs = [Input.from_json(meta, data)]
        else:
            inputs = [Input(data)]
        if args.whole:
            inputs = [Input(i.data) for i in inputs]
        loaded.append((f, meta, inputs))
        if args.worker is None and meta.get("worker"):
            args.worker = meta["worker"]
    args.worker = args.worker or "sync"
    workdir = Path(tempfile.mkdtemp(prefix="ferrocorn-server-replay-"))
    findings = Findings(args.worker, args.cmd, None, 0)
    status = 0
    server = None
    try:
        server = start_server(args, workdir)
        server.scan_log()
        run = Run(args, server, findings)
        for f, meta, inputs in loaded:
            print("== %s (%d input(s); %s)" % (f, len(inputs), meta.get("detail", "no sidecar")))
            t = time.monotonic()
            conns = run.replay_alone(inputs, jobs=32)
            time.sleep(0.5)
            hits = server.scan_log()
            for c in conns:
                print("-- sent %d bytes split %s in %d piece(s): %r" % (
                    len(c.inp.data), c.inp.mode, len(c.inp.pieces), c.inp.data[:600]))
                print("   received %d bytes%s%s in %.2fs: %r" % (
                    len(c.received), ", then reset" if c.reset else "",
                    ", HELD (closed by us)" if c.held else "", c.t_end - c.t_start,
                    bytes(c.received[:1200])))
                found, statuses = check_exchange(c.inp.data, bytes(c.received), c.held)
                if c.held:
                    found.append(("hang", "held past %.1fs" % run.hang_after))
                print("   statuses %s; findings: %s" % ([s for s, _ in statuses], found or "none"))
                status |= 1 if found else 0
            if hits or not server.alive():
                status = 1
                print("   server log: " + "\n   server log: ".join(hits or ["master exited"]))
            print("   (%.2fs)" % (time.monotonic() - t))
            if not server.alive():
                break
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return status
