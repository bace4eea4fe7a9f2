"""A fuzzing run: keeping connections in flight, recording results, scanning the log for
crashes and sampling RSS; then confirming hang suspects and narrowing crashes down by replay,
the summary, and ``fuzz_main`` (one whole run against a fresh server).
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter, deque
from pathlib import Path

from .checks import check_exchange, parse_responses
from .findings import KINDS, Findings
from .mutate import HAND_WRITTEN, Mutator, load_seeds
from .server import Server, start_server
from .wire import Conn, Input, Pool, choose_split


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: stop fuzzing, clean up, report."""


class Run:
    def __init__(self, args, server: Server, findings: Findings):
        self.args = args
        self.server = server
        self.findings = findings
        self.hang_after = args.timeout + 3.0
        self.pool = Pool(server.port, self.hang_after)
        self.stats = Counter()
        self.statuses = Counter()
        self.suspects = []  # held connections, to replay alone after the run
        self.crash_events = []  # [lines], [(input, seconds its connection lasted)], when
        self.rss = {"start": None, "end": None, "max": None}
        self._last_log_scan = time.monotonic()
        self.master_gone = False

    # -- per-connection results ---------------------------------------------
    def record(self, c: Conn, count=True):
        findings, statuses = check_exchange(c.inp.data, bytes(c.received), c.held)
        if count:
            self.stats["inputs"] += 1
            self.stats["requests_sent"] += c.inp.data.count(b"HTTP/")
            self.stats["responses"] += sum(1 for s, _ in statuses if s >= 200)
            self.stats["interim"] += sum(1 for s, _ in statuses if s < 200)
            self.stats["odd_versions"] += sum(1 for _, v in statuses if v > 1)
            self.statuses.update(str(s) for s, _ in statuses)
            if c.reset:
                self.stats["resets"] += 1
        # How long the server took to close after the last byte went out: at once for a
        # rejection, about --timeout when it waited for bytes that never came.
        after = round(c.t_end - c.t_sent, 2) if c.t_sent is not None and c.t_end is not None else None
        for kind, detail in findings:
            detail += (" (the connection ended %.2fs after the last byte sent)" % after if after is not None
                       else " (the connection ended before the whole input was sent)")
            self.findings.add(kind, detail, [c.inp], c.received,
                              {"held": c.held, "reset": c.reset, "closed_after_sent": after})
        if c.held and count:
            self.suspects.append(c.inp)
        return findings

    # -- housekeeping -------------------------------------------------------
    def maintain(self, force=False):
        now = time.monotonic()
        if not force and now - self._last_log_scan < 0.5:
            return
        window_start = self._last_log_scan - 1.0
        self._last_log_scan = now
        hits = self.server.scan_log()
        if hits and self.crash_events and now - self.crash_events[-1][2] < 1.5:
            # The rest of the same crash (a worker's death and its replacement often straddle
            # two scans).
            self.crash_events[-1][0].extend(hits)
            self.stats["crash_lines"] += len(hits)
        elif hits:
            cands = [(c.inp, c.t_end - c.t_start) for c in self.pool.recent if c.t_end >= window_start]
            cands += [(c.inp, now - c.t_start) for c in self.pool.conns]
            # Longest first: the connection that kills a worker is usually one it spent long on.
            cands = sorted(cands[-300:], key=lambda t: -t[1])
            self.crash_events.append((hits, cands, now))
            self.stats["crash_lines"] += len(hits)
        if not self.master_gone and not self.server.alive():
            self.master_gone = True
            self.crash_events.append((["master exited with %s" % self.server.proc.returncode],
                                      [(c.inp, 0.0) for c in self.pool.recent]
                                      + [(c.inp, 0.0) for c in self.pool.conns], now))
        rss = self.server.rss_kb()
        if rss is not None:
            self.rss["max"] = max(self.rss["max"] or 0, rss)

    def drive(self, source, until, jobs):
        """Keep `jobs` connections in flight with inputs from `source` until the deadline,
        then let the ones in flight finish."""
        while time.monotonic() < until and not self.master_gone:
            while len(self.pool.conns) < jobs:
                inp = source()
                if inp is None:
                    break
                try:
                    self.pool.submit(inp)
                except OSError as exc:
                    self.stats["connect_errors"] += 1
                    if self.stats["connect_errors"] % 100 == 1:
                        print("[%s] connect failed: %s" % (self.findings.worker, exc), file=sys.stderr)
                    time.sleep(0.05)
                    break
            if not self.pool.conns:
                self.maintain()
                continue
            for c in self.pool.step():
                self.record(c)
            self.maintain()
            self.progress()
            if self.stalled():
                return
        self.drain()

    def drain(self):
        while self.pool.conns and not self.master_gone:
            for c in self.pool.step():
                self.record(c)
            self.maintain()
            if self.stalled():
                return

    def stalled(self):
        """Nothing finished for three hang periods while connections wait: the server stopped
        serving (none of them got accepted, or they are all still within their time)."""
        now = time.monotonic()
        if self.pool.conns and now - self.pool.last_finish > 3 * self.hang_after:
            waiting = sorted(self.pool.conns, key=lambda c: c.t_start)
            self.findings.add("hang", "stall: no connection finished for %.0fs with %d in flight "
                              "(%d accepted)" % (now - self.pool.last_finish, len(waiting),
                                                 sum(1 for c in waiting if c.t_accepted)),
                              [c.inp for c in waiting[:50]])
            self.pool.close_all()
            self.pool = Pool(self.server.port, self.hang_after)
            return True
        return False

    _last_progress = 0.0

    def progress(self):
        now = time.monotonic()
        if now - self._last_progress < 10:
            return
        if self._last_progress:
            el = now - self.t0
            print("[%s] %5.0fs  inputs=%d (%.1f/s)  in flight=%d  rss=%skB  suspects=%d  %s" % (
                self.findings.worker, el, self.stats["inputs"], self.stats["inputs"] / el,
                len(self.pool.conns), self.server.rss_kb(), len(self.suspects),
                " ".join("%s=%d" % (k, self.findings.counts[k]) for k in KINDS)),
                file=sys.stderr, flush=True)
        self._last_progress = now

    # -- the phases ---------------------------------------------------------
    def warm_up(self):
        """Each hand-written request once, unmutated: they must all get a 200."""
        conns = [self.pool.submit(Input(d, desc="warm-up")) for d in HAND_WRITTEN]
        self.drain()
        for c in conns:
            statuses = [s for s in parse_responses(bytes(c.received), True)[0] if s["status"] >= 200]
            if not statuses or statuses[0]["status"] != 200:
                print("[%s] warning: warm-up request %r got %r" % (
                    self.findings.worker, c.inp.data[:40], bytes(c.received[:80])), file=sys.stderr)
        time.sleep(0.5)
        self.maintain(force=True)
        self.rss["start"] = self.server.rss_kb()

    def fuzz(self, seconds, mutator, rng):
        self.t0 = time.monotonic()

        def source():
            data, desc = mutator.generate()
            mode, pieces, pauses = choose_split(rng, data)
            return Input(data, mode, pieces, pauses, desc)

        try:
            self.drive(source, self.t0 + seconds, self.args.jobs)
        finally:
            self.elapsed = time.monotonic() - self.t0
        self.maintain(force=True)
        self.rss["end"] = self.server.rss_kb()

    def replay_alone(self, inputs, jobs=None, deadline=None):
        """Send `inputs` (concurrently, on an otherwise idle server) and wait for them all;
        returns their connections."""
        queue = deque(inputs)
        started = []

        def source():
            if not queue:
                return None
            return queue.popleft()

        jobs = jobs or len(inputs)
        self.pool.eager = True
        while (queue or self.pool.conns) and not self.master_gone:
            if deadline is not None and time.monotonic() > deadline:
                queue.clear()
            while queue and len(self.pool.conns) < jobs:
                started.append(self.pool.submit(source()))
            for c in self.pool.step():
                pass
            if self.stalled():
                break
        self.pool.eager = False
        return started

    def confirm_suspects(self, budget):
        """Replay each held connection alone; held again is a hang."""
        deadline = time.monotonic() + budget
        seen = set()
        checked = 0
        for inp in self.suspects:
            if inp.data in seen:
                continue
            seen.add(inp.data)
            if time.monotonic() > deadline or self.master_gone:
                break
            checked += 1
            (c,) = self.replay_alone([inp])
            if c.held:
                self.findings.add("hang", "connection held over %.0fs past the worker taking it "
                                  "and past its last byte (timeout %ss), also when replayed alone" % (
                                      self.hang_after, self.args.timeout),
                                  [inp], c.received, {"held": True})
        self.stats["suspects"] = len(self.suspects)
        self.stats["suspects_confirmed"] = self.findings.counts["hang"]
        self.stats["suspects_unchecked"] = len({i.data for i in self.suspects}) - checked

    def triage_crashes(self, budget, max_events=3):
        """Count every crash event; narrow the first few down to the input(s) that cause
        them by replaying the inputs in flight around them, in halves."""
        deadline = time.monotonic() + budget
        n = -1
        while self.crash_events:
            n += 1
            lines, cands, _ = self.crash_events.pop(0)
            detail = "; ".join(lines[:6]) + (" ..." if len(lines) > 6 else "")
            group = cands
            narrowed = ""
            if n < max_events and cands and not self.master_gone and time.monotonic() < deadline:
                group, narrowed = self._narrow(cands, deadline)
            elif n >= max_events:
                narrowed = " (not narrowed down: only the first %d crashes are)" % max_events
            if group is cands:
                group = [i for i, _ in cands]
            self.findings.add("crash", detail + narrowed, group,
                              extra={"log_lines": lines, "candidates": len(cands)})

    def _reproduces(self, group, deadline):
        self.stats["crash_lines"] += len(self.server.scan_log())  # late lines of the last try
        self.replay_alone(group, jobs=32, deadline=deadline)
        time.sleep(0.5)
        hits = self.server.scan_log()
        self.stats["crash_lines"] += len(hits)
        return bool(hits) or not self.server.alive()

    def _narrow(self, cands, deadline):
        """Replay the slow candidates (the connection that kills a worker is usually one the
        server spent long on), then all of them, then halve whichever reproduced."""
        slow = [i for i, d in cands if d >= 1.0]
        for group in ([slow] if 0 < len(slow) < len(cands) else []) + [[i for i, _ in cands]]:
            if time.monotonic() < deadline and self._reproduces(group, deadline):
                break
        else:
            return [i for i, _ in cands], " (not reproduced by replaying the %d inputs around it)" % len(cands)
        while len(group) > 1 and time.monotonic() < deadline and self.server.alive():
            half = len(group) // 2
            a, b = group[:half], group[half:]
            if self._reproduces(a, deadline):
                group = a
            elif self._reproduces(b, deadline):
                group = b
            else:
                break
        return group, " (reproduced by %d input(s) of %d)" % (len(group), len(cands))


def summary(args, run: Run, findings: Findings, interrupted):
    run.rss["max"] = max([v for v in run.rss.values() if v is not None], default=None)
    s = {
        "worker": args.worker, "cmd": args.cmd, "seed": args.seed,
        "seconds": round(getattr(run, "elapsed", 0.0), 1),
        "inputs": run.stats["inputs"],
        "inputs_per_sec": round(run.stats["inputs"] / max(getattr(run, "elapsed", 0.0), 1e-9), 1),
        "requests_sent": run.stats["requests_sent"],
        "responses": run.stats["responses"],
        "interim_responses": run.stats["interim"],
        "statuses": dict(sorted(run.statuses.items())),
        "resets": run.stats["resets"],
        "connect_errors": run.stats["connect_errors"],
        "odd_versions": run.stats["odd_versions"],
        "crashes": findings.counts["crash"],
        "hangs": findings.counts["hang"],
        "desyncs": findings.counts["desync"],
        "bad_responses": findings.counts["bad"],
        "statuses_unexpected": findings.counts["status"],
        "suspects": run.stats["suspects"],
        "suspects_unchecked": run.stats["suspects_unchecked"],
        "crash_log_lines": run.stats["crash_lines"],
        "rss_start_kb": run.rss["start"], "rss_end_kb": run.rss["end"], "rss_max_kb": run.rss["max"],
        "saved": findings.saved,
        "interrupted": interrupted,
    }
    return s


def fuzz_main(args):
    rng = random.Random(args.seed)
    valid, invalid = load_seeds(args.conformance)
    if not valid and not invalid:
        print("warning: no conformance seeds under %s; using the hand-written ones only" % args.conformance,
              file=sys.stderr)
    mutator = Mutator(rng, valid, invalid)
    workdir = Path(tempfile.mkdtemp(prefix="ferrocorn-server-fuzz-"))
    findings = Findings(args.worker, args.cmd, args.seed, args.save_limit)
    server = None
    interrupted = False
    run = None
    try:
        server = start_server(args, workdir)
        server.scan_log()
        print("[%s] server pid %d, worker pid %s, port %d; seed %d; %d valid + %d invalid seeds" % (
            args.worker, server.proc.pid, server.worker_pid, server.port, args.seed,
            len(valid), len(invalid)), file=sys.stderr, flush=True)
        run = Run(args, server, findings)
        try:
            run.warm_up()
            run.fuzz(args.seconds, mutator, rng)
            run.confirm_suspects(budget=max(30.0, args.seconds * 0.1))
            run.maintain(force=True)  # crashes while confirming are crashes too
            run.triage_crashes(budget=max(60.0, args.seconds * 0.1))
        except Interrupted:
            interrupted = True
            run.pool.close_all()
            run.maintain(force=True)
            run.rss["end"] = run.rss["end"] or server.rss_kb()
            for lines, cands, _ in run.crash_events:
                findings.add("crash", "; ".join(lines[:6]), [i for i, _ in cands], extra={"log_lines": lines})
    finally:
        if run is not None:
            run.pool.close_all()
        if server is not None:
            server.stop()
            if findings.counts["crash"]:
                keep = findings.dir / ("server-%d.log" % args.seed)
                keep.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(server.log_path, keep)
                print("[%s] server log kept as %s" % (args.worker, keep), file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
    s = summary(args, run, findings, interrupted)
    print("server-fuzz %s: %d inputs in %.0fs (%.1f/s), %d requests sent, %d responses; "
          "crashes=%d hangs=%d desyncs=%d bad=%d status=%d; rss start/end/max %s/%s/%s kB%s" % (
              args.worker, s["inputs"], s["seconds"], s["inputs_per_sec"], s["requests_sent"],
              s["responses"], s["crashes"], s["hangs"], s["desyncs"], s["bad_responses"],
              s["statuses_unexpected"],
              s["rss_start_kb"], s["rss_end_kb"], s["rss_max_kb"],
              " (interrupted)" if interrupted else ""))
    print(json.dumps(s, indent=1))
    return 1 if any(findings.counts[k] for k in KINDS) else (130 if interrupted else 0)
