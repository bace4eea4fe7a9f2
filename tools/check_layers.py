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

2. **Bridges do no socket I/O.** Files of the bridge modules (`wsgi`, and `asgi` once it
   exists) must not name anything in FORBIDDEN below. Comments, doc comments, string and
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
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

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
# Lexing
# --------------------------------------------------------------------------------------

_IDENT_START = re.compile(r"[A-Za-z_]")
_IDENT_CHAR = re.compile(r"[A-Za-z0-9_]")


def blank_literals(src: str) -> str:
    """The source with comments, string/char literals blanked to spaces (newlines kept),
    so offsets and line numbers still match the original. String delimiters stay."""
    out = list(src)
    n = len(src)
    i = 0

    def blank(a: int, b: int) -> None:
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    def string_end(j: int) -> int:
        # j is just after the opening quote of a non-raw string; returns index after closing.
        while j < n:
            c = src[j]
            if c == "\\":
                j += 2
                continue
            if c == '"':
                return j + 1
            j += 1
        return n

    while i < n:
        c = src[i]
        if c == "/" and src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif c == "/" and src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif c == '"':
            j = string_end(i + 1)
            blank(i + 1, j - 1)
            i = j
        elif c == "'":
            # char literal ('a', '\n', '\u{..}', '\'') or a lifetime / label ('a, 'static)
            if i + 1 < n and src[i + 1] == "\\":
                j = i + 2
                j += 1  # the escaped character itself
                while j < n and src[j] != "'" and src[j] != "\n":
                    j += 1
                blank(i + 1, j)
                i = j + 1
            elif i + 2 < n and src[i + 2] == "'" and src[i + 1] != "\n":
                blank(i + 1, i + 2)
                i += 3
            else:
                i += 1
        elif _IDENT_START.match(c) and (i == 0 or not _IDENT_CHAR.match(src[i - 1])):
            j = i
            while j < n and _IDENT_CHAR.match(src[j]):
                j += 1
            word = src[i:j]
            if word in ("r", "br", "cr") and j < n and src[j] in '#"':
                k = j
                while k < n and src[k] == "#":
                    k += 1
                if k < n and src[k] == '"':
                    closing = '"' + "#" * (k - j)
                    end = src.find(closing, k + 1)
                    end = n if end < 0 else end + len(closing)
                    blank(i, end)
                    out[k] = '"'
                    i = end
                    continue
                i = j  # raw identifier r#name
            elif word in ("b", "c") and j < n and src[j] == '"':
                end = string_end(j + 1)
                blank(i, end)
                out[j] = '"'
                i = end
            elif word == "b" and j < n and src[j] == "'":
                k = j + 1
                if k < n and src[k] == "\\":
                    k += 1
                k += 1
                while k < n and src[k] != "'" and src[k] != "\n":
                    k += 1
                blank(i, k + 1)
                i = k + 1
            else:
                i = j
        else:
            i += 1
    return "".join(out)


_TOKEN = re.compile(
    r"(?P<id>[A-Za-z_][A-Za-z0-9_]*)|(?P<lt>'[A-Za-z_][A-Za-z0-9_]*)|(?P<num>[0-9][A-Za-z0-9_]*)"
    r"|(?P<p>::|->|=>|\S)"
)


@dataclass
class Tok:
    text: str
    start: int
    end: int
    line: int
    is_id: bool


def tokenize(code: str) -> list[Tok]:
    line_starts = [0] + [m.end() for m in re.finditer("\n", code)]
    toks = []
    for m in _TOKEN.finditer(code):
        line = bisect.bisect_right(line_starts, m.start())
        toks.append(Tok(m.group(), m.start(), m.end(), line, m.lastgroup == "id"))
    return toks


# --------------------------------------------------------------------------------------
# Parsing one file
# --------------------------------------------------------------------------------------

Path_ = tuple[str, ...]


@dataclass
class UseLeaf:
    scope: Path_  # module path (inline modules included) where the `use` sits
    segs: tuple[str, ...]  # path as written, `self` leaf folded away
    alias: str | None  # name it binds (None for globs and `as _`)
    glob: bool
    line: int


@dataclass
class InlineRef:
    scope: Path_
    segs: tuple[str, ...]
    line: int


@dataclass
class ParsedFile:
    path: Path
    module: Path_
    src: str
    code: str  # literals blanked, test items blanked
    test_file: bool = False
    test_children: set[str] = field(default_factory=set)
    children: dict[str, int] = field(default_factory=dict)  # `mod x;` -> line
    inline_mods: set[Path_] = field(default_factory=set)
    uses: list[UseLeaf] = field(default_factory=list)
    refs: list[InlineRef] = field(default_factory=list)
    rel_refs: list[InlineRef] = field(default_factory=list)  # `name::x::y` outside `use`
    path_attrs: list[int] = field(default_factory=list)

    def line_text(self, line: int) -> str:
        lines = self.src.splitlines()
        text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        return text if len(text) <= 110 else text[:107] + "..."


def is_test_name(name: str) -> bool:
    return name == "tests" or name.endswith("_tests")


def _match_close(toks: list[Tok], i: int) -> int:
    """Index of the bracket closing toks[i] (one of ( [ {); len(toks) if unbalanced."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = [pairs[toks[i].text]]
    j = i + 1
    while j < len(toks):
        t = toks[j].text
        if t in pairs:
            stack.append(pairs[t])
        elif t in (")", "]", "}"):
            if stack and stack[-1] == t:
                stack.pop()
            if not stack:
                return j
        j += 1
    return len(toks)


def _cfg_is_test(attr: list[Tok]) -> bool:
    """Whether an attribute's tokens (between [ and ]) are `cfg(test)` or
    `cfg(all(.., test, ..))`."""
    words = [t.text for t in attr]
    if len(words) < 4 or words[0] != "cfg" or words[1] != "(":
        return False
    inner = words[2:-1]
    if inner == ["test"]:
        return True
    if inner and inner[0] == "all" and "not" not in inner and "any" not in inner:
        return "test" in inner
    return False


def _item_end(toks: list[Tok], j: int) -> int:
    """Index of the last token of the item starting at toks[j] (after its attributes)."""
    while j < len(toks) and toks[j].text == "#":
        k = j + 1
        if k < len(toks) and toks[k].text == "!":
            k += 1
        if k < len(toks) and toks[k].text == "[":
            j = _match_close(toks, k) + 1
        else:
            break
    while j < len(toks):
        t = toks[j].text
        if t == ";":
            return j
        if t == "{":
            return _match_close(toks, j)
        if t in ("(", "["):
            j = _match_close(toks, j)
        j += 1
    return len(toks) - 1


def _item_mod_decl(toks: list[Tok], j: int) -> tuple[str, str] | None:
    """For an item at toks[j] (attributes skipped) that is `[pub[(..)]] mod NAME ;|{`:
    (NAME, ';' or '{')."""
    while j < len(toks) and toks[j].text == "#":
        k = j + 1 + (1 if j + 1 < len(toks) and toks[j + 1].text == "!" else 0)
        if k < len(toks) and toks[k].text == "[":
            j = _match_close(toks, k) + 1
        else:
            return None
    if j < len(toks) and toks[j].text == "pub":
        j += 1
        if j < len(toks) and toks[j].text == "(":
            j = _match_close(toks, j) + 1
    if j + 2 < len(toks) and toks[j].text == "mod" and toks[j + 1].is_id:
        return toks[j + 1].text, toks[j + 2].text
    return None


def _parse_use(toks: list[Tok], j: int, prefix: tuple[str, ...], scope: Path_,
               out: list[UseLeaf]) -> int:
    """Parse one use tree at toks[j] with the given prefix; return the index after it."""
    n = len(toks)
    if j < n and toks[j].text == "::":
        prefix = prefix + ("::",) if not prefix else prefix
        j += 1
    if j < n and toks[j].text == "{":
        j += 1
        while j < n and toks[j].text != "}":
            j = _parse_use(toks, j, prefix, scope, out)
            if j < n and toks[j].text == ",":
                j += 1
            elif j < n and toks[j].text != "}":
                j += 1  # malformed: make progress
        return j + 1
    if j < n and toks[j].text == "*":
        out.append(UseLeaf(scope, prefix, None, True, toks[j].line))
        return j + 1
    segs = list(prefix)
    line = toks[j].line if j < n else 0
    while j < n and (toks[j].is_id or toks[j].text == "$"):
        if toks[j].text == "$":
            j += 1
            continue
        segs.append(toks[j].text)
        line = toks[j].line
        j += 1
        if j < n and toks[j].text == "::":
            j += 1
            if j < n and toks[j].text in ("{", "*"):
                return _parse_use(toks, j, tuple(segs), scope, out)
            continue
        break
    alias: str | None = segs[-1] if segs else None
    if j < n and toks[j].text == "as" and j + 1 < n:
        alias = toks[j + 1].text
        j += 2
    if len(segs) > 1 and segs[-1] == "self":
        segs.pop()
        if alias == "self":
            alias = segs[-1]
    if alias in ("_", "self", "crate", "super", "::"):
        alias = None
    if segs:
        out.append(UseLeaf(scope, tuple(segs), alias, False, line))
    return j


def parse_file(path: Path, module: Path_) -> ParsedFile:
    src = path.read_text(encoding="utf-8", errors="replace")
    code = blank_literals(src)
    toks = tokenize(code)
    pf = ParsedFile(path, module, src, code)
    test_spans: list[tuple[int, int]] = []

    n = len(toks)
    i = 0
    depth = 0
    scopes: list[tuple[str, int]] = []  # inline modules: (name, brace depth inside)

    def scope() -> Path_:
        return module + tuple(name for name, _ in scopes)

    while i < n:
        t = toks[i]
        text = t.text
        if text == "#":
            k = i + 1
            inner = k < n and toks[k].text == "!"
            if inner:
                k += 1
            if k < n and toks[k].text == "[":
                close = _match_close(toks, k)
                attr = toks[k + 1:close]
                if attr and attr[0].text == "path":
                    pf.path_attrs.append(t.line)
                if _cfg_is_test(attr):
                    if inner and not scopes and depth == 0:
                        pf.test_file = True
                        return pf
                    if not inner:
                        end = _item_end(toks, close + 1)
                        decl = _item_mod_decl(toks, close + 1)
                        # (`mod x;` inside an inline module is not supported; it is test-only
                        # here anyway.)
                        if decl and decl[1] == ";" and not scopes:
                            pf.test_children.add(decl[0])
                        test_spans.append((t.start, toks[min(end, n - 1)].end))
                        i = end + 1
                        continue
                i = close + 1
                continue
            i += 1
            continue
        if text == "mod" and i + 2 < n and toks[i + 1].is_id:
            name, after = toks[i + 1].text, toks[i + 2].text
            if after == ";":
                if not scopes:
                    if is_test_name(name):
                        pf.test_children.add(name)
                    else:
                        pf.children[name] = t.line
                i += 3
                continue
            if after == "{":
                if is_test_name(name):
                    end = _match_close(toks, i + 2)
                    test_spans.append((t.start, toks[min(end, n - 1)].end))
                    i = end + 1
                    continue
                depth += 1
                scopes.append((name, depth))
                pf.inline_mods.add(scope())
                i += 3
                continue
        if text == "use":
            leaves: list[UseLeaf] = []
            j = _parse_use(toks, i + 1, (), scope(), leaves)
            pf.uses.extend(leaves)
            while j < n and toks[j].text != ";":
                j += 1
            i = j + 1
            continue
        if (text in ("crate", "super", "self") and i + 1 < n and toks[i + 1].text == "::"
                and not (i > 0 and toks[i - 1].text == "::")):
            segs = [text]
            j = i + 2
            while j < n and toks[j].is_id:
                segs.append(toks[j].text)
                if j + 1 < n and toks[j + 1].text == "::":
                    j += 2
                else:
                    j += 1
                    break
            pf.refs.append(InlineRef(scope(), tuple(segs), t.line))
            i = j
            continue
        if (t.is_id and i + 2 < n and toks[i + 1].text == "::" and toks[i + 2].is_id
                and not (i > 0 and toks[i - 1].text in ("::", "$"))):
            # `name::x::y` where `name` may be a module brought in by `use` (`use crate::w;`
            # then `w::sync::f()`): resolved later, counted only when it goes deeper.
            segs = [text]
            j = i + 2
            while j < n and toks[j].is_id:
                segs.append(toks[j].text)
                if j + 1 < n and toks[j + 1].text == "::":
                    j += 2
                else:
                    j += 1
                    break
            pf.rel_refs.append(InlineRef(scope(), tuple(segs), t.line))
            i = j
            continue
        if text == "{":
            depth += 1
        elif text == "}":
            if scopes and scopes[-1][1] == depth:
                scopes.pop()
            depth -= 1
        i += 1

    if test_spans:
        chars = list(code)
        for a, b in test_spans:
            for k in range(a, b):
                if chars[k] != "\n":
                    chars[k] = " "
        pf.code = "".join(chars)
    return pf


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


# --------------------------------------------------------------------------------------
# Self-test
# --------------------------------------------------------------------------------------


def _tree(base: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = base / "src" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return base


def self_test() -> int:
    cases: list[tuple[str, dict[str, str], object]] = []

    def cycle_sets(report: Report) -> set[tuple[str, frozenset[str]]]:
        return {(fmt_mod(p), frozenset(fmt_mod(m) for m in ms)) for p, ms, _ in report.cycles}

    def patterns(report: Report) -> set[tuple[str, int]]:
        return {(f.pattern, f.line) for f in report.findings}

    # 1. two modules naming each other: `use crate::` one way, an inline path the other.
    cases.append(("two-module cycle", {
        "lib.rs": "pub mod a;\npub mod b;\n",
        "a.rs": "use crate::b::B;\npub struct A(B);\n",
        "b.rs": "pub struct B;\npub fn f(_: &crate::a::A) {}\n",
    }, lambda r: cycle_sets(r) == {("crate", frozenset({"a", "b"}))}
        and {(e.file.path.name, e.line) for e in r.cycles[0][2]} == {("a.rs", 1), ("b.rs", 2)}))

    # 2. three siblings in a ring through super:: (use, inline call, nested super::super).
    cases.append(("three-module cycle through super::", {
        "lib.rs": "mod m;\n",
        "m/mod.rs": "mod x;\nmod y;\nmod z;\n",
        "m/x.rs": "use super::y::Y;\npub fn g() {}\n",
        "m/y.rs": "pub struct Y;\nfn f() { let _ = super::z::Z; }\n",
        "m/z.rs": "pub struct Z;\nmod inner {\n    fn h() { super::super::x::g(); }\n}\n",
    }, lambda r: cycle_sets(r) == {("m", frozenset({"m::x", "m::y", "m::z"}))}))

    # 3. grouped and nested use trees; c is used but not part of the cycle.
    cases.append(("grouped use", {
        "lib.rs": "mod a;\nmod b;\nmod c;\n",
        "a.rs": "use crate::{\n    b::{self, B as Bee},\n    c::{C, self as cee},\n};\n"
                "pub struct A;\n",
        "b.rs": "pub struct B;\nuse crate::{a::{A}};\n",
        "c.rs": "pub struct C;\n",
    }, lambda r: cycle_sets(r) == {("crate", frozenset({"a", "b"}))}
        and {e.line for e in r.cycles[0][2] if e.src == ("a",)} == {2}))

    # 4. parent/child pairs in both directions must not count; neither must test code.
    cases.append(("parent/child and tests are not cycles", {
        "lib.rs": "pub mod p;\npub use p::P;\nfn top() -> crate::p::q::Q { crate::p::q::Q }\n",
        "p/mod.rs": "pub mod q;\npub use self::q::Q;\npub struct P;\nfn f(_: q::Q) {}\n"
                    "#[cfg(test)]\nmod tests;\n",
        "p/q.rs": "use super::P;\nuse crate::P as Again;\npub struct Q;\nfn g(_: crate::p::P) {}\n"
                  "#[cfg(test)]\nmod tests {\n    use crate::other::O;\n}\n",
        "p/tests.rs": "use crate::other::O;\n",
        "other.rs": "use crate::p::q::Q;\n#[cfg(test)]\nfn t() { crate::p::P; }\n",
        "other_tests.rs": "use crate::p::P;\n",
    }, lambda r: r.ok))

    # 5. a facade re-export in a parent does not hide a sibling cycle.
    cases.append(("re-export through a parent", {
        "lib.rs": "mod w;\n",
        "w/mod.rs": "mod base;\nmod sync;\npub use base::Ctx;\n",
        "w/base.rs": "pub struct Ctx;\nfn f() { super::sync::run(); }\n",
        "w/sync.rs": "use super::Ctx;\npub fn run() {}\n",
    }, lambda r: cycle_sets(r) == {("w", frozenset({"w::base", "w::sync"}))}))

    # 5b. a module imported by name, then used as a path prefix.
    cases.append(("path through an imported module", {
        "lib.rs": "mod w;\n",
        "w/mod.rs": "mod a;\nmod b;\n",
        "w/a.rs": "use crate::w;\npub fn f() { w::b::g(); }\n",
        "w/b.rs": "pub fn g() {}\nfn h() { super::a::f(); }\n",
    }, lambda r: cycle_sets(r) == {("w", frozenset({"w::a", "w::b"}))}))

    # 5c. files no `mod` declares are not compiled, so not checked (but warned about).
    cases.append(("undeclared files are skipped", {
        "lib.rs": "mod a;\n",
        "a.rs": "use crate::b::B;\n",
        "b.rs": "use crate::a::A;\n",
        "c/d.rs": "use crate::a::A;\n",
    }, lambda r: r.ok and len(r.warnings) == 2))

    # 6. a cycle between two subtrees shows at the level where they meet.
    cases.append(("subtree cycle", {
        "lib.rs": "mod arb;\nmod wk;\n",
        "arb/mod.rs": "mod sig;\nuse crate::wk::base::go;\n",
        "arb/sig.rs": "pub fn clear() {}\n",
        "wk/mod.rs": "pub mod base;\nmod sigs;\n",
        "wk/base.rs": "pub fn go() {}\n",
        "wk/sigs.rs": "fn f() { crate::arb::sig::clear(); }\n",
    }, lambda r: cycle_sets(r) == {("crate", frozenset({"arb", "wk"}))}))

    # 7. the allowlist suppresses exactly its edge.
    allow_tree = {
        "lib.rs": "mod a;\nmod b;\n",
        "a.rs": "use crate::b::B;\npub struct A;\n",
        "b.rs": "pub struct B;\nuse crate::a::A;\n",
    }

    # 8. a bridge calling recv fails, and one importing the core's stream.
    cases.append(("wsgi calls recv", {
        "lib.rs": "mod net;\nmod wsgi;\n",
        "net.rs": "pub struct Stream;\nimpl Stream { pub fn recv(&self) {} }\n",
        "wsgi/mod.rs": "mod input;\n",
        "wsgi/input.rs": "use super::super::net;\nfn f(s: &net::Stream) {\n    s.recv();\n}\n"
                         "fn g(sock: &mut std::fs::File) { let _ = sock.read(&mut []); }\n",
    }, lambda r: patterns(r) == {("crate::net", 1), ("recv", 3), (STREAM_IO, 5)}
        and not r.cycles))

    # 9. recv only in comments, doc comments, strings, char-y things and test code passes.
    cases.append(("wsgi mentions recv only in comments", {
        "lib.rs": "mod wsgi;\n",
        "wsgi/mod.rs": "//! The bridge never calls recv or sendfile( itself.\n"
                       "/// recv: see the core. TcpStream too.\n"
                       "/* block comment: recv /* nested recv */ still comment */\n"
                       "pub fn f<'a>(x: &'a str) -> &'a str {\n"
                       "    let _c = '\"'; let _q = '\\''; let _b = b'x';\n"
                       "    let _s = \"recv \\\" shutdown(\";\n"
                       "    let _r = r#\"recv \"quoted\" as_raw_fd\"#;\n"
                       "    let _br = br\"recv\";\n"
                       "    x // recv\n}\n"
                       "#[cfg(test)]\nmod tests {\n"
                       "    fn t(s: std::net::TcpStream) { s.recv(); }\n}\n",
    }, lambda r: r.ok))

    # 9b. a forbidden core module named before it is even declared.
    cases.append(("wsgi names an undeclared core module", {
        "lib.rs": "mod wsgi;\n",
        "wsgi.rs": "fn f() {\n    crate::conn::write_all();\n}\n",
    }, lambda r: patterns(r) == {("crate::conn", 2)}))

    # 10. grouped std use with the forbidden path only visible after expansion.
    cases.append(("grouped external use in a bridge", {
        "lib.rs": "mod wsgi;\n",
        "wsgi.rs": "use std::{io, net::{Shutdown}};\n",
    }, lambda r: patterns(r) == {("std::net", 1)}))

    failures = 0
    with tempfile.TemporaryDirectory(prefix="check_layers-") as tmp:
        for n, (name, files, expect) in enumerate(cases):
            root = _tree(Path(tmp) / f"case{n}", files)
            crate, report = check(root, [], [])
            good = bool(expect(report))  # type: ignore[operator]
            print(f"self-test: {'ok  ' if good else 'FAIL'} {name}")
            if not good:
                failures += 1
                print("    " + render(crate, report).replace("\n", "\n    "))
        root = _tree(Path(tmp) / "allow", allow_tree)
        _, without = check(root, [], [])
        _, with_allow = check(root, [("b", "a", "self-test")], [])
        _, stale = check(root, [("b", "a", "self-test"), ("a", "nowhere", "stale")], [])
        good = (len(without.cycles) == 1 and with_allow.ok and not with_allow.stale
                and stale.ok and len(stale.stale) == 1)
        print(f"self-test: {'ok  ' if good else 'FAIL'} allowlist")
        failures += not good
        root = _tree(Path(tmp) / "bridge-allow", {"lib.rs": "mod wsgi;\n",
                                                  "wsgi.rs": "fn f(s: &S) { s.recv(); }\n"})
        _, blocked = check(root, [], [])
        _, allowed = check(root, [], [("src/wsgi.rs", "recv", "self-test")])
        good = len(blocked.findings) == 1 and allowed.ok
        print(f"self-test: {'ok  ' if good else 'FAIL'} bridge allowlist")
        failures += not good
    total = len(cases) + 2
    print(f"self-test: {total - failures}/{total} passed")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="repository root holding src/ (default: this script's repository)")
    parser.add_argument("--self-test", action="store_true",
                        help="run the checker on synthetic trees and verify its answers")
    args = parser.parse_args(argv)
    if args.self_test:
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
