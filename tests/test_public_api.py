from __future__ import annotations

import archiver


def test_all_is_sorted_and_complete() -> None:
    names = [n for n in archiver.__all__ if n != "__version__"]
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in archiver.__all__:
        assert hasattr(archiver, name), name
    public = {
        n
        for n, v in vars(archiver).items()
        if not n.startswith("_") and not isinstance(v, type(archiver)) and n != "annotations"
    }
    assert public <= set(archiver.__all__)
