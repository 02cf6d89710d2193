"""Measures extract's precision and recall against a hand-checked expected list.

Usage: python scripts/eval_extraction.py [EXPECTED_TSV [CORPUS_DIR]]

EXPECTED_TSV has one ``post path<TAB>URL as written`` line per asset (default
/work/shared/corpus/sofastack.expected.tsv); CORPUS_DIR defaults to the TSV's name
without ``.expected.tsv``. Every post is read as ``collect`` would (post files
only); files the expected list names that are not posts by extension are counted
separately, then read as Markdown for a second, "all files" figure. Also checks
``text[start:end] == as_written`` for every reference and reports the speed.
Exit status 1 when the span invariant fails anywhere.
"""

from __future__ import annotations

import html
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archiver.extract import Reference, extract, post_format
from archiver.sources.folders import iter_post_files

DEFAULT_EXPECTED = Path("/work/shared/corpus/sofastack.expected.tsv")
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_MD_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_HTML_KINDS = ("html-", "css-url", "autolink")


def as_listed(ref: Reference) -> str:
    """The reference in the expected list's terms: as written, entities/escapes decoded."""
    value = ref.as_written
    if not ref.kind.startswith(_HTML_KINDS) and not ref.kind.startswith("front-matter"):
        value = _MD_ESCAPE.sub(r"\1", value)
    return _ENTITY.sub(lambda m: html.unescape(m.group()), value).strip()


def load_expected(path: Path) -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            post, url = line.split("\t", 1)
            pairs.add((post, url))
    return pairs


def extract_file(root: Path, file: Path, found: set[tuple[str, str]], bad_spans: list[str]) -> int:
    """Extracts one file into ``found``; returns its number of references."""
    text = file.read_bytes().decode("utf-8", errors="replace")
    rel = file.relative_to(root).as_posix()
    result = extract(text, post_format(file.name) or "markdown")
    for ref in result.references:
        if text[ref.start : ref.end] != ref.as_written:
            bad_spans.append(f"{rel}:{ref.line}: span {ref.start}-{ref.end} != {ref.as_written!r}")
        found.add((rel, as_listed(ref)))
    return len(result.references)


def figures(name: str, expected: set[tuple[str, str]], found: set[tuple[str, str]]) -> None:
    hits = len(expected & found)
    precision = hits / len(found) if found else 1.0
    recall = hits / len(expected) if expected else 1.0
    print(
        f"{name}: expected {len(expected)}, found {len(found)}, agreed {hits}; "
        f"precision {precision:.2%}, recall {recall:.2%}"
    )


def main(argv: list[str]) -> int:
    expected_path = Path(argv[1]) if len(argv) > 1 else DEFAULT_EXPECTED
    if len(argv) > 2:
        root = Path(argv[2])
    else:
        root = expected_path.with_name(expected_path.name.removesuffix(".expected.tsv"))
    expected = load_expected(expected_path)

    found: set[tuple[str, str]] = set()
    bad_spans: list[str] = []
    posts = references = 0
    started = time.perf_counter()
    for file in iter_post_files(root):
        posts += 1
        references += extract_file(root, file, found, bad_spans)
    elapsed = time.perf_counter() - started
    print(
        f"{posts} posts, {references} references in {elapsed:.2f}s "
        f"({posts / elapsed:.0f} posts/s incl. reading)"
    )

    scanned = {file.relative_to(root).as_posix() for file in iter_post_files(root)}
    out_of_scope = {pair for pair in expected if pair[0] not in scanned}
    figures("post files", expected - out_of_scope, found)
    if out_of_scope:
        files = sorted({post for post, _ in out_of_scope})
        print(f"  {len(out_of_scope)} expected pairs are in {len(files)} non-post files:")
        for post in files:
            print(f"    {post}")
        all_found = set(found)
        for post in files:
            if (root / post).is_file():
                extract_file(root, root / post, all_found, bad_spans)
        figures("all files (non-posts read as Markdown)", expected, all_found)
        found = all_found

    missing: dict[str, list[str]] = defaultdict(list)
    extra: dict[str, list[str]] = defaultdict(list)
    for post, url in expected - found:
        missing[post].append(url)
    for post, url in found - expected:
        extra[post].append(url)
    for title, table in (
        ("MISSING (expected, not found)", missing),
        ("EXTRA (found, not expected)", extra),
    ):
        print(f"\n{title}: {sum(map(len, table.values()))}")
        for post in sorted(table):
            for url in sorted(table[post]):
                print(f"  {post}\t{url}")

    print(f"\nspan invariant: {len(bad_spans)} violations")
    for line in bad_spans[:50]:
        print(f"  {line}")
    return 1 if bad_spans else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
