#!/usr/bin/env python3
"""Fails on a production function over about 60 lines without a reason written beside it.

Scans the `src/` of the workspace's crates (or the directories given), leaving out test
code: `tests.rs` files, `tests/` and `testing/` modules, everything after a file's
`#[cfg(test)]`, and the `tests` crate (test support). A function counts from its `fn` line to its closing
brace; one over LIMIT lines (70: "about 60", with room for rustfmt's one-field-a-line
struct literals) needs a comment line starting `Long:` in the comments directly above it
(its doc comment or a `//` line), saying why it reads better whole.

    python3 scripts/long_functions.py [DIR ...]

Prints every function over 60 lines with its length (the reasoned ones marked), and exits
1 naming the unreasoned ones over LIMIT.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
LIMIT = 70
SHOWN = 60
FN = re.compile(r"^(\s*)(?:pub(?:\([a-z: ]+\))? )?(?:const )?(?:async )?(?:unsafe )?fn (\w+)")
REASON = re.compile(r"^\s*//[/!]?\s*Long:")


def sources(dirs):
    for d in dirs:
        for p in sorted(d.rglob("*.rs")):
            parts = p.relative_to(d).parts
            if "target" in parts or "src" not in parts:
                continue
            if p.name == "tests.rs" or "testing" in parts or "tests" in parts:
                continue
            yield p


def functions(text):
    """(name, first line, length, reasoned) of each function in `text`'s non-test part."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("#[cfg(test)]"):
            lines = lines[:i]
            break
    i = 0
    while i < len(lines):
        m = FN.match(lines[i])
        if not m:
            i += 1
            continue
        indent, name = m.group(1), m.group(2)
        # The signature ends at the line that opens the body; `;` first is a declaration.
        j = i
        while j < len(lines) and not lines[j].rstrip().endswith(("{", ";", "}")):
            j += 1
        if j >= len(lines) or not lines[j].rstrip().endswith("{"):
            i = j + 1  # a declaration (a trait's), or a body on one line
            continue
        while j < len(lines) and lines[j] != indent + "}":
            j += 1
        if j >= len(lines):
            i += 1
            continue
        k = i - 1
        reasoned = False
        while k >= 0 and re.match(r"^\s*(//|#\[)", lines[k]):
            reasoned = reasoned or bool(REASON.match(lines[k]))
            k -= 1
        yield name, i + 1, j - i + 1, reasoned
        i = j + 1


def main(argv):
    dirs = [pathlib.Path(a) for a in argv] or [ROOT / "shared", ROOT / "functions"]
    failed = []
    for path in sources(dirs):
        for name, line, length, reasoned in functions(path.read_text()):
            if length <= SHOWN:
                continue
            shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            where = f"{shown}:{line}"
            note = " (reason given)" if reasoned else ""
            print(f"{length:4} lines  {name}  {where}{note}")
            if length > LIMIT and not reasoned:
                failed.append(f"{where}: `{name}` is {length} lines; split it, or write why it is whole in a `// Long:` comment above it")
    if failed:
        print("\n".join(failed), file=sys.stderr)
        return 1
    print(f"no function over {LIMIT} lines without a reason")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
