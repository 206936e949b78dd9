#!/usr/bin/env python3
"""Prints each crate's module import graph and fails on a cycle.

One graph per module that has child modules: its children are the nodes, and A -> B when
code anywhere under A names an item of B (through `crate::`, `super::` or `self::` paths,
grouped `use` trees included). A name that the parent re-exports (`pub use child::Item`)
counts as the child's. A module's own parent is the façade that declares and re-exports it,
so child -> ancestor references are not edges; siblings (and their subtrees) must depend
one way only. Test code (`tests.rs` files, `tests/` modules and `#[cfg(test)] mod tests` blocks) is left out:
a test may import anything.

    python3 scripts/module_graph.py            # every crate in the workspace
    python3 scripts/module_graph.py shared     # the crates under these directories
    python3 scripts/module_graph.py --why      # and, for a cycle, the paths that make it

Exit status 1 names every cycle found.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def crate_roots(dirs: list[Path]) -> list[tuple[str, Path]]:
    """(crate name, src dir) for every crate with a lib.rs or main.rs under `dirs`."""
    found = []
    for d in dirs:
        for manifest in sorted(d.rglob("Cargo.toml")):
            inside = manifest.relative_to(d).parts
            if "target" in inside or "fuzz" in inside:
                continue
            src = manifest.parent / "src"
            if not (src / "lib.rs").exists() and not (src / "main.rs").exists():
                continue
            name = re.search(r'^name\s*=\s*"([^"]+)"', manifest.read_text(), re.M)
            found.append((name.group(1) if name else manifest.parent.name, src))
    return found


def module_of(src: Path, file: Path) -> tuple[str, ...] | None:
    rel = file.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts in (["lib"], ["main"]):
        return ()
    if parts[0] == "bin":
        return None
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def strip_tests(text: str) -> str:
    """The file without comments, string contents and its `#[cfg(test)]` modules."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    out = []
    i = 0
    pattern = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+" + IDENT + r"\s*([;{])")
    while True:
        m = pattern.search(text, i)
        if not m:
            out.append(text[i:])
            break
        out.append(text[i : m.start()])
        if m.group(1) == ";":
            i = m.end()
            continue
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    return "".join(out)


def expand_use_tree(tree: str) -> list[list[str]]:
    """`a::{b, c::{d, e}}` -> [[a, b], [a, c, d], [a, c, e]] (aliases and globs trimmed)."""
    tree = re.sub(r"\s+", "", tree)

    def parse(s: str, i: int) -> tuple[list[list[str]], int]:
        prefix: list[str] = []
        while i < len(s):
            if s[i] == "{":
                paths, i = parse_group(s, i + 1)
                return [prefix + p for p in paths], i
            m = re.match(IDENT + r"|\*", s[i:])
            if not m:
                break
            prefix.append(m.group(0))
            i += m.end()
            if s.startswith("::", i):
                i += 2
                continue
            if s.startswith("as", i):
                m = re.match(r"as" + IDENT, s[i:]) or re.match(r"as", s[i:])
                i += m.end()
            break
        return [[p for p in prefix if p != "*"]], i

    def parse_group(s: str, i: int) -> tuple[list[list[str]], int]:
        paths = []
        while i < len(s) and s[i] != "}":
            sub, i = parse(s, i)
            paths += sub
            if i < len(s) and s[i] == ",":
                i += 1
        return paths, i + 1

    return parse(tree, 0)[0]


def references(text: str) -> list[list[str]]:
    """Every path that starts at `crate`, `super` or `self`, as its segments."""
    refs = []
    for m in re.finditer(r"\buse\s+((?:crate|super|self)\s*::[^;]*);", text):
        refs += expand_use_tree(m.group(1))
    body = re.sub(r"\buse\s+[^;]*;", "", text)
    for m in re.finditer(r"\b((?:crate|super|self)(?:\s*::\s*" + IDENT + r")+)", body):
        refs.append([p.strip() for p in m.group(1).split("::")])
    return refs


def absolute(module: tuple[str, ...], path: list[str], is_dir_module: bool) -> list[str] | None:
    """A `crate::`/`super::`/`self::` path as segments from the crate root."""
    base = list(module)
    head, rest = path[0], path[1:]
    if head == "crate":
        base = []
    elif head == "self":
        pass
    elif head == "super":
        base = base[:-1]
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    else:
        return None
    return base + rest


def main(argv: list[str]) -> int:
    explain = "--why" in argv
    argv = [a for a in argv if a != "--why"]
    dirs = [ROOT / a for a in argv] or [ROOT / "shared", ROOT / "functions", ROOT / "tests"]
    failures = []
    for crate, src in crate_roots(dirs):
        modules: dict[tuple[str, ...], str] = {}
        for file in sorted(src.rglob("*.rs")):
            module = module_of(src, file)
            if module is None or "tests" in module:
                continue
            modules[module] = strip_tests(file.read_text())
        # pub use child::Item in a parent: Item is the child's.
        reexports: dict[tuple[str, ...], dict[str, tuple[str, ...]]] = {m: {} for m in modules}
        for module, text in modules.items():
            for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]*);", text):
                for path in expand_use_tree(m.group(1)):
                    if not path:
                        continue
                    if path[0] in ("crate", "super", "self"):
                        target = absolute(module, path, True)
                    else:
                        target = list(module) + path
                    if target is None:
                        continue
                    owner = resolve(modules, reexports, target, follow=False)
                    if owner is not None and owner != module:
                        reexports[module][path[-1]] = owner

        edges: dict[tuple[str, ...], dict[str, set[str]]] = {}
        why: dict[tuple, set[str]] = {}
        for module, text in modules.items():
            for path in references(text):
                target = absolute(module, path, True)
                if target is None:
                    continue
                owner = resolve(modules, reexports, target, follow=True)
                if owner is None or owner == module:
                    continue
                common = 0
                while common < min(len(owner), len(module)) and owner[common] == module[common]:
                    common += 1
                if common == len(owner) or common == len(module):
                    continue  # one is the other's ancestor
                parent = owner[:common]
                edges.setdefault(parent, {}).setdefault(module[common], set()).add(owner[common])
                why.setdefault((parent, module[common], owner[common]), set()).add(
                    "::".join(module) + " names " + "::".join(path)
                )

        for parent in sorted({m[:-1] for m in modules if m}):
            children = sorted({m[len(parent)] for m in modules if len(m) > len(parent) and m[: len(parent)] == parent})
            if len(children) < 2:
                continue
            graph = edges.get(parent, {})
            name = "::".join((crate.replace("-", "_"),) + parent)
            print(f"{name}")
            for child in children:
                deps = sorted(graph.get(child, set()))
                print(f"  {child} -> {', '.join(deps) if deps else '(nothing)'}")
            for cycle in cycles(children, graph):
                failures.append(f"{name}: " + " -> ".join(cycle + [cycle[0]]))
                if explain:
                    for a in cycle:
                        for b in sorted(graph.get(a, set()) & set(cycle)):
                            for line in sorted(why[(parent, a, b)]):
                                failures.append(f"    {a} -> {b}: {line}")
    if failures:
        print("\nimport cycles:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    print("\nno import cycle")
    return 0


def resolve(modules, reexports, target: list[str], follow: bool) -> tuple[str, ...] | None:
    """The module that owns what `target` names: the longest module prefix, through re-exports."""
    for n in range(len(target), -1, -1):
        prefix = tuple(target[:n])
        if prefix in modules:
            if follow and n < len(target):
                seen = set()
                owner, item = prefix, target[n]
                while item in reexports.get(owner, {}) and (owner, item) not in seen:
                    seen.add((owner, item))
                    owner = reexports[owner][item]
                return owner
            return prefix
    return None


def cycles(nodes: list[str], graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
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

    for v in nodes:
        if v not in index:
            visit(v)
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
