"""docs/ARCHITECTURE.md stays true: imports only go down its layer table, no two modules import
each other (directly or around a loop), every module has its row in the code map and every row
names a module that exists, and each layer's package says what it owns and may import."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "hpo"
DOC = ROOT / "docs" / "ARCHITECTURE.md"
TRIVIAL = {"__init__", "__main__"}  # package markers and `python -m hpo`: nothing to own


def _section(title: str) -> str:
    return DOC.read_text(encoding="utf-8").split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def _layers() -> dict[str, int]:
    """Layer folder (e.g. `hpo/core/`) -> its number, from the document's layer table."""
    rows = re.findall(r"^\| (\d) \| `(hpo/[a-z_/]*)` \|", _section("Layers"), flags=re.MULTILINE)
    return {folder: int(number) for number, folder in rows}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer_of(module: str, layers: dict[str, int]) -> int:
    """The layer of a module: that of the deepest layer folder holding it."""
    path = module.replace(".", "/")
    folders = [f for f in layers if f != "hpo/" and (path + "/").startswith(f)]
    return layers[max(folders, key=len)] if folders else layers["hpo/"]


def imports_of(module: str) -> set[str]:
    """The hpo modules `module` imports anywhere in its body (lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hpo":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "hpo"}
    return {m for m in found if m in MODULES and m not in (module, "hpo")}


def test_the_layer_table_has_every_layer() -> None:
    assert list(_layers()) == ["hpo/", "hpo/core/", "hpo/stores/", "hpo/search/", "hpo/results/", "hpo/cli/"]


def test_no_import_climbs_a_layer() -> None:
    layers = _layers()
    climbing = [
        f"{module} (layer {layer_of(module, layers)}) imports {target} (layer {layer_of(target, layers)})"
        for module in sorted(MODULES)
        if module != "hpo.__main__"  # `python -m hpo` is the CLI's entry point
        for target in sorted(imports_of(module))
        if layer_of(target, layers) > layer_of(module, layers)
    ]
    assert not climbing, climbing


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of `graph` as the list of its modules ([] when there is none)."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str]:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return []
        for target in sorted(graph.get(node, ())):
            if cycle := visit(target, [*path, node]):
                return cycle
        done.add(node)
        return []

    for start in sorted(graph):
        if cycle := visit(start, []):
            return cycle
    return []


def test_no_import_cycle() -> None:
    graph = {module: imports_of(module) for module in MODULES}
    assert find_cycle(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check above can fail: a loop of three is found, a tree is not."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def _code_map() -> dict[str, str]:
    """The code map's rows: first cell's path (e.g. `hpo/core/data.py`, `hpo/cli/`) -> its text."""
    return dict(re.findall(r"^\| `(hpo/[^`]*)` \|(.*)\|$", _section("Code map"), flags=re.MULTILINE))


def test_every_module_has_its_row() -> None:
    rows, missing = _code_map(), []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.stem in TRIVIAL:
            continue
        relative = path.relative_to(ROOT).as_posix()
        package_row = next((rows[p] for p in rows if p.endswith("/") and relative.startswith(p)), "")
        found = relative in rows or re.search(rf"`{re.escape(path.stem)}(\.py)?`", package_row) is not None
        if not found:
            missing.append(relative)
    assert not missing, f"modules without a row in docs/ARCHITECTURE.md's code map: {missing}"


def test_every_row_names_a_module_that_exists() -> None:
    rows = _code_map()
    assert len(rows) > 30  # the parse found the table, not an empty section
    gone = [path for path in rows if not (ROOT / path).exists()]
    for package in (p for p in rows if p.endswith("/")):
        named = re.findall(r"`(\w+)\.py`", rows[package])
        gone += [f"{package}{name}.py" for name in named if not (ROOT / package / f"{name}.py").exists()]
    assert not gone, f"docs/ARCHITECTURE.md's code map names modules that do not exist: {gone}"


@pytest.mark.parametrize("layer", ["core", "stores", "search", "results", "cli"])
def test_each_layer_says_what_it_owns_and_may_import(layer: str) -> None:
    doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text(encoding="utf-8")))
    assert doc and "May import:" in doc, f"hpo/{layer}/__init__.py"
