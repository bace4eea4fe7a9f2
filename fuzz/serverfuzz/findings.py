"""Findings: counting them by kind and saving each as ``<kind>-<n>.bin`` (the bytes sent)
with a ``.json`` sidecar under ``fuzz/server-findings/<worker>/``.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import time
from collections import Counter

from . import FINDINGS_DIR


KINDS = ("crash", "hang", "desync", "bad", "status")


class Findings:
    def __init__(self, worker, cmd, seed, save_limit):
        self.dir = FINDINGS_DIR / worker
        self.worker = worker
        self.cmd = cmd
        self.seed = seed
        self.save_limit = save_limit
        self.counts = Counter()
        self.saved = []
        self._saved_per_kind = Counter()

    def _next_path(self, kind):
        self.dir.mkdir(parents=True, exist_ok=True)
        taken = [int(m.group(1)) for p in self.dir.glob(kind + "-*.bin")
                 for m in [re.fullmatch(re.escape(kind) + r"-(\d+)\.bin", p.name)] if m]
        return self.dir / ("%s-%d.bin" % (kind, max(taken, default=0) + 1))

    def add(self, kind, detail, inputs, received=None, extra=None, count=True):
        """Count one finding and save its input(s); returns the .bin path (or None)."""
        if count:
            self.counts[kind] += 1
        print("[%s] %s: %s" % (self.worker, kind.upper(), detail), file=sys.stderr, flush=True)
        if self._saved_per_kind[kind] >= self.save_limit or not inputs:
            return None
        self._saved_per_kind[kind] += 1
        path = self._next_path(kind)
        meta = {"kind": kind, "worker": self.worker, "detail": detail, "cmd": self.cmd,
                "seed": self.seed, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
        meta.update(inputs[0].to_json())
        if received is not None:
            meta["received_base64"] = base64.b64encode(bytes(received)).decode()
        if len(inputs) > 1:
            meta["inputs"] = [i.to_json() for i in inputs]
        if extra:
            meta.update(extra)
        path.write_bytes(inputs[0].data)
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
        self.saved.append(str(path))
        print("[%s]   saved %s" % (self.worker, path), file=sys.stderr, flush=True)
        return path
