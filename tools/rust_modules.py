"""Reading Rust module structure for tools/check_layers.py: a small lexer that blanks
comments and literals, and a parser for `mod`, `use` and inline paths in one file.
Python 3.11 standard library only."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from pathlib import Path

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


def _path_from(toks: list[Tok], i: int) -> tuple[list[str], int]:
    """The segments of the path `a::b::c` starting at token i, and the index after it."""
    segs = [toks[i].text]
    j = i + 2
    n = len(toks)
    while j < n and toks[j].is_id:
        segs.append(toks[j].text)
        if j + 1 < n and toks[j + 1].text == "::":
            j += 2
        else:
            j += 1
            break
    return segs, j


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
            segs, j = _path_from(toks, i)
            pf.refs.append(InlineRef(scope(), tuple(segs), t.line))
            i = j
            continue
        if (t.is_id and i + 2 < n and toks[i + 1].text == "::" and toks[i + 2].is_id
                and not (i > 0 and toks[i - 1].text in ("::", "$"))):
            # `name::x::y` where `name` may be a module brought in by `use` (`use crate::w;`
            # then `w::sync::f()`): resolved later, counted only when it goes deeper.
            segs, j = _path_from(toks, i)
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
