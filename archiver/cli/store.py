"""Commands over what the store holds: ``restore``, ``verify``, ``gc`` and ``export``.

A thin layer like the rest of the CLI: each command parses options, opens the
database and store, calls one library function and prints its summary; what stops it
escapes to ``exits``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from archiver.cli.options import (
    allow_option,
    config_from_options,
    read_only,
    state_options,
    warn,
    with_allowed,
)
from archiver.clock import SystemClock, utcnow_iso
from archiver.config import Config, parse_duration
from archiver.db.sqlite import STATES, Database
from archiver.errors import ArchiverError, ConfigError
from archiver.redact import shown_url
from archiver.store import BlobStore, open_store

__all__ = ["export", "gc", "restore", "verify"]

#: What ``restore --mirror`` and ``--rewrite`` take by default.
MIRROR_STATES = tuple(s for s in STATES if s != "ok")
REWRITE_STATES = ("dead", "invalid")

#: The forms of ``restore``, as messages name them.
RESTORE_FORMS = {
    "url": "restoring one URL",
    "mirror": "--mirror DIR",
    "rewrite": "--rewrite",
    "undo": "--undo",
}
#: Options of ``restore`` that only some forms use: (parameter, as typed, those forms).
RESTORE_OPTION_FORMS = (
    ("output", "-o/--output", ("url",)),
    ("sha256", "--sha256", ("url",)),
    ("state", "--state", ("mirror", "rewrite")),
    ("link", "--link", ("mirror",)),
    ("mirror_url", "--mirror-url", ("rewrite",)),
    ("post", "--post", ("rewrite",)),
    ("dry_run", "--dry-run", ("rewrite", "undo")),
)


def _grace(option: str, text: str) -> float:
    """A grace period: a duration, or 0 (``0s``: whatever is unreferenced now is old enough)."""
    number = text.strip().lower().rstrip("smhd")
    try:
        if float(number) == 0:
            return 0.0
    except ValueError:
        pass  # parse_duration names what is wrong
    return parse_duration(option, text)


@contextmanager
def _open(cfg: Config) -> Iterator[tuple[Database, BlobStore]]:
    from archiver.ops.access import open_archive

    with open_archive(cfg, warn) as opened:
        yield opened


def _states(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    from archiver.ops.report import parse_states

    return default if text is None else parse_states(text)


@click.command()
@click.argument("url", required=False)
@state_options
@click.option(
    "--output", "-o", type=click.Path(path_type=Path), help="Write the asset to FILE (not stdout)."
)
@click.option(
    "--sha256",
    help="Restore this version (a unique prefix will do) instead of the newest good one.",
)
@click.option(
    "--mirror",
    "mirror_dir",
    type=click.Path(path_type=Path),
    help="Write DIR/<host>/<path> and DIR/manifest.json.",
)
@click.option(
    "--link",
    is_flag=True,
    help="With --mirror: a manifest of the objects' public URLs ([s3] public_url), no files.",
)
@click.option("--state", help="States to mirror or rewrite: comma list, or all.")
@click.option("--rewrite", is_flag=True, help="Point broken links in the posts at the mirror.")
@click.option("--mirror-url", help="Public base URL of the mirror (for --rewrite).")
@click.option("--post", help="With --rewrite: only posts whose path matches this glob.")
@click.option("--undo", is_flag=True, help="Put back the original URLs (all, or URL's).")
@click.option(
    "--dry-run", is_flag=True, help="With --rewrite/--undo: print a diff, change nothing."
)
@click.option(
    "--from-archive",
    "from_archive",
    metavar="URL",
    help="Store the web archive's closest snapshot of URL as its copy ([archive] endpoint).",
)
def restore(
    url: str | None,
    config_path: Path | None,
    db: str | None,
    store: Path | None,
    output: Path | None,
    sha256: str | None,
    mirror_dir: Path | None,
    link: bool,
    state: str | None,
    rewrite: bool,
    mirror_url: str | None,
    post: str | None,
    undo: bool,
    dry_run: bool,
    from_archive: str | None,
) -> None:
    """Get archived copies back: one asset, a static mirror, or links in the posts.

    \b
    archiver restore URL -o FILE          the newest good copy (or --sha256 SHA)
    archiver restore --mirror DIR         DIR/<host>/<path> + DIR/manifest.json
    archiver restore --mirror DIR --link  DIR/manifest.json of a public bucket's URLs
    archiver restore --rewrite --mirror-url https://mirror.example.org/ [--dry-run]
    archiver restore --undo [URL]         put the original URLs back
    archiver restore --from-archive URL   store the web archive's snapshot as URL's copy

    Example: archiver restore https://example.org/slides.pdf -o slides.pdf
    """
    if from_archive is not None:
        given = (
            *(url, output, sha256, mirror_dir, link, state, rewrite, mirror_url, post, undo),
            dry_run,
        )
        if any(v not in (None, False) for v in given):
            raise ConfigError(
                "--from-archive URL is a form of its own: give it alone"
                " (see 'archiver restore --help')"
            )
        _from_archive(config_from_options(config_path, db, store), from_archive)
        return
    if sum((url is not None and not undo, mirror_dir is not None or rewrite, undo)) != 1:
        raise ConfigError(
            "give exactly one of: URL, --mirror DIR, --rewrite, --undo"
            " (see 'archiver restore --help')"
        )
    if link and rewrite:
        raise ConfigError(
            "--link writes no files for --rewrite to point at: the manifest's public URLs"
            " are the copies; rewrite with a mirror of files"
        )
    if rewrite and not mirror_url:
        raise ConfigError("--rewrite needs --mirror-url (the public URL of the mirror)")
    if dry_run and mirror_dir is not None:
        raise ConfigError(
            "--dry-run changes nothing, but --mirror DIR writes files: write the mirror"
            " first, then preview with --rewrite --dry-run"
        )
    forms = [
        form
        for form, chosen in (
            ("url", url is not None and not undo),
            ("mirror", mirror_dir is not None),
            ("rewrite", rewrite),
            ("undo", undo),
        )
        if chosen
    ]
    _refuse_options_of_other_forms(
        forms,
        output=output,
        sha256=sha256,
        state=state,
        link=link,
        mirror_url=mirror_url,
        post=post,
        dry_run=dry_run,
    )
    cfg = config_from_options(config_path, db, store)
    if url is not None and not undo:
        _restore_one(cfg, url, output, sha256)
        return
    with _open(cfg) as (database, blobs):
        code = 0
        if mirror_dir is not None:
            code = _mirror(database, blobs, mirror_dir, _states(state, MIRROR_STATES), link)
        if rewrite or undo:
            code = max(
                code,
                _rewrite(cfg, database, blobs, mirror_url, state, post, undo, url, dry_run),
            )
    sys.exit(code)


def _refuse_options_of_other_forms(forms: list[str], **given: object) -> None:
    """An option the chosen form would silently ignore is a usage error, not a no-op."""
    for name, typed, applies in RESTORE_OPTION_FORMS:
        if given[name] in (None, False) or set(applies) & set(forms):
            continue
        needs = " or ".join(RESTORE_FORMS[f] for f in applies)
        chosen = " with ".join(RESTORE_FORMS[f] for f in forms)
        raise ConfigError(
            f"{typed} only applies to {needs}, not to {chosen} (see 'archiver restore --help')"
        )


def _from_archive(cfg: Config, url: str) -> None:
    """``restore --from-archive URL``: under the lock, as any command that records."""
    from archiver.ops.wayback import restore_from_archive
    from archiver.run.lock import run_lock

    with _open(cfg) as (database, blobs), run_lock(cfg.db):
        got = restore_from_archive(database, blobs, cfg, url)
    click.echo(
        f"stored the web archive's snapshot of {shown_url(got.url)}"
        f" ({got.snapshot.timestamp}, {got.sha256[:12]}, {got.size} bytes) as its copy",
        err=True,
    )


def _restore_one(cfg: Config, url: str, output: Path | None, sha256: str | None) -> None:
    """Reads the database read-only: only the copy is written (to FILE or stdout)."""
    from archiver.ops.restore import pick_copy, remember_if_damaged, restore_to, restore_to_stream

    copy = read_only(cfg, lambda database, blobs: pick_copy(database, blobs, url, sha256))
    blobs = open_store(cfg)
    try:
        if output is not None:
            restore_to(blobs, copy, output)
        else:
            restore_to_stream(blobs, copy, sys.stdout.buffer)
    except ArchiverError:
        remember_if_damaged(cfg.db, blobs, copy, utcnow_iso(SystemClock()))
        raise
    if output is not None:
        click.echo(f"restored {url} ({copy.sha256[:12]}, {copy.size} bytes) to {output}", err=True)


#: Up to this many URLs with no copy, ``restore --mirror`` names each; beyond, it counts them.
MIRROR_LIST_SKIPPED = 10


def _mirror(
    database: Database, blobs: BlobStore, dest: Path, states: tuple[str, ...], link: bool
) -> int:
    from archiver.ops.mirror import NO_COPY, build_link_mirror, build_mirror

    build = build_link_mirror if link else build_mirror
    summary = build(database, blobs, dest, states)
    damaged = 0
    quiet = [s for s in summary.skipped if s.kind == NO_COPY]
    for skip in summary.skipped:
        if skip.kind != NO_COPY:  # a copy we should hold: a warning, and exit 1
            damaged += 1
            warn(f"{shown_url(skip.url)}: {skip.why}")
    if len(quiet) <= MIRROR_LIST_SKIPPED:
        for skip in quiet:  # expected (never fetched), so said plainly, not as a warning
            click.echo(f"mirror: skipped {shown_url(skip.url)}: {skip.why}", err=True)
    else:
        click.echo(
            f"mirror: skipped {len(quiet)} URLs with no archived copy (never fetched);"
            " 'archiver report --format json' lists them (restorable: false)",
            err=True,
        )
    for old, new in summary.renamed:
        # An older archiver put the query string in the name; links to it are stale now.
        where = f"renamed to {new}" if new else "removed (its URL was not mirrored this run)"
        warn(
            f"mirror file {old} held a query string in its name: {where}; links rewritten"
            " to it need 'archiver restore --undo' then '--rewrite'"
        )
    click.echo(summary.line(), err=True)
    return 1 if damaged else 0


def _rewrite(
    cfg: Config,
    database: Database,
    blobs: BlobStore,
    mirror_url: str | None,
    state: str | None,
    post: str | None,
    undo: bool,
    url: str | None,
    dry_run: bool,
) -> int:
    from archiver.ops.rewrite import apply_plan, plan_rewrite, plan_undo
    from archiver.run.lock import run_lock

    # A preview changes nothing, so it does not wait for (or block) a running crawl.
    with contextlib.nullcontext() if dry_run else run_lock(cfg.db):
        if undo:
            plan = plan_undo(database, [url] if url else [])
        else:
            assert mirror_url is not None
            plan = plan_rewrite(
                database, blobs, mirror_url, _states(state, REWRITE_STATES), post=post
            )
        warnings = list(plan.warnings)
        for note in plan.notes:
            click.echo(f"archiver: {note}", err=True)
        if dry_run:
            click.echo(plan.diff(), nl=False)
        else:
            warnings += apply_plan(database, plan, utcnow_iso(SystemClock()))
    for w in warnings:
        warn(w)
    click.echo(plan.line(applied=not dry_run), err=True)
    return 1 if warnings else 0


@click.command()
@state_options
@click.option("--repair", is_flag=True, help="Re-fetch damaged blobs the origin still serves.")
@click.option(
    "--max-duration",
    help="Stop hashing after this long (e.g. 10m); the next run goes on from there.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Hash at most N blobs this run.")
@allow_option
@click.option(
    "--grace",
    default="1h",
    show_default=True,
    help="Skip unknown store files younger than this (a running crawl may yet name them).",
)
@click.option(
    "--deep",
    is_flag=True,
    help="Also check that each blob opens (PDF parses, image decodes); one that does not is due.",
)
def verify(
    config_path: Path | None,
    db: str | None,
    store: Path | None,
    repair: bool,
    max_duration: str | None,
    limit: int | None,
    grace: str,
    allow_address: tuple[str, ...],
    deep: bool,
) -> None:
    """Re-hash blobs; report missing, corrupt, dangling rows and unknown files (exit 1 if any).

    Example: archiver verify --max-duration 10m
    """
    from archiver import api

    cfg = with_allowed(config_from_options(config_path, db, store), allow_address)
    budget = parse_duration("--max-duration", max_duration) if max_duration else None
    seconds = _grace("--grace", grace)
    result = api.verify(
        cfg,
        repair=repair,
        max_duration=budget,
        limit=limit,
        grace=seconds,
        deep=deep,
        warn=warn,
    )
    for line in result.lines():
        click.echo(line)
    click.echo(result.line(), err=True)
    sys.exit(1 if result.wrong else 0)


@click.command()
@state_options
@click.option(
    "--grace",
    default="1d",
    show_default=True,
    help="Keep unreferenced blobs younger than this (a running crawl may yet name them).",
)
@click.option("--yes", is_flag=True, help="Really remove them (default: only list them).")
def gc(config_path: Path | None, db: str | None, store: Path | None, grace: str, yes: bool) -> None:
    """Remove blobs no URL version references, older than the grace period; dry run unless --yes.

    Example: archiver gc --grace 7d --yes
    """
    from archiver.ops.gc import collect_garbage
    from archiver.run.lock import run_lock
    from archiver.store.identity import is_shared

    cfg = config_from_options(config_path, db, store)
    seconds = _grace("--grace", grace)
    with _open(cfg) as (database, blobs):
        if yes and is_shared(blobs):
            raise ConfigError(
                f"store {blobs.location} is shared by several databases: gc --yes would remove"
                " the blobs only the others name (see README, 'Sharing a store')"
            )
        if yes:
            with run_lock(cfg.db):
                result = collect_garbage(database, blobs, grace=seconds, apply=True)
        else:
            result = collect_garbage(database, blobs, grace=seconds)
    for g in result.garbage:
        click.echo(f"{'removed' if yes else 'would remove'} {g.sha256} ({g.size} bytes)")
    for path in result.temp:
        click.echo(f"{'removed' if yes else 'would remove'} temp file {path}")
    click.echo(result.line(), err=True)


@click.command()
@state_options
@click.option(
    "--warc",
    type=click.Path(path_type=Path),
    required=True,
    help="Write WARC 1.1 records to FILE (.warc.gz compresses them).",
)
def export(config_path: Path | None, db: str | None, store: Path | None, warc: Path) -> None:
    """Write every archived version as WARC 1.1 response records, for pywb and friends.

    Example: archiver export --warc archive.warc.gz
    """
    from archiver.ops.export import export_warc

    cfg = config_from_options(config_path, db, store)
    # Written whole to a temp file then renamed: a second read (see read_only) replaces it.
    result = read_only(cfg, lambda database, blobs: export_warc(database, blobs, warc))
    for url, why in result.skipped:
        warn(f"{shown_url(url)}: {why}; skipped")
    click.echo(result.line(), err=True)
    sys.exit(1 if result.skipped else 0)
