#!/usr/bin/env python3
"""The repository stands on its own: no tracked file names a path outside it.

Two rules, each failure printed as FILE:LINE with the path:
1. A relative path with `../` that, resolved from the file's own directory, leaves the
   repository root. The file's directory is the most generous base a relative path can have in
   it (a path that escapes from there escapes from every shallower base too), so this never
   flags a path that stays inside from where the file is read.
2. A Markdown link (`[text](target)`) to a relative target that does not exist in the clone.

Some lines say their base: `cd DIR && ...` (shell) reads from DIR, a line naming
CARGO_MANIFEST_DIR from the crate's directory, a line calling the harness's root helpers
(`root()`, `repo_root()`) from the repository root. A parent path inside handlebars
mustaches (`{{#each ../values.a}}`) is a template context path, not a file path: skipped.
Run from anywhere; exits 1 on any finding.
"""
import os
import re
import subprocess
import sys

ROOT = subprocess.run(
    ["git", "rev-parse", "--show-toplevel"],
    capture_output=True, text=True, check=True, cwd=os.path.dirname(os.path.abspath(__file__)),
).stdout.strip()

# A run of `../` and what follows it up to a character that ends a path in code or prose.
RELATIVE = re.compile(r"(?<![\w.])((?:\.\./)+[^\s\"'`)\]>,;{}*$]*)")
MUSTACHE = re.compile(r"\{\{.*?\}\}")
# The project's own helpers for the repository root (`root()`, `repo_root()` in the Rust tests and
# the harness): a path joined to them is relative to the root.
ROOT_CALL = re.compile(r"\b(?:repo_)?root\(\)")
# `cd DIR && cmd ../x` (a Makefile recipe, a shell line): the path is relative to DIR.
CD = re.compile(r"\bcd\s+([^\s&;|]+)\s*&&")
MD_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SKIP_SUFFIXES = (".lock", ".svg", ".png", ".csv", ".sum")


def tracked_files():
    out = subprocess.run(["git", "ls-files", "-z"], capture_output=True, check=True, cwd=ROOT)
    return [f for f in out.stdout.decode().split("\0") if f and not f.endswith(SKIP_SUFFIXES)]


def escapes(base_dir, rel):
    resolved = os.path.normpath(os.path.join(ROOT, base_dir, rel))
    return os.path.relpath(resolved, ROOT).startswith("..")


def crate_dir(path):
    """The directory of the Cargo.toml nearest above `path`: what CARGO_MANIFEST_DIR is."""
    d = os.path.dirname(path)
    while d and not os.path.exists(os.path.join(ROOT, d, "Cargo.toml")):
        d = os.path.dirname(d)
    return d


def base_of(line, file_dir, path):
    """Where the relative paths on `line` are read from."""
    if ROOT_CALL.search(line):
        return ""
    if "CARGO_MANIFEST_DIR" in line:
        return crate_dir(path)
    cd = CD.search(line)
    if cd and not cd.group(1).startswith("$"):
        return os.path.join(file_dir, cd.group(1))
    return file_dir


def findings(path):
    try:
        text = open(os.path.join(ROOT, path), encoding="utf-8").read()
    except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
        return
    base = os.path.dirname(path)
    for number, line in enumerate(text.splitlines(), 1):
        code = MUSTACHE.sub("", line)
        here = base_of(code, base, path)
        for rel in RELATIVE.findall(code):
            if escapes(here, rel):
                yield number, f"names {rel!r}, outside the repository"
        if path.endswith(".md"):
            for target in MD_LINK.findall(line):
                if re.match(r"^[a-z]+:|^#", target):
                    continue
                local = target.split("#", 1)[0]
                if local and not os.path.exists(os.path.join(ROOT, base, local)):
                    yield number, f"links to {target!r}, which is not in the repository"


def main():
    bad = 0
    for path in tracked_files():
        for number, message in findings(path):
            print(f"{path}:{number}: {message}")
            bad += 1
    if bad:
        print(f"check-paths: {bad} path(s) leave the repository; keep what the project needs inside it")
        return 1
    print("check-paths: no tracked file names a path outside the repository")
    return 0


if __name__ == "__main__":
    sys.exit(main())
