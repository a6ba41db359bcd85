"""The house's import rules, checked by reading the source with ``ast`` (nothing is imported).

1. Layers point one way: ``lipsync`` < ``accel`` < ``avatar`` < ``stream``; a module may import
   its own layer or a lower one, never a higher one.
2. No import cycles between our modules.
3. Inside ``stream/`` the sub-packages follow the data: an arrow from one to another must be in
   ``STREAM_ARROWS``.

Every import counts: top level, inside functions and classes, and under ``if TYPE_CHECKING:``.
A lazy import still ties the two modules together; it only moves the failure to run time.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lowest first: a package may import those at or before its own place in this tuple.
LAYERS = ("lipsync", "accel", "avatar", "stream")

# stream's sub-packages (and its top-level modules, by stem) -> the ones each may import.
# ``errors`` is stream/errors.py, the ClientError base; ``media`` stays free of stream entirely.
_ALL_STREAM = frozenset({"errors", "store", "media", "live", "record", "export", "web", "tools", "batch"})
STREAM_ARROWS: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "media": frozenset(),
    "store": frozenset({"errors"}),
    "live": frozenset({"errors"}),
    "record": frozenset({"errors", "store", "media"}),
    "export": frozenset({"errors", "store", "media"}),
    "web": frozenset({"errors", "live", "record", "export", "store", "media"}),
    "batch": frozenset({"errors", "record", "export", "store", "media"}),
    "tools": _ALL_STREAM - {"tools"},
}


@dataclass(frozen=True, order=True)
class Import:
    """One arrow: ``source`` (a module of ours) imports ``target`` (a module of ours)."""

    path: str  # the importing file, relative to the repository root
    line: int
    source: str
    target: str
    kind: str  # "top-level", "function-local", "class body" or "TYPE_CHECKING"

    def where(self) -> str:
        return f"{self.path}:{self.line}: {self.source} imports {self.target} ({self.kind})"


def module_name(path: Path, root: Path) -> str:
    """``stream/live/session.py`` -> ``stream.live.session``; a package's ``__init__.py`` -> the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files(root: Path) -> list[Path]:
    """Every .py file of the four packages, in a fixed order."""
    files: list[Path] = []
    for package in LAYERS:
        files.extend(p for p in (root / package).rglob("*.py") if "__pycache__" not in p.parts)
    return sorted(files)


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _walk_imports(tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Yield every import statement with the context it sits in."""

    def visit(node: ast.AST, kind: str) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, kind
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.body:
                yield from visit(stmt, "TYPE_CHECKING")
            for stmt in node.orelse:
                yield from visit(stmt, kind)
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and kind != "TYPE_CHECKING":
            kind = "function-local"
        elif isinstance(node, ast.ClassDef) and kind == "top-level":
            kind = "class body"
        for child in ast.iter_child_nodes(node):
            yield from visit(child, kind)

    yield from visit(tree, "top-level")


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of ``from <level dots><name> import ...`` written in ``module``."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    if level > len(package):
        raise ValueError(f"relative import ({'.' * level}{name or ''}) goes above the top package")
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _ours(name: str, modules: set[str]) -> str | None:
    """The longest prefix of ``name`` that is one of our modules (``a.b.func`` -> ``a.b``)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def collect_imports(root: Path) -> tuple[list[Import], list[str]]:
    """All arrows between our modules under ``root``, and the files that do not parse."""
    files = source_files(root)
    modules = {module_name(p, root) for p in files}
    arrows: set[Import] = set()
    broken: list[str] = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        source = module_name(path, root)
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        except (SyntaxError, UnicodeDecodeError) as exc:
            broken.append(f"{rel}: does not parse: {exc}")
            continue
        for node, kind in _walk_imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    try:
                        base = _resolve_relative(
                            source, path.name == "__init__.py", node.level, node.module
                        )
                    except ValueError as exc:
                        broken.append(f"{rel}:{node.lineno}: {exc}")
                        continue
                else:
                    base = node.module or ""
                # ``from a.b import c`` names the submodule a.b.c when there is one, else a.b.
                targets = [
                    f"{base}.{alias.name}" if alias.name != "*" else base for alias in node.names
                ]
            for name in targets:
                target = _ours(name, modules)
                if target is not None and target != source:
                    arrows.add(Import(rel, node.lineno, source, target, kind))
    return sorted(arrows), broken


def layer_violations(arrows: list[Import]) -> list[str]:
    """Arrows from a lower layer up to a higher one."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    out = []
    for arrow in arrows:
        src, dst = arrow.source.split(".")[0], arrow.target.split(".")[0]
        if rank[dst] > rank[src]:
            out.append(f"{arrow.where()}: layer {src!r} may not import the higher layer {dst!r}")
    return out


def _stream_part(module: str) -> str | None:
    """``stream.live.session`` -> ``live``; ``stream.errors`` -> ``errors``; ``stream`` -> None."""
    parts = module.split(".")
    return parts[1] if parts[0] == "stream" and len(parts) > 1 else None


def stream_arrow_violations(arrows: list[Import]) -> list[str]:
    """Arrows between stream's sub-packages that ``STREAM_ARROWS`` does not allow."""
    out = []
    for arrow in arrows:
        src, dst = _stream_part(arrow.source), _stream_part(arrow.target)
        if src is None or dst is None or src == dst:
            continue
        allowed = STREAM_ARROWS.get(src)
        if allowed is None:
            out.append(f"{arrow.where()}: stream/{src} has no row in STREAM_ARROWS; add one")
        elif dst not in allowed:
            may = ", ".join(sorted(allowed)) or "nothing in stream"
            out.append(
                f"{arrow.where()}: stream/{src} -> stream/{dst} is against the data flow "
                f"(stream/{src} may import: {may})"
            )
    return out


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components in a fixed order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return sorted(components)


def _shortest_cycle(start: str, members: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path start -> ... -> start inside one component (breadth first, sorted)."""
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in parent:
                    parent[child] = node
                    nxt.append(child)
        frontier = nxt
    raise AssertionError(f"{start} is in a component but on no cycle")


def cycles(arrows: list[Import]) -> list[str]:
    """One message per group of modules that import each other, round and round."""
    graph: dict[str, set[str]] = {}
    first: dict[tuple[str, str], Import] = {}
    path_of: dict[str, str] = {}
    for arrow in arrows:
        path_of[arrow.source] = arrow.path
        graph.setdefault(arrow.source, set()).add(arrow.target)
        graph.setdefault(arrow.target, set())
        first.setdefault((arrow.source, arrow.target), arrow)
    out = []
    for component in _strongly_connected(graph):
        if len(component) < 2:
            continue
        path = _shortest_cycle(component[0], set(component), graph)
        steps = "\n".join(
            f"    {first[(a, b)].where()}" for a, b in zip(path, path[1:], strict=False)
        )
        files = ", ".join(path_of[m] for m in component)
        out.append(f"import cycle among {len(component)} modules ({files}); one loop:\n{steps}")
    return out


def _report(title: str, problems: list[str]) -> str:
    return f"{title} ({len(problems)}):\n" + "\n".join(f"  {p}" for p in problems)


@functools.cache
def _tree_imports() -> tuple[Import, ...]:
    arrows, broken = collect_imports(ROOT)
    if broken:
        pytest.fail(_report("files that could not be read", broken), pytrace=False)
    return tuple(arrows)


def test_layers_point_down() -> None:
    problems = layer_violations(list(_tree_imports()))
    if problems:
        pytest.fail(
            _report(f"imports against the layers {' < '.join(LAYERS)}", problems), pytrace=False
        )


def test_no_import_cycles() -> None:
    problems = cycles(list(_tree_imports()))
    if problems:
        pytest.fail(_report("import cycles", problems), pytrace=False)


def test_stream_arrows_follow_the_data() -> None:
    problems = stream_arrow_violations(list(_tree_imports()))
    if problems:
        pytest.fail(
            _report("stream sub-package arrows not in STREAM_ARROWS", problems), pytrace=False
        )


def test_every_stream_part_has_a_row() -> None:
    parts = {
        _stream_part(module_name(p, ROOT))
        for p in source_files(ROOT)
        if p.is_relative_to(ROOT / "stream")
    }
    missing = sorted(p for p in parts - set(STREAM_ARROWS) if p is not None)
    assert not missing, f"stream parts with no row in STREAM_ARROWS: {', '.join(missing)}"


def test_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The rules themselves, on a small made-up tree."""
    files = {
        "lipsync/__init__.py": "",
        "lipsync/low.py": "def f():\n    from avatar import top\n",
        "accel/__init__.py": "",
        "accel/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import b\n",
        "accel/b.py": "from .a import thing\n",
        "avatar/__init__.py": "",
        "avatar/top.py": "import lipsync.low\n",
        "stream/__init__.py": "",
        "stream/errors.py": "",
        "stream/live/__init__.py": "",
        "stream/live/engine.py": "from ..errors import E\nclass C:\n    from stream.web import app\n",
        "stream/web/__init__.py": "",
        "stream/web/app.py": "from stream.live.engine import Engine\nimport os, numpy\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    arrows, broken = collect_imports(tmp_path)
    assert broken == []
    assert {(a.source, a.target, a.kind) for a in arrows} == {
        ("lipsync.low", "avatar.top", "function-local"),
        ("accel.a", "accel.b", "TYPE_CHECKING"),
        ("accel.b", "accel.a", "top-level"),
        ("avatar.top", "lipsync.low", "top-level"),
        ("stream.live.engine", "stream.errors", "top-level"),
        ("stream.live.engine", "stream.web.app", "class body"),
        ("stream.web.app", "stream.live.engine", "top-level"),
    }
    layers = layer_violations(arrows)
    assert len(layers) == 1 and layers[0].startswith(
        "lipsync/low.py:2: lipsync.low imports avatar.top"
    )
    arrows_against = stream_arrow_violations(arrows)
    assert len(arrows_against) == 1 and "stream/live -> stream/web" in arrows_against[0]
    found = cycles(arrows)
    assert len(found) == 3
    assert any("accel/a.py:3" in c and "accel/b.py:1" in c for c in found)
