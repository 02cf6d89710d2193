"""The command that only reads posts: ``extract``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from archiver.cli.options import extensions_from, extensions_option, warn
from archiver.errors import ConfigError

__all__ = ["extract_cmd"]


@click.command("extract")
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "tsv"]),
    default="json",
    show_default=True,
    help="json: an array of reference objects; tsv: path, line, kind and URL per line.",
)
@click.option("--base-url", help="Resolve relative references against this URL.")
@extensions_option
def extract_cmd(
    sources: tuple[str, ...], fmt: str, base_url: str | None, extensions: str | None
) -> None:
    """Print every asset reference found in SOURCES; fetches nothing.

    Example: archiver extract data/posts --format json
    """
    from archiver.config import DEFAULT_EXTENSIONS
    from archiver.sources import folders as collect

    out: list[dict[str, Any]] = []
    skipped: list[Path] = []
    exts = extensions_from(extensions) or DEFAULT_EXTENSIONS
    for arg in sources:
        root = Path(arg)
        if not root.exists():
            raise ConfigError(f"source {arg} does not exist (give a folder or file of posts)")
        posts = collect.collect(
            root, source=arg, base_url=base_url, extensions=exts, on_skip=skipped.append
        )
        for post in posts:
            for w in post.warnings:
                where = f"{post.abs_path}:{w.line}" if w.line else str(post.abs_path)
                warn(f"{where}: {w.message}")
            for r in post.references:
                out.append(
                    {
                        "source": arg,
                        "path": post.path,
                        "line": r.line,
                        "kind": r.kind,
                        "url": r.url,
                        "as_written": r.as_written,
                        "text": r.text,
                    }
                )
    if skipped:
        from archiver.text import plural

        warn(f"{plural(len(skipped), 'file')} skipped by extension (see --extensions)")
    if fmt == "json":
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        for o in out:
            click.echo(f"{o['path']}\t{o['line']}\t{o['kind']}\t{o['url']}")
