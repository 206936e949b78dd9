#!/usr/bin/env python3
"""Checks that every repository path a Markdown file names exists, so the docs cannot
point at files that moved or went away. `make test` runs it.

    python3 scripts/doc_paths.py [FILE.md ...]

Without arguments it reads every Markdown file git tracks. A "path" is a word in
backticks, a Markdown link target, or a word in a fenced block or table that starts with
one of the repository's top-level entries (`functions/`, `shared/`, `scripts/`, ...) or is
one of its top-level files, optionally followed by `:LINE` or `#anchor`. Paths with
placeholders (`<...>`, `*`, `{...}`, `$VAR`) and URLs are not checked. Exit 1 with one line
per missing path.
"""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tracked():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def top_level(files):
    dirs = {f.split("/", 1)[0] for f in files if "/" in f}
    tops = {f for f in files if "/" not in f}
    return dirs, tops


CANDIDATE = re.compile(r"[A-Za-z0-9_.\-/]+")


def candidates(text, dirs, tops):
    """(line number, path) for every word that names something in the repository."""
    for n, line in enumerate(text.splitlines(), 1):
        for word in re.findall(r"[`(\[ |:]([A-Za-z0-9_.\-/]+(?:/[A-Za-z0-9_.\-]*)*)", " " + line):
            w = word.rstrip(".,;:)")
            if not w or "://" in line and w.startswith("//"):
                continue
            head = w.split("/", 1)[0]
            if ("/" in w and head in dirs) or w in tops:
                yield n, w


def placeholder(w):
    return any(c in w for c in "<>*{}$")


def main():
    files = tracked()
    dirs, tops = top_level(files)
    # Hidden and generated trees are not what docs point at.
    dirs = {d for d in dirs if not d.startswith(".")}
    docs = sys.argv[1:] or [f for f in files if f.endswith(".md")]
    missing = []
    for doc in docs:
        with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
            text = f.read()
        here = os.path.dirname(doc)
        for n, w in candidates(text, dirs, tops):
            if placeholder(w):
                continue
            path = w.split("#", 1)[0].split(":", 1)[0].rstrip("/")
            if not path:
                continue
            # Relative to the repository's root, or (a link) to the document's folder.
            if not (os.path.exists(os.path.join(ROOT, path)) or os.path.exists(os.path.join(ROOT, here, path))):
                missing.append(f"{doc}:{n}: `{w}` does not exist")
    for m in missing:
        print(m)
    if missing:
        print(f"{len(missing)} path(s) named in Markdown do not exist", file=sys.stderr)
        return 1
    print(f"doc paths: {len(docs)} Markdown files, every repository path they name exists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
