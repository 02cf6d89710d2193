from __future__ import annotations

import importlib
import re
from pathlib import Path

import media
from server import LoopbackServer, Reply

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


README = Path(__file__).resolve().parents[1] / "README.md"


def _library_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Library")
    return text[start : text.index("\n## ", start + 1)]


def test_readme_library_section_lists_exactly_all() -> None:
    section = _library_section()
    table = section[section.index("| name | what |") :]
    documented = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)[`(]", table))
    assert documented == set(archiver.__all__)


def test_no_test_double_is_public() -> None:
    for name in archiver.__all__:
        value = getattr(archiver, name)
        module = getattr(value, "__module__", "") or ""
        assert "Fake" not in name and not name.endswith("Transport"), name
        assert not module.startswith("tests"), name


def test_the_library_crawls_reports_restores_and_verifies(tmp_path: Path) -> None:
    """The README's example, on a real server, database and store."""
    body = media.deck("x", 2000)
    with LoopbackServer() as srv:
        srv.route("/deck.pdf", Reply(200, body, {"Content-Type": "application/pdf"}))
        srv.route("/gone.pdf", Reply(404, b"not here"))
        posts = tmp_path / "posts"
        posts.mkdir()
        (posts / "talk.md").write_text(
            f"[slides]({srv.url('/deck.pdf')}) and [gone]({srv.url('/gone.pdf')})\n"
        )
        (tmp_path / "config.toml").write_text(
            f'db = "state.db"\nstore = "store"\n[[sources]]\npath = "{posts}"\n'
        )
        config = archiver.load_config(tmp_path / "config.toml")
        summary = archiver.crawl(config)
        # A first 404 is failing, not yet dead (confirmation takes more runs).
        assert (summary.checked, summary.not_ok, summary.exit_code) == (2, 1, 0)
        rows = archiver.report_rows(config, archiver.ReportFilter(states=("failing",)))
        assert [r["url"] for r in rows] == [srv.url("/gone.pdf")]
        assert rows[0]["state"] == archiver.UrlState.FAILING
        archiver.restore(config, srv.url("/deck.pdf"), dest=tmp_path / "deck.pdf")
        assert (tmp_path / "deck.pdf").read_bytes() == body
        assert not archiver.verify(config).wrong
        again = archiver.check(config)
        assert again.checked == 2 and isinstance(again, archiver.RunSummary)
