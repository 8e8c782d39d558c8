"""The README's code map stays true: every module of the package has its row (a subpackage's
modules are named in their package's row), and every module a row names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hpo"
TRIVIAL = {"__init__", "__main__"}  # package markers and `python -m hpo`: nothing to own


def _code_map() -> dict[str, str]:
    """The code map's rows: first cell's path (e.g. `hpo/data.py`, `hpo/cli/`) → the row's text."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Code map", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(hpo/[^`]*)` \|(.*)\|$", section, flags=re.MULTILINE)
    return dict(rows)


def test_every_module_has_its_row() -> None:
    rows = _code_map()
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.stem in TRIVIAL:
            continue
        relative = path.relative_to(ROOT).as_posix()
        if path.parent == PACKAGE:
            found = relative in rows
        else:  # named inside its package's row: `main.py`, or `train` in a list of command modules
            row = rows.get(path.parent.relative_to(ROOT).as_posix() + "/", "")
            found = re.search(rf"`{re.escape(path.stem)}(\.py)?`", row) is not None
        if not found:
            missing.append(relative)
    assert not missing, f"modules without a row in the README's code map: {missing}"


def test_every_row_names_a_module_that_exists() -> None:
    rows = _code_map()
    assert len(rows) > 20  # the parse found the table, not an empty section
    gone = [path for path in rows if not (ROOT / path).exists()]
    for package in (p for p in rows if p.endswith("/")):
        named = re.findall(r"`(\w+)\.py`", rows[package])
        gone += [f"{package}{name}.py" for name in named if not (ROOT / package / f"{name}.py").exists()]
    assert not gone, f"the README's code map names modules that do not exist: {gone}"
