from __future__ import annotations

import importlib

import archiver


def test_all_is_sorted_and_every_name_resolves() -> None:
    names = [n for n in archiver.__all__ if n != "__version__"]
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in archiver.__all__:
        assert getattr(archiver, name) is not None, name


def test_exports_come_from_the_module_named() -> None:
    for name, module in archiver._EXPORTS.items():
        assert getattr(importlib.import_module(f"archiver.{module}"), name) is getattr(
            archiver, name
        )
