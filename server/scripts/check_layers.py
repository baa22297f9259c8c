#!/usr/bin/env python3
"""Checks the module layering of the workspace's crates: `python3 server/scripts/check_layers.py [crate ...]`.

For each crate (`app/src`, `server/src` with `engine/` inside it, `frontend/src`) it finds the module files by
following `mod x;` declarations from the crate roots (lib.rs, main.rs), reads every file's references to
other modules of the same crate, and reports:

* import cycles between files: strongly connected components of more than one file;
* import cycles between top-level modules (a folder module such as `auth/` counts as one), the crate roots
  (lib.rs, main.rs) left out: `auth -> config -> s3 -> auth` is a cycle even when no single file closes it;
* files over 600 lines (comments and tests included: it is the file a reader opens).

Both are problems: each is printed on one line and the exit status is 1. Functions over 150 lines are printed
as notes and do not fail the check.

What counts as a reference (comments, string literals and `#[cfg(test)] mod tests { ... }` blocks are
ignored):

* `use` declarations, grouped ones included: `use crate::{a, b::{c, d as e}}`, `use super::*`;
* paths in code: `crate::a::f()`, `super::x::T`, `self::y::z`, `super::super::w`;
* paths through a module name in scope: a child declared here (`mod child;` then `child::f()` or
  `pub use child::T`), or a module imported by name (`use crate::datasets::{self, manifest}` then
  `manifest::Label`).

A reference names a module file by its longest prefix that is a module (`crate::models::hosting::Hosted` is
models/hosting.rs, `crate::AppState` is lib.rs); one into a file's own inline module is that file.
Importing a module by name is no reference by itself: the paths through it are. A `mod child;` declaration
is no reference either, so a child using its parent's items (`super::T`) makes a cycle only when the parent
also uses the child's items (`child::f`, `pub use child::T`), directly or through other files.
"""
import functools
import os
import re
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CRATES = {"app": ("app/src", ["lib.rs"]), "server": ("server/src", ["lib.rs", "main.rs"]), "frontend": ("frontend/src", ["lib.rs"])}
MAX_FILE_LINES, MAX_FN_LINES = 600, 150
ID = r"[A-Za-z_][A-Za-z0-9_]*"
RAW = re.compile(r'(?<![A-Za-z0-9_])b?r(#*)"')
CHAR = re.compile(r"'(?:\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'\n])'")
TESTS = re.compile(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+" + ID + r"\s*\{")
INLINE = re.compile(r"\bmod\s+(" + ID + r")\s*\{")
DECL = re.compile(r"\bmod\s+(" + ID + r")\s*;")
USE = re.compile(r"\buse\s+([^;]*);")
PATH = re.compile(r"(?<![\w:])(" + ID + r"(?:\s*::\s*" + ID + r")+)")
FN = re.compile(r"\bfn\s+(" + ID + ")")


def blank(s):
    return re.sub(r"[^\n]", " ", s)


def strip(src):
    """The source with comments, strings and char literals blanked out (line numbers kept)."""
    out, i, n = [], 0, len(src)
    while i < n:
        raw = RAW.match(src, i) if src[i] in "br" else None
        if src.startswith("//", i):
            j = src.find("\n", i) % (n + 1)  # the line's end, or the file's
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                pair = src[j : j + 2]
                depth += {"/*": 1, "*/": -1}.get(pair, 0)
                j += 2 if pair in ("/*", "*/") else 1
        elif raw:
            end = src.find('"' + raw.group(1), raw.end())
            j = n if end < 0 else end + 1 + len(raw.group(1))
        elif src[i] == '"' or src.startswith('b"', i) and not re.match(r"\w", src[i - 1 : i]):
            j = src.index('"', i) + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j += 1
        elif src[i] == "'" and CHAR.match(src, i):
            j = CHAR.match(src, i).end()
        else:
            out.append(src[i])
            i += 1
            continue
        out.append(blank(src[i:j]))
        i = j
    return "".join(out)


def close(text, at):
    """The index of the brace closing the one at `at`."""
    depth = 0
    for j in range(at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return j
    return len(text) - 1


@functools.lru_cache(maxsize=None)
def clean(path):
    """A file's code without comments, literals and `#[cfg(test)] mod tests { ... }` blocks."""
    text = strip(open(path).read())
    for m in reversed(list(TESTS.finditer(text))):
        end = close(text, m.end() - 1) + 1
        text = text[: m.start()] + blank(text[m.start() : end]) + text[end:]
    return text


def modules(root):
    """{module path: file} for the crate rooted at `root`, following `mod x;` declarations."""
    files, todo = {(): root}, [((), root)]
    while todo:
        path, f = todo.pop()
        here = os.path.dirname(f) if os.path.basename(f) in ("mod.rs", "lib.rs", "main.rs") else f[:-3]
        for name in DECL.findall(clean(f)):
            for cand in (os.path.join(here, name + ".rs"), os.path.join(here, name, "mod.rs")):
                if os.path.exists(cand):
                    files[path + (name,)] = cand
                    todo.append((path + (name,), cand))
                    break
    return files


def expand(tree, prefix=()):
    """A use tree as (segments, name it binds): `a::{b, c::d as e}` -> [((a, b), b), ((a, c, d), e)]."""
    tree = tree.strip()
    if "{" not in tree:
        name, *alias = re.split(r"\s+as\s+", tree)
        segs = prefix + tuple(s.strip() for s in name.split("::") if s.strip())
        if segs and segs[-1] == "self":
            segs = segs[:-1]
        return [(segs, alias[0].strip() if alias else (segs[-1] if segs else ""))] if segs else []
    at = tree.index("{")
    head = tuple(s.strip() for s in tree[:at].split("::") if s.strip())
    parts, depth, start, body = [], 0, 0, tree[at + 1 : tree.rindex("}")]
    for j, c in enumerate(body + ","):
        depth += {"{": 1, "}": -1}.get(c, 0)
        if c == "," and depth == 0:
            parts.append(body[start:j])
            start = j + 1
    return [x for p in parts for x in expand(p, prefix + head)]


def references(text, here, mods):
    """(module file, item) pairs for every reference of a file at module path `here` to its crate."""
    inline = [(m.start(), close(text, m.end() - 1), m.group(1)) for m in INLINE.finditer(text)]
    aliases = {name: here + (name,) for name in DECL.findall(text)}

    def absolute(segs, pos):
        base, rest = {"crate": ((), segs[1:])}.get(segs[0], (None, segs))
        if segs[0] in ("self", "super"):
            base = here + tuple(n for s, e, n in inline if s < pos < e)
            while rest and rest[0] in ("self", "super"):
                base, rest = (base[:-1] if rest[0] == "super" else base), rest[1:]
        elif segs[0] in aliases:
            base, rest = aliases[segs[0]], segs[1:]
        return None if base is None else base + tuple(rest)

    def target(full):
        k = max(k for k in range(len(full) + 1) if full[:k] in mods)
        return mods[full[:k]], (full[k] if k < len(full) else "*")

    found = []
    for m in USE.finditer(text):
        for segs, name in expand(m.group(1)):
            glob = segs[-1] == "*"
            full = absolute(segs[:-1] if glob else segs, m.start())
            if full is not None and full in mods and not glob:
                aliases[name] = full  # a module imported by name: the paths through it count
            elif full is not None:
                found.append(target(full))
    code = USE.sub(lambda m: blank(m.group(0)), text)
    for m in PATH.finditer(code):
        segs = tuple(s.strip() for s in m.group(1).split("::"))
        in_vis = re.search(r"\(\s*in\s+$", code[max(0, m.start() - 12) : m.start()])
        full = None if in_vis else absolute(segs, m.start())
        if full is not None:
            found.append(target(full))
    return found


def sccs(graph):
    """Tarjan's strongly connected components of {node: {successor, ...}}."""
    index, low, stack, out = {}, {}, [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
            if w in stack:
                low[v] = min(low[v], low[w])
        if low[v] == index[v]:
            at = stack.index(v)
            out.append(sorted(stack[at:]))
            del stack[at:]

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def cycles(src_dir, roots):
    """A problem line per import cycle, with the references that make it."""
    edges, problems, short = {}, [], lambda f: os.path.relpath(f, src_dir)
    for root in (os.path.join(src_dir, r) for r in roots if os.path.exists(os.path.join(src_dir, r))):
        mods = modules(root)
        for path, f in mods.items():
            for to, item in references(clean(f), path, mods):
                if to != f:
                    edges.setdefault(f, {}).setdefault(to, set()).add(item)
    for comp in sccs(edges):
        if len(comp) > 1:
            via = "; ".join(f"{short(a)} -> {short(b)} ({', '.join(sorted(edges[a][b]))})" for a in comp for b in comp if b in edges.get(a, {}))
            problems.append(f"{os.path.relpath(src_dir, REPO)}: import cycle between {', '.join(map(short, comp))}: {via}")
    # The same at the level of top-level modules.
    top = lambda f: short(f).split(os.sep)[0].removesuffix(".rs")
    is_root = lambda f: short(f) in roots
    module_edges = {}
    for a, tos in edges.items():
        for b in tos:
            if not is_root(a) and not is_root(b) and top(a) != top(b):
                module_edges.setdefault(top(a), {}).setdefault(top(b), set()).add(f"{short(a)} -> {short(b)}")
    for comp in sccs(module_edges):
        if len(comp) > 1:
            via = "; ".join(sorted(e for a in comp for b in comp for e in module_edges.get(a, {}).get(b, ())))
            problems.append(f"{os.path.relpath(src_dir, REPO)}: import cycle between modules {', '.join(sorted(comp))}: {via}")
    return problems


def sizes(files):
    """Problem lines for long files, note lines for long functions."""
    problems, notes = [], []
    for f in files:
        rel, lines = os.path.relpath(f, REPO), open(f).read().count("\n")
        if lines > MAX_FILE_LINES:
            problems.append(f"{rel}: {lines} lines (at most {MAX_FILE_LINES})")
        text = clean(f)
        for m in FN.finditer(text):
            body = re.compile(r"[{;]").search(text, m.end())  # `;`: a declaration without a body
            if body and body.group() == "{":
                n = text.count("\n", m.start(), close(text, body.start())) + 1
                if n > MAX_FN_LINES:
                    at = text.count("\n", 0, m.start()) + 1
                    notes.append(f"note: {rel}:{at}: fn {m.group(1)} is {n} lines (aim for at most {MAX_FN_LINES})")
    return problems, notes


def main(crates):
    problems, notes, nfiles = [], [], 0
    for crate in crates:
        if crate not in CRATES:
            sys.exit(f"unknown crate {crate}: one of {', '.join(CRATES)}")
        src_dir, roots = os.path.join(REPO, CRATES[crate][0]), CRATES[crate][1]
        files = sorted(os.path.join(d, n) for d, _, names in os.walk(src_dir) for n in names if n.endswith(".rs"))
        long_files, long_fns = sizes(files)
        problems += cycles(src_dir, roots) + long_files
        notes += long_fns
        nfiles += len(files)
    print("\n".join(problems + notes + [f"{nfiles} files in {', '.join(crates)}: {len(problems)} problem(s), {len(notes)} long function(s)"]))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(CRATES)))
