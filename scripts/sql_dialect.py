"""Prints where the queries of archiver/db/ use SQLite-only SQL (``dialect.CATALOGUE``).

The inventory in docs/postgres.md is this script's output: run it again after the
queries change. Each SQL string literal of the SQLite backend's modules is read
(f-strings with each ``{...}`` as a placeholder), docstrings excepted.

Usage: python scripts/sql_dialect.py [--markdown]
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from archiver.db import dialect

ROOT = Path(__file__).resolve().parent.parent
#: The modules holding the SQLite backend's queries (schema/dialect/postgres hold none).
MODULES = (
    "sqlite.py",
    "sqlite_backend.py",
    "archive.py",
    "run_queries.py",
    "sqlite_migrate.py",
    "views.py",
)
_SQLISH = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|PRAGMA|BEGIN|WHERE|ORDER BY|CASE|COMMIT)\b"
)


def _docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def sql_strings(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of each SQL-looking string literal in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    inner: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            inner |= {id(v) for v in node.values}
            text = "".join(
                v.value if isinstance(v, ast.Constant) else " ? "
                for v in node.values
                if isinstance(v, ast.Constant | ast.FormattedValue)
            )
            if _SQLISH.search(text):
                yield node.lineno, text
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in skip | inner
            and _SQLISH.search(node.value)
        ):
            yield node.lineno, node.value


def inventory(root: Path = ROOT) -> dict[str, list[str]]:
    """Construct key -> ``file:line`` of each use, in catalogue order."""
    found: dict[str, list[str]] = {c.key: [] for c in dialect.CATALOGUE}
    for name in MODULES:
        path = root / "archiver" / "db" / name
        if not path.exists():
            continue
        rel = path.relative_to(root)
        for line, text in sql_strings(path):
            try:
                keys = dialect.sqlite_only(text)
            except dialect.DialectError as exc:
                keys = []
                print(f"{rel}:{line}: {exc}", file=sys.stderr)
            for key in keys:
                found[key].append(f"{rel}:{line}")
        for number, source in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for c in dialect.CATALOGUE:
                if c.python is not None and c.python.search(source):
                    found[c.key].append(f"{rel}:{number}")
    return found


def main(argv: list[str]) -> int:
    found = inventory()
    if "--markdown" in argv:
        print("| construct | uses | where | portable form |")
        print("| --- | ---: | --- | --- |")
        for c in dialect.CATALOGUE:
            where = ", ".join(found[c.key]) or "-"
            print(f"| `{c.key}`: {c.sqlite} | {len(found[c.key])} | {where} | {c.portable} |")
        return 0
    for c in dialect.CATALOGUE:
        print(f"{c.key}: {len(found[c.key])}  {' '.join(found[c.key])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
