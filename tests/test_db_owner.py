"""Only the db package has SQL: the commands ask ``Database`` methods for typed records."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "archiver"

#: What a module that issues SQL or reads rows would contain.
SQL = re.compile(
    r"\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|CREATE TABLE|ALTER TABLE)\b"
    r"|\.conn\b|\bdb\.(rows|scalar|utils)\b|\bsqlite3\b|\bsqlite_utils\b"
)


@pytest.mark.parametrize(
    "path",
    sorted([*(PACKAGE / "ops").glob("*.py"), *(PACKAGE / "store").glob("*.py")]),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_no_module_of_ops_or_store_issues_sql(path: Path) -> None:
    found = [
        f"{n}: {line.strip()}"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if SQL.search(line)
    ]
    assert found == []


def test_the_migration_steps_hold_no_sql() -> None:
    text = (PACKAGE / "db" / "schema.py").read_text(encoding="utf-8")
    assert not SQL.search(text)
