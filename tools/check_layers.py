#!/usr/bin/env python3
"""Layering check for the ferrocorn crate (src/), run by `make lint`.

Two rules, both read from the Rust sources with a small lexer (no cargo, no third-party
packages, Python 3.11 standard library only):

1. **No module cycles.** Every .rs file under src/ is a module (src/lib.rs = `crate`,
   src/a.rs or src/a/mod.rs = `a`, src/a/b.rs = `a::b`). A module depends on another when it
   names it: `use crate::x::y`, grouped `use crate::{a, b::{c, d}}`, `use super::...`,
   `use self::...`, relative `use child::...`, and inline paths such as `crate::x::y::f()`
   or `super::z::T`, and `m::x::f()` where `use crate::m;` brought the module `m` in. A
   path counts for the longest module that prefixes it; when the next
   segment is a name that module imports (`pub use`, or a private `use`, which children can
   see), the module it comes from counts too, so a parent's facade re-export does not hide
   a sibling dependency.
   Edges between a module and its own ancestors or descendants are ignored (a child using
   its parent's items and a parent re-exporting its children are normal Rust). Test code
   is ignored: `#[cfg(test)]` items (inline `mod tests { ... }`, `#[cfg(test)] mod x;` and
   everything under it), modules named `tests`, and `*_tests.rs` modules.
   Cycles are looked for at every level of the module tree: under each module, its children
   are the nodes and a child X depends on a child Y when anything in X's subtree depends on
   anything in Y's subtree. Every strongly connected component of more than one child is
   reported with the references (file:line) that make it.

2. **Bridges do no socket I/O.** Files of the bridge modules (`wsgi` and `asgi`) must not
   name anything in FORBIDDEN below. Comments, doc comments, string and
   char literals and `#[cfg(test)]` code are blanked out before matching; identifiers
   match as whole words.

Usage:
    python3 tools/check_layers.py              # check the crate of this repository
    python3 tools/check_layers.py --root DIR   # check DIR/src
    python3 tools/check_layers.py --self-test  # check the checker on synthetic trees

Exit status: 0 clean, 1 violations found (or a self-test failed), 2 usage or input error.

Not handled: `#[path = "..."]` module attributes (none in src/; reported as an error, exit
1, so they cannot silently hide files), paths that only exist after macro expansion, and
names reached through a glob import (`use x::*` counts for `x` itself). `use` inside a
function body is treated as if it were at module level.
"""

from __future__ import annotations

import argparse
import bisect
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rust_modules import ParsedFile, Path_, UseLeaf, is_test_name, parse_file

# --------------------------------------------------------------------------------------
# Policy tables
# --------------------------------------------------------------------------------------

#: Module subtrees that are protocol bridges between Python and the server.
BRIDGE_MODULES: tuple[str, ...] = ("wsgi", "asgi")

#: `libc::recv(...)` and friends: socket and descriptor syscalls.
LIBC_SOCKET_CALLS = (
    r"\blibc\s*::\s*(?:recv|recvfrom|recvmsg|recvmmsg|send|sendto|sendmsg|sendmmsg|sendfile"
    r"|splice|socket|socketpair|connect|accept|accept4|bind|listen|shutdown|setsockopt"
    r"|getsockopt|getpeername|getsockname|poll|ppoll|select|pselect|epoll_\w+|read|write"
    r"|readv|writev|close|fcntl|ioctl)\b")
#: `self.stream.read(`, `sock.write_all(`, `conn().flush(`: I/O on a stream-like receiver.
STREAM_IO = (
    r"(?i:\b\w*(?:stream|sock|socket|conn)\w*)\s*(?:\(\s*\))?\s*\.\s*"
    r"(?:read|write|read_exact|write_all|read_vectored|write_vectored|read_to_end|read_buf"
    r"|peek|flush)\s*\(")

#: What a bridge file must not name. (kind, pattern, reason). Kinds:
#:   module  a crate module (any path that resolves into its subtree, however spelled:
#:           `crate::net`, `super::super::net`, `use crate::{net::Stream}`, a re-export)
#:   path    an external path prefix, matched in code and in expanded `use` trees
#:   word    an identifier, whole word
#:   call    an identifier followed by `(`
#:   regex   a regular expression over the blanked code (and expanded `use` paths)
FORBIDDEN: list[tuple[str, str, str]] = [
    ("module", "crate::net", "sockets, listeners and connection streams live in the server core"),
    ("module", "crate::conn", "per-connection I/O belongs to the server core, not the bridge"),
    ("module", "crate::sys", "descriptors, processes and fd helpers belong to the server core"),
    ("path", "std::net", "std sockets: the bridge hands bytes to the core, never to a socket"),
    ("path", "std::os::unix::net", "Unix-domain sockets"),
    ("path", "std::os::fd", "raw descriptor traits and types"),
    ("path", "std::os::unix::io", "raw descriptor traits and types (old spelling)"),
    ("path", "nix::sys::socket", "socket syscalls"),
    ("path", "nix::sys::sendfile", "sendfile(2) is the core's zero-copy path"),
    ("path", "nix::poll", "waiting on descriptors is the core's event loop"),
    ("path", "socket2", "socket options and raw sockets"),
    ("path", "mio", "event loop and non-blocking sockets"),
    ("regex", LIBC_SOCKET_CALLS, "libc socket and descriptor calls"),
    ("word", "TcpStream", "std TCP socket"),
    ("word", "TcpListener", "std TCP listener"),
    ("word", "UdpSocket", "std UDP socket"),
    ("word", "UnixStream", "Unix-domain socket"),
    ("word", "UnixListener", "Unix-domain listener"),
    ("word", "AsRawFd", "raw descriptor access"),
    ("word", "as_raw_fd", "raw descriptor access"),
    ("word", "RawFd", "raw descriptor"),
    ("word", "BorrowedFd", "borrowed descriptor"),
    ("word", "OwnedFd", "owned descriptor"),
    ("word", "AsFd", "descriptor access"),
    ("word", "as_fd", "descriptor access"),
    ("word", "from_raw_fd", "wrapping a raw descriptor"),
    ("word", "into_raw_fd", "unwrapping a raw descriptor"),
    ("word", "recv", "socket receive (and `Receiver::recv`: a bridge must not block on a thread)"),
    ("word", "recv_now", "the core stream's non-blocking receive"),
    ("word", "send_now", "the core stream's send"),
    ("word", "set_read_timeout", "socket timeouts are the core's business"),
    ("word", "set_write_timeout", "socket timeouts are the core's business"),
    ("word", "set_nonblocking", "socket mode is the core's business"),
    ("word", "set_nodelay", "socket options are the core's business"),
    ("call", "sendfile", "sendfile(2) is the core's zero-copy path"),
    ("call", "shutdown", "closing a connection is the core's decision"),
    ("regex", STREAM_IO, "read/write on something named like a stream, socket or connection"),
]

#: Module edges the cycle check tolerates: (from, to, reason), module paths such as
#: "workers::base" (a path covers its whole subtree). Keep this empty; an entry is a debt.
ALLOWED_EDGES: list[tuple[str, str, str]] = []

#: Bridge findings tolerated: (file relative to the root, FORBIDDEN pattern, reason).
ALLOWED_BRIDGE: list[tuple[str, str, str]] = []

# --------------------------------------------------------------------------------------
# The crate
# --------------------------------------------------------------------------------------


def module_of(rel: Path) -> Path_ | None:
    """src-relative .rs path -> module path; None for files that are not library modules."""
    parts = rel.parts
    if parts == ("lib.rs",):
        return ()
    if parts[0] in ("main.rs", "bin") or parts == ("build.rs",):
        return None
    if parts[-1] == "mod.rs":
        return tuple(parts[:-1])
    return tuple(parts[:-1]) + (parts[-1][:-3],)


def fmt_mod(m: Path_) -> str:
    return "::".join(m) if m else "crate"


def is_within(m: Path_, root: Path_) -> bool:
    return m[: len(root)] == root


@dataclass
class Edge:
    src: Path_
    dst: Path_
    file: ParsedFile
    line: int


#: A cycle: the module whose children form it, those children, the edges between them.
Cycle = tuple[Path_, list[Path_], list[Edge]]


@dataclass
class Finding:
    file: ParsedFile
    line: int
    pattern: str
    reason: str
    matched: str


class InputError(Exception):
    """The tree cannot be checked at all (exit status 2)."""


class Crate:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.src_dir = root / "src"
        self.files: dict[Path_, ParsedFile] = {}
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.excluded: set[Path_] = set()
        if not (self.src_dir / "lib.rs").is_file():
            raise InputError(f"{self.src_dir / 'lib.rs'} not found")
        for path in sorted(self.src_dir.rglob("*.rs")):
            module = module_of(path.relative_to(self.src_dir))
            if module is None:
                continue
            if module in self.files:
                self.errors.append(
                    f"{self.rel(path)}: module `{fmt_mod(module)}` also defined by "
                    f"{self.rel(self.files[module].path)}")
                continue
            self.files[module] = parse_file(path, module)
        # Test modules: declared under #[cfg(test)], named tests / *_tests, or #![cfg(test)].
        for module, pf in self.files.items():
            if pf.test_file or (module and is_test_name(module[-1])):
                self.excluded.add(module)
            for child in pf.test_children:
                self.excluded.add(module + (child,))
            for line in pf.path_attrs:
                self.errors.append(f"{self.rel(pf.path)}:{line}: #[path] attributes are not "
                                   "supported by tools/check_layers.py")
        # Files no `mod` declares are not compiled (e.g. half-way through a move): skipped.
        declared: set[Path_] = {()}
        for module in sorted(self.files, key=len):
            if module and module[:-1] in declared and module[:-1] in self.files and (
                    module[-1] in self.files[module[:-1]].children):
                declared.add(module)
        for module, pf in sorted(self.files.items()):
            if module not in declared and not any(is_within(module, x) for x in self.excluded):
                self.warnings.append(f"{self.rel(pf.path)}: no `mod {module[-1]};` declares "
                                     f"module `{fmt_mod(module)}`; not checked")
        self.files = {m: pf for m, pf in self.files.items() if m in declared}
        self.live = {m: pf for m, pf in self.files.items()
                     if not any(is_within(m, x) for x in self.excluded)}
        self.scopes: dict[Path_, Path_] = {m: m for m in self.live}  # scope -> file module
        for m, pf in self.live.items():
            for s in pf.inline_mods:
                self.scopes[s] = m
        self.bindings: dict[Path_, dict[str, UseLeaf]] = {}
        for pf in self.live.values():
            for leaf in pf.uses:
                if leaf.alias and not leaf.glob:
                    self.bindings.setdefault(leaf.scope, {})[leaf.alias] = leaf

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    # -- name resolution ---------------------------------------------------------------

    def absolute(self, scope: Path_, segs: tuple[str, ...], guard: int = 0) -> Path_ | None:
        """The crate-absolute path of `segs` written in `scope`; None if outside the crate."""
        if not segs or guard > 16:
            return None
        head = segs[0]
        if head == "::":
            return None
        if head == "crate":
            return segs[1:]
        if head in ("self", "super"):
            base = list(scope)
            k = 0
            while k < len(segs) and segs[k] in ("self", "super"):
                if segs[k] == "super":
                    if not base:
                        return None
                    base.pop()
                k += 1
            return tuple(base) + segs[k:]
        if scope + (head,) in self.scopes or scope + (head,) in self.excluded:
            return scope + segs
        leaf = self.bindings.get(scope, {}).get(head)
        if leaf is not None and leaf.segs != segs:
            target = self.absolute(leaf.scope, leaf.segs, guard + 1)
            if target is not None:
                return target + segs[1:]
        return None

    def locate(self, path: Path_) -> list[Path_]:
        """File modules a crate-absolute path reaches: the longest module prefixing it, then
        (when the next segment is a name that module imports) where that name comes from."""
        found: list[Path_] = []
        seen: set[Path_] = set()
        cur: Path_ | None = path
        while cur is not None and cur not in seen and len(found) < 16:
            seen.add(cur)
            k = len(cur)
            while k > 0 and cur[:k] not in self.scopes:
                if cur[:k] in self.excluded:
                    return found
                k -= 1
            scope = cur[:k]
            if any(is_within(scope, x) for x in self.excluded):
                return found
            found.append(self.scopes.get(scope, ()))
            rest = cur[k:]
            if not rest:
                break
            leaf = self.bindings.get(scope, {}).get(rest[0])
            if leaf is None or leaf.glob:
                break
            target = self.absolute(leaf.scope, leaf.segs)
            cur = None if target is None else target + rest[1:]
        return found

    def references(self, pf: ParsedFile) -> list[tuple[int, Path_]]:
        """(line, file module) for every crate module the file names."""
        out: list[tuple[int, Path_]] = []
        items: list[tuple[Path_, tuple[str, ...], int]] = (
            [(u.scope, u.segs, u.line) for u in pf.uses]
            + [(r.scope, r.segs, r.line) for r in pf.refs])
        for scope, segs, line in items:
            target = self.absolute(scope, segs)
            if target is None:
                continue
            for m in self.locate(target):
                out.append((line, m))
        for r in pf.rel_refs:
            # Only a name bound to a module by a `use` (the `use` itself already counts for
            # that module) and only for the modules the rest of the path reaches beyond it.
            leaf = self.bindings.get(r.scope, {}).get(r.segs[0])
            if leaf is None or r.scope + r.segs[:1] in self.scopes:
                continue
            bound = self.absolute(leaf.scope, leaf.segs)
            if bound is None or bound not in self.scopes:
                continue
            for m in self.locate(bound + r.segs[1:]):
                if m != self.scopes[bound]:
                    out.append((r.line, m))
        return out

    # -- rule 1 ------------------------------------------------------------------------

    def edges(self, allowed: list[tuple[str, str, str]]) -> tuple[list[Edge], set[int]]:
        allow = [(tuple(a.split("::")) if a not in ("", "crate") else (),
                  tuple(b.split("::")) if b not in ("", "crate") else ()) for a, b, _ in allowed]
        used: set[int] = set()
        edges: list[Edge] = []
        seen: set[tuple[Path_, Path_, int, Path]] = set()
        for m, pf in self.live.items():
            for line, t in self.references(pf):
                if is_within(m, t) or is_within(t, m):
                    continue
                hit = [k for k, (a, b) in enumerate(allow) if is_within(m, a) and is_within(t, b)]
                if hit:
                    used.update(hit)
                    continue
                key = (m, t, line, pf.path)
                if key not in seen:
                    seen.add(key)
                    edges.append(Edge(m, t, pf, line))
        return edges, used

    def cycles(self, allowed: list[tuple[str, str, str]]) -> tuple[list[Cycle], list[str]]:
        """[(parent, children in the cycle, edges making it)] and stale allowlist entries."""
        edges, used = self.edges(allowed)
        by_level: dict[Path_, dict[tuple[Path_, Path_], list[Edge]]] = {}
        for e in edges:
            k = 0
            while k < min(len(e.src), len(e.dst)) and e.src[k] == e.dst[k]:
                k += 1
            parent = e.src[:k]
            a, b = e.src[: k + 1], e.dst[: k + 1]
            by_level.setdefault(parent, {}).setdefault((a, b), []).append(e)
        result = []
        for parent in sorted(by_level):
            pairs = by_level[parent]
            graph: dict[Path_, set[Path_]] = {}
            for a, b in pairs:
                graph.setdefault(a, set()).add(b)
                graph.setdefault(b, set())
            for comp in tarjan(graph):
                if len(comp) < 2:
                    continue
                members = set(comp)
                inside = [e for (a, b), es in sorted(pairs.items())
                          if a in members and b in members for e in es]
                result.append((parent, sorted(comp), inside))
        stale = [f"{a} -> {b} ({why})" for k, (a, b, why) in enumerate(allowed) if k not in used]
        return result, stale

    # -- rule 2 ------------------------------------------------------------------------

    def bridge_findings(self, allowed: list[tuple[str, str, str]]) -> list[Finding]:
        findings: list[Finding] = []
        allow = {(f, p) for f, p, _ in allowed}
        bridges = [(b,) for b in BRIDGE_MODULES]
        module_rules = [(tuple(p.split("::")[1:]), p, why) for kind, p, why in FORBIDDEN
                        if kind == "module"]
        text_rules: list[tuple[re.Pattern[str], str, str]] = []
        for kind, p, why in FORBIDDEN:
            if kind in ("module", "path"):
                # For modules this is a fallback: resolution (below) also catches `super::`
                # spellings and re-exports, but needs the module to be declared.
                source = r"(?<![\w:])" + r"\s*::\s*".join(map(re.escape, p.split("::"))) + r"\b"
            elif kind == "word":
                source = r"\b" + re.escape(p) + r"\b"
            elif kind == "call":
                source = r"\b" + re.escape(p) + r"\s*\("
            elif kind == "regex":
                source = p
            else:
                raise InputError(f"FORBIDDEN: unknown kind {kind!r} for {p!r}")
            text_rules.append((re.compile(source), p, why))
        for m, pf in sorted(self.live.items()):
            if not any(is_within(m, b) for b in bridges):
                continue
            hits: dict[tuple[int, str], Finding] = {}
            for line, t in self.references(pf):
                for root, p, why in module_rules:
                    if is_within(t, root):
                        hits.setdefault((line, p), Finding(pf, line, p, why, p))
            line_starts = [0] + [x.end() for x in re.finditer("\n", pf.code)]
            for rx, p, why in text_rules:
                for hit in rx.finditer(pf.code):
                    line = bisect.bisect_right(line_starts, hit.start())
                    text = " ".join(hit.group().split())
                    hits.setdefault((line, p), Finding(pf, line, p, why, text))
                for leaf in pf.uses:
                    used = "::".join(s for s in leaf.segs if s != "::")
                    found = rx.search(used)
                    if found:
                        hits.setdefault((leaf.line, p),
                                        Finding(pf, leaf.line, p, why, found.group()))
            rel = self.rel(pf.path)
            findings.extend(f for (_, p), f in sorted(hits.items(), key=lambda kv: kv[0])
                            if (rel, p) not in allow)
        return findings


def tarjan(graph: dict[Path_, set[Path_]]) -> list[list[Path_]]:
    index: dict[Path_, int] = {}
    low: dict[Path_, int] = {}
    on_stack: set[Path_] = set()
    stack: list[Path_] = []
    comps: list[list[Path_]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.append(x)
                    if x == node:
                        break
                comps.append(comp)
    return comps


def shortest_cycle(members: list[Path_], pairs: set[tuple[Path_, Path_]]) -> list[Path_]:
    """A shortest cycle through members[0] (for a readable summary line)."""
    start = members[0]
    prev: dict[Path_, Path_] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for a, b in sorted(pairs):
                if a != node:
                    continue
                if b == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if b not in seen:
                    seen.add(b)
                    prev[b] = node
                    nxt_frontier.append(b)
        frontier = nxt_frontier
    return members + [start]


# --------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------


@dataclass
class Report:
    cycles: list[Cycle]
    findings: list[Finding]
    errors: list[str]
    stale: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.cycles or self.findings or self.errors)


def check(root: Path, allowed_edges: list[tuple[str, str, str]] | None = None,
          allowed_bridge: list[tuple[str, str, str]] | None = None) -> tuple[Crate, Report]:
    crate = Crate(root)
    cycles, stale = crate.cycles(ALLOWED_EDGES if allowed_edges is None else allowed_edges)
    findings = crate.bridge_findings(ALLOWED_BRIDGE if allowed_bridge is None else allowed_bridge)
    return crate, Report(cycles, findings, list(crate.errors), stale, list(crate.warnings))


def render(crate: Crate, report: Report) -> str:
    lines: list[str] = []
    for err in report.errors:
        lines.append(f"error: {err}")
    for n, (parent, members, edges) in enumerate(report.cycles, 1):
        rel_names = [fmt_mod(m) for m in members]
        lines.append(f"layering: module cycle {n} among the children of `{fmt_mod(parent)}`: "
                     + ", ".join(rel_names))
        pairs = {(e.src[: len(parent) + 1], e.dst[: len(parent) + 1]) for e in edges}
        example = shortest_cycle(members, pairs)
        lines.append("  for example: " + " -> ".join(fmt_mod(m) for m in example))
        # One line per (pair, file, line): a reference that reaches a module and, through a
        # re-export, another one shows both targets.
        grouped: dict[tuple[Path_, Path_], dict[tuple[str, int, Path_], list[Path_]]] = {}
        for e in edges:
            pair = (e.src[: len(parent) + 1], e.dst[: len(parent) + 1])
            where = (crate.rel(e.file.path), e.line, e.src)
            grouped.setdefault(pair, {}).setdefault(where, []).append(e.dst)
        for (a, b), refs in grouped.items():
            lines.append(f"  {fmt_mod(a)} -> {fmt_mod(b)}:")
            for (rel, line, src), dsts in refs.items():
                text = crate.files[src].line_text(line)
                lines.append(f"    {rel}:{line}: {fmt_mod(src)} -> "
                             f"{', '.join(fmt_mod(d) for d in dsts)}: {text}")
    for f in report.findings:
        lines.append(f"layering: {crate.rel(f.file.path)}:{f.line}: bridge names `{f.matched}` "
                     f"({f.reason}): {f.file.line_text(f.line)}")
    for w in report.warnings:
        lines.append(f"warning: {w}")
    for s in report.stale:
        lines.append(f"warning: allowlist entry no longer needed: {s}")
    if report.ok:
        lines.append(f"check_layers: OK ({len(crate.live)} modules, no cycles, bridges clean)")
    else:
        lines.append(f"check_layers: FAILED: {len(report.cycles)} module cycle(s), "
                     f"{len(report.findings)} bridge violation(s)"
                     + (f", {len(report.errors)} error(s)" if report.errors else "")
                     + "; see tools/check_layers.py for the rules")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="repository root holding src/ (default: this script's repository)")
    parser.add_argument("--self-test", action="store_true",
                        help="run the checker on synthetic trees and verify its answers")
    args = parser.parse_args(argv)
    if args.self_test:
        from check_layers_selftest import self_test

        return self_test()
    try:
        crate, report = check(args.root)
    except (InputError, OSError) as e:
        print(f"check_layers: error: {e}", file=sys.stderr)
        return 2
    print(render(crate, report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
