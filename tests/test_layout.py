"""The package's layout: the import graph of ``python/simloom`` has no circle.

A circle (``loop`` imports ``net``, which imports ``loop`` back) means neither
module can be read, tested or loaded without the other, and it is usually kept
working by hiding one side of it inside a function. So every import counts here:
at module level, inside functions and classes, behind ``try``. Only imports under
``if TYPE_CHECKING:`` are left out (they never run). Importing a module also runs
its packages' ``__init__`` (``from .hypothesis import _compat`` executes
``simloom/hypothesis/__init__.py`` first), so that counts as importing the package
too, except for the packages holding the importer: they are loaded before it runs
(``simloom`` itself, for every module).
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import simloom
import simloom._core

PACKAGE_DIR = Path(simloom.__file__).parent
ROOT = "simloom"


def _module_name(path: Path) -> str:
    parts = [ROOT, *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    """Every module of the package: its ``.py`` files and the compiled ``_core``
    (known by its stub; it imports nothing of the package)."""
    paths = sorted(PACKAGE_DIR.rglob("*.py")) + sorted(PACKAGE_DIR.rglob("*.pyi"))
    modules: dict[str, Path] = {}
    for path in paths:
        modules.setdefault(_module_name(path), path)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: anywhere but under TYPE_CHECKING."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _runtime_imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _runtime_imports(node)


def _with_packages(module: str, importer: str) -> set[str]:
    """``module`` and every package above it whose ``__init__`` importing it runs:
    not those holding ``importer`` (loaded before it runs, as ``simloom`` is)."""
    parts = module.split(".")
    packages = {".".join(parts[:end]) for end in range(1, len(parts))}
    return {module} | {p for p in packages if not (importer + ".").startswith(p + ".")}


def import_graph() -> dict[str, set[str]]:
    """Module → the package modules it imports (at run time, anywhere in it)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        if path.suffix == ".pyi":
            continue  # the compiled module: a leaf
        for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
            targets: set[str] = set()
            if isinstance(node, ast.Import):
                targets = {alias.name for alias in node.names}
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    targets.add(submodule if submodule in modules else base)
            for target in targets:
                if target == ROOT or target.startswith(ROOT + "."):
                    graph[name] |= {t for t in _with_packages(target, name) if t in modules} - {
                        name
                    }
    return graph


def components(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's
    algorithm): within one, every module imports every other, indirectly."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each component, as a path back to where it started."""
    found = []
    for component in components(graph):
        start = min(component)
        path, seen = [start], {start}
        while True:  # walk inside the component until a module repeats
            step = min(t for t in graph[path[-1]] if t in component)
            if step in seen:
                found.append([*path[path.index(step) :], step])
                break
            path.append(step)
            seen.add(step)
    return found


def test_the_import_graph_of_the_package_is_acyclic() -> None:
    graph = import_graph()
    found = [
        " -> ".join(circle) + f" (in a circle with each other: {', '.join(sorted(members))})"
        for circle, members in zip(circles(graph), components(graph), strict=True)
    ]
    assert not found, "import circles in python/simloom:\n" + "\n".join(found)


def test_the_graph_sees_imports_inside_functions_and_skips_type_checking_ones() -> None:
    """The checker itself: it would catch a circle hidden inside a function."""
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .loop import SimLoop\n"
        "def later():\n    from .world import World\n"
    )
    found = [node.module for node in _runtime_imports(tree) if isinstance(node, ast.ImportFrom)]
    assert found == ["typing", "world"]
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_every_module_of_the_package_is_in_the_graph() -> None:
    graph = import_graph()
    assert {"simloom.loop", "simloom.net", "simloom.world", "simloom.testing"} <= set(graph)
    assert {"simloom._core", "simloom.hypothesis._compat"} <= set(graph)
    assert "simloom.world" in graph["simloom.loop"]  # a module-level import
    assert "simloom.hypothesis" in graph["simloom._shrink"]  # imported inside functions


# ------------------------------------------------------------------ constants

#: Python names for values the engine defines: each must be the engine's own value,
#: read from ``_core``, never a copy that could drift from it.
ENGINE_CONSTANTS = [
    ("simloom._config", "DEFAULT_LIVELOCK_STEPS", "DEFAULT_LIVELOCK_STEPS"),
    ("simloom.tape", "MAX_GAP", "MAX_GAP"),
    ("simloom._scheduler", "DEFAULT_PCT_DEPTH", "DEFAULT_PCT_DEPTH"),
    ("simloom._scheduler", "DEFAULT_PCT_HORIZON", "DEFAULT_PCT_HORIZON"),
    ("simloom._budgets", "_MAX_VIRTUAL_TIME", "NEVER_SECONDS"),
]


@pytest.mark.parametrize(("module", "name", "core_name"), ENGINE_CONSTANTS)
def test_a_value_the_engine_defines_is_read_from_core_not_redeclared(
    module: str, name: str, core_name: str
) -> None:
    value = getattr(importlib.import_module(module), name)
    assert value == getattr(simloom._core, core_name)
    path = Path(importlib.import_module(module).__file__ or "")
    assignments = [
        node
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
    ]
    assert [ast.unparse(node.value) for node in assignments] == [f"_core.{core_name}"]


def test_every_error_class_the_engine_raises_exists_in_simloom_errors() -> None:
    import simloom.errors
    from simloom import _core

    assert len(_core.RAISED_ERRORS) == len(set(_core.RAISED_ERRORS)) > 0
    for name in _core.RAISED_ERRORS:
        cls = getattr(simloom.errors, name)
        assert issubclass(cls, simloom.errors.SimloomError), name


def test_an_error_the_engine_raises_is_the_class_in_simloom_errors() -> None:
    import simloom
    from simloom import _core

    with pytest.raises(simloom.ForeignTapeError):
        _core.Tape._decode(b"\xff\x00")
    with pytest.raises(simloom.TruncatedTapeError):
        _core.Tape._decode(b'{"version": 1, "deviat')
    with pytest.raises(simloom.EventLogError):
        _core.decode_event_log(b"not a log")
