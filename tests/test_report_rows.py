"""``row_json`` writes exactly what the JSON encoder writes of ``row_dict``.

The JSON report spells each URL object by hand for speed; the encoder is the
reference, on every kind of value a field may hold (SQLite's typing lets a number
column hold text, and a text column holds any character).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from archiver.ops.report_rows import FIELDS, PostUse, ReportRow, row_dict, row_json

ENCODE = json.JSONEncoder(ensure_ascii=False).encode

TEXTS = (
    None,
    "",
    "plain",
    'quote " and backslash \\ and slash /',
    "controls \x00\x01\x08\t\n\x0b\x0c\r\x1f\x7f",
    "non-ASCII é ✓ \u202egnp.x\u202c \u2028 \u2029 😀",
    "lone \ud800 surrogate",
)
NUMBERS = (None, 0, -1, 200, 2**63 - 1, 1.5, "404", True)
FLAGS = (True, False, 1, 0)


def _row(i: int, **fields: Any) -> ReportRow:
    """A row whose every field cycles through its kind's values (``i`` picks the turn)."""
    text = TEXTS[i % len(TEXTS)]
    values: dict[str, Any] = {}
    for k, name in enumerate(FIELDS):
        if name in ("http_status", "size", "versions", "pages", "width", "height"):
            values[name] = NUMBERS[(i + k) % len(NUMBERS)]
        elif name in ("referenced", "restorable"):
            values[name] = FLAGS[(i + k) % len(FLAGS)]
        elif name == "posts":
            values[name] = tuple(
                PostUse(text or "s", f"p{j}{text or ''}", j * 7, "html-a", text or "")
                for j in range(i % 3)
            )
        elif name in ("url", "state"):
            values[name] = text or "x"
        else:
            values[name] = TEXTS[(i + k) % len(TEXTS)]
    values.update(fields)
    return ReportRow(**values)


@pytest.mark.parametrize("i", range(3 * len(TEXTS) * len(NUMBERS)))
def test_row_json_is_the_encoders_text(i: int) -> None:
    row = _row(i)
    assert row_json(row) == ENCODE(row_dict(row))


def test_row_json_with_a_line_that_is_not_a_number() -> None:
    row = _row(0, posts=(PostUse("s", "p", "12", "k"),))  # type: ignore[arg-type]
    assert row_json(row) == ENCODE(row_dict(row))


def test_row_json_names_every_field_in_order() -> None:
    """A field added to ``FIELDS`` (and ``ReportRow``) must be written by ``row_json`` too."""
    row = _row(3)
    assert list(json.loads(row_json(row))) == list(FIELDS)
