"""``restore --mirror`` says why it skipped each URL it has no file for."""

from __future__ import annotations

from pathlib import Path

from server import LoopbackServer
from test_report import PNG, World, make_world, sha
from test_restore import flip_byte


def test_the_summary_counts_each_reason_and_names_each_url(
    tmp_path: Path, server: LoopbackServer
) -> None:
    world = make_world(tmp_path, server)
    flip_byte(world.store().path_for(sha(PNG)))
    code, _, err = world.run("restore", "--mirror", str(tmp_path / "m"))
    assert code == 1  # a damaged copy is worth a look; a URL never fetched is not
    assert err.splitlines() == [
        f"archiver: warning: {world.photo}: blob {sha(PNG)} is corrupt or missing;"
        " run 'archiver verify --repair'",
        f"mirror: skipped {world.gone}: no archived copy",
        "mirror: 1 written (1 hard link, 0 copies), 0 unchanged,"
        " 2 skipped (1 with no copy, 1 damaged copy)",
    ]


def test_many_urls_with_no_copy_are_counted_not_listed(
    tmp_path: Path, server: LoopbackServer
) -> None:
    world = World(tmp_path, server)
    never = [server.url(f"/never-{i}.pdf") for i in range(11)]  # unrouted: 404 from the start
    world.write("2025/many.md", "".join(f"[n]({u})\n" for u in never))
    world.crawl()
    world.crawl()
    code, _, err = world.run("restore", "--mirror", str(tmp_path / "m"))
    assert code == 0
    assert err.splitlines() == [
        "mirror: skipped 12 URLs with no archived copy (never fetched);"
        " 'archiver report --format json' lists them (restorable: false)",
        "mirror: 0 written (0 hard links, 0 copies), 0 unchanged, 12 skipped (12 with no copy)",
    ]
    assert not any(u in err for u in never)
