#!/usr/bin/env python3
"""No module of the operator imports a module that imports it back (directly or round a cycle).

A module is a file under operator/src (`a/b.rs` and `a/b/mod.rs` are `a::b`; lib.rs and main.rs
are the crate roots and left out: they only declare). Module A imports B when A's text names
a path into B: `crate::b::...`, `super::...`, `self::...` (resolved from A), a bare
`child::...` of A's own child module, or an item of a grouped `use x::{...}`. Declaring a child
(`mod b;`) is not an import; a parent that calls into its child is, and so is a child that uses
its parent's items: either way the two depend on each other. Inline `#[cfg(test)] mod tests`
blocks are left out; a `tests.rs` file is a child that imports its parent, which never imports
it back.

Prints every cycle (a strongly connected set of modules) and exits 1 when there is one. Run with
--self-test to see it find a planted cycle.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "operator", "src")
# A path, not the prefix of a grouped use (`crate::a::{b, c}` imports a::b and a::c, not a).
PATH = re.compile(r"(?<![\w:])((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)(?![\w]|::)")
GROUP = re.compile(r"use\s+((?:crate|super|self)(?:::[A-Za-z_0-9]+)*)::\{([^;]*)\};", re.S)
BARE = re.compile(r"(?<![:\w])([a-z_][a-z0-9_]*)::")
INLINE_TESTS = re.compile(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", re.S)


def modules(root):
    """Module path -> file."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs"):
                continue
            parts = os.path.relpath(os.path.join(dirpath, f), root)[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            if parts:
                out["::".join(parts)] = os.path.join(dirpath, f)
    return out


def resolve(mods, cur, path):
    """The longest module prefix of `path` as seen from module `cur`."""
    segs = path.split("::")
    base = cur.split("::")
    if segs[0] == "crate":
        base, segs = [], segs[1:]
    elif segs[0] == "super":
        base, segs = base[:-1], segs[1:]
        while segs and segs[0] == "super":
            base, segs = base[:-1], segs[1:]
    elif segs[0] == "self":
        segs = segs[1:]
    best = None
    for i in range(len(segs) + 1):
        m = "::".join(base + segs[:i])
        if m in mods:
            best = m
    return best


def imports(mods, cur, text):
    text = INLINE_TESTS.sub("", text)
    found = set()
    for m in PATH.finditer(text):
        found.add(resolve(mods, cur, m.group(1)))
    for m in GROUP.finditer(text):
        for item in m.group(2).split(","):
            item = item.strip().split(" as ")[0].split("::{")[0].strip()
            if item and item != "self":
                found.add(resolve(mods, cur, m.group(1) + "::" + item))
    for m in BARE.finditer(text):
        child = cur + "::" + m.group(1)
        if child in mods:
            found.add(child)
    found.discard(None)
    found.discard(cur)
    return found


def cycles(edges):
    """Strongly connected sets of more than one module (Tarjan, iterative)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = 0
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def self_test():
    mods = {"a": "", "a::b": "", "c": ""}
    edges = {
        "a": imports(mods, "a", "fn f() { b::g(); }"),
        "a::b": imports(mods, "a::b", "use super::{Thing, other};"),
        "c": imports(mods, "c", "use crate::a::b::X;"),
    }
    assert edges == {"a": {"a::b"}, "a::b": {"a"}, "c": {"a::b"}}, edges
    assert imports(mods, "c", "use crate::a::{b};") == {"a::b"}
    assert cycles(edges) == [["a", "a::b"]], cycles(edges)
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    print("module_graph: the self-test finds a planted cycle")


def main():
    if "--self-test" in sys.argv:
        self_test()
        return 0
    mods = modules(ROOT)
    edges = {}
    for m, path in mods.items():
        with open(path, encoding="utf-8") as f:
            edges[m] = imports(mods, m, f.read())
    found = cycles(edges)
    count = sum(len(e) for e in edges.values())
    for c in found:
        print("import cycle: " + " <-> ".join(c))
    print(f"module_graph: {len(mods)} modules, {count} imports, {len(found)} cycle(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
