"""The self-test of tools/check_layers.py (`check_layers.py --self-test`): the checker run
on synthetic crates whose answers are known."""

from __future__ import annotations

import tempfile
from pathlib import Path

from check_layers import STREAM_IO, Report, check, fmt_mod, render

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
