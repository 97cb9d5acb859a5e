#!/usr/bin/env python3
"""Counts what the codebase's size rules look at: non-test Rust files over a line limit
and functions over a line limit (a function runs from its `fn` line to its closing brace).

    python3 tools/code_stats.py [--file-limit 600] [--fn-limit 150] [--top 10]

Lines are counted without blank lines and comments; `#[cfg(test)]` modules and files
under `tests/`, `benches/` and `examples/` are left out.
"""
import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP_DIRS = {"target", ".git", ".venv", "tests", "benches", "examples"}
FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def strip(line):
    """The line without a `//` comment (strings holding `//` are rare enough here)."""
    i = line.find("//")
    return line if i < 0 else line[:i]


def code_lines(lines):
    """Indices of the lines that hold code, outside `#[cfg(test)]` items."""
    out = []
    skip_depth = None
    depth = 0
    pending_test = False
    for i, raw in enumerate(lines):
        line = strip(raw).strip()
        if skip_depth is None and line.startswith("#[cfg(test)]"):
            pending_test = True
            continue
        opens, closes = line.count("{"), line.count("}")
        if pending_test and skip_depth is None and opens:
            skip_depth = depth
            pending_test = False
        depth += opens - closes
        if skip_depth is not None:
            if depth <= skip_depth:
                skip_depth = None
            continue
        if pending_test and line.endswith(";"):
            pending_test = False
            continue
        if line:
            out.append(i)
    return out


def functions(path, lines, keep):
    """(name, code lines) of every function in the file, nested ones counted apart."""
    keep = set(keep)
    result = []
    for i, raw in enumerate(lines):
        if i not in keep:
            continue
        m = FN.match(strip(raw))
        if not m:
            continue
        depth = 0
        seen_open = False
        n = 0
        for j in range(i, len(lines)):
            line = strip(lines[j])
            if not seen_open and ";" in line and "{" not in line:
                break  # a declaration without a body
            if j in keep:
                n += 1
            depth += line.count("{") - line.count("}")
            if "{" in line:
                seen_open = True
            if seen_open and depth <= 0:
                result.append((m.group(6), n, i + 1))
                break
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--file-limit", type=int, default=600)
    ap.add_argument("--fn-limit", type=int, default=150)
    ap.add_argument("--top", type=int, default=10)
    args = ap.parse_args()
    files, fns = [], []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")]
        for f in filenames:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, ROOT)
            with open(path, encoding="utf-8") as fh:
                lines = fh.read().split("\n")
            keep = code_lines(lines)
            files.append((len(keep), rel))
            fns.extend((n, f"{rel}:{line} {name}") for name, n, line in functions(rel, lines, keep))
    files.sort(reverse=True)
    fns.sort(reverse=True)
    big_files = [f for f in files if f[0] > args.file_limit]
    big_fns = [f for f in fns if f[0] > args.fn_limit]
    print(f"files over {args.file_limit} code lines: {len(big_files)}")
    for n, rel in big_files:
        print(f"  {n:5} {rel}")
    print(f"longest files:")
    for n, rel in files[: args.top]:
        print(f"  {n:5} {rel}")
    print(f"functions over {args.fn_limit} code lines: {len(big_fns)}")
    for n, name in big_fns:
        print(f"  {n:5} {name}")
    print(f"longest functions:")
    for n, name in fns[: args.top]:
        print(f"  {n:5} {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
