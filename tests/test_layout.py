"""The package's layout rules (``archiver/__init__.py`` states them), read from the source.

Each module is parsed, not imported: an import that runs (anywhere in the module, inside
functions too, but not under ``if TYPE_CHECKING:``) counts. ``tests/test_http_stack.py``
keeps the rule that only ``net`` speaks HTTP.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_http_stack import package_of, runtime_imports

import archiver

PACKAGE = Path(archiver.__file__).parent

#: The start of an SQL statement in a string literal.
SQL = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|PRAGMA|BEGIN|COMMIT|ROLLBACK|WITH)\s",
)
#: What talks to a database connection directly.
DB_CALLS = {"execute", "executemany", "executescript", "conn", "rows", "scalar", "utils"}
DB_LIBRARIES = ("sqlite3", "sqlite_utils", "psycopg")


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


MODULES = dict(_modules())


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _stage(module: str) -> str:
    """``archiver.db.sqlite`` -> ``db``; a top-level module is its own stage."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(module: str) -> set[str]:
    """The archiver modules ``module`` imports at run time."""
    by_line: dict[int, set[str]] = {}
    for line, name in runtime_imports(_tree(MODULES[module]), package_of(MODULES[module])):
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name:
            by_line.setdefault(line, set()).add(name)
    found: set[str] = set()
    for names in by_line.values():
        # ``from archiver.db import schema`` imports the submodule, not the package's names.
        found |= {n for n in names if not any(m.startswith(n + ".") for m in names)}
    return found - {module, "archiver"}


GRAPH = {module: _imports(module) for module in MODULES}


def test_nothing_outside_cli_imports_cli() -> None:
    offenders = [
        f"{module} imports {dep}"
        for module, deps in GRAPH.items()
        if _stage(module) != "cli" and module != "archiver.__main__"
        for dep in deps
        if _stage(dep) == "cli"
    ]
    assert offenders == []


def test_relative_imports_are_resolved() -> None:
    # ``archiver/__main__.py`` runs ``from .cli import main``: the one import of cli
    # outside it, resolved as the interpreter resolves it.
    assert "archiver.cli" in GRAPH["archiver.__main__"]
    tree = ast.parse("from .. import cli\nfrom ..db.sqlite import Database")
    found = {name for _, name in runtime_imports(tree, "archiver.ops")}
    assert {"archiver.cli", "archiver.db.sqlite"} <= found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_no_import_cycle_between_modules() -> None:
    assert _cycles(GRAPH) == []


def test_no_import_cycle_between_stages() -> None:
    stages: dict[str, set[str]] = {}
    for module, deps in GRAPH.items():
        stages.setdefault(_stage(module) or module, set()).update(
            _stage(d) or d for d in deps if (_stage(d) or d) != (_stage(module) or module)
        )
    assert _cycles(stages) == []


def _sql_offences(module: str, tree: ast.Module) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value):
            out.append(f"{module}:{node.lineno} SQL {node.value.strip()[:40]!r}")
        elif isinstance(node, ast.Attribute) and node.attr in DB_CALLS:
            out.append(f"{module}:{node.lineno} .{node.attr}")
    for line, name in runtime_imports(tree):
        if name.split(".")[0] in DB_LIBRARIES:
            out.append(f"{module}:{line} imports {name}")
    return out


def test_only_the_db_package_has_sql() -> None:
    offenders = []
    for module, path in MODULES.items():
        if _stage(module) == "db":
            continue
        offenders += _sql_offences(module, _tree(path))
    assert offenders == []


def test_the_migration_steps_hold_no_sql() -> None:
    # The steps are declared once for every backend: each applies them its own way.
    assert _sql_offences("archiver.db.schema", _tree(MODULES["archiver.db.schema"])) == []


@pytest.mark.parametrize(
    "source",
    [
        'db.conn.execute("SELECT 1")',
        'x = "UPDATE urls SET state=?"',
        "import sqlite3",
        "rows = db.rows(q)",
    ],
)
def test_the_sql_rule_catches(source: str) -> None:
    assert _sql_offences("m", ast.parse(source))


def test_the_rules_are_written_in_the_package_docstring() -> None:
    doc = archiver.__doc__ or ""
    for rule in ("only `db`", "only `net`", "imports `cli`", "cycle"):
        assert rule in doc, rule
