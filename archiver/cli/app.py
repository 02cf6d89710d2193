"""The ``archiver`` command line: a thin layer over the library.

Each command parses options, loads the config and calls one library function; what
stops it becomes one line and an exit code in one place, ``exits`` (the codes are
listed there). The commands live one module per group and are added here by name:

    crawl    crawl, check                  the pipeline
    extract  extract                       read posts, fetch nothing
    report   report, status                read the state, change nothing
    store    restore, verify, gc, export   what the store holds
"""

from __future__ import annotations

import signal
import sys

import click

from archiver import __version__
from archiver.cli import crawl, extract, report, store
from archiver.cli.exits import ArchiverGroup, run
from archiver.errors import Stop

__all__ = ["cli", "main"]


@click.group(cls=ArchiverGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="archiver")
@click.option(
    "--debug",
    is_flag=True,
    help="On an unexpected error (exit 70), print the traceback instead of writing it to a file.",
)
def cli(debug: bool) -> None:
    """Keep the slides and pictures of event posts alive.

    Example: archiver crawl data/posts && archiver report
    """


for command in (
    crawl.crawl,
    crawl.check,
    extract.extract_cmd,
    report.report,
    report.status,
    store.restore,
    store.verify,
    store.gc,
    store.export,
):
    cli.add_command(command)


def _on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C (transactions roll back, the lock is released)."""
    raise Stop(signum)


def main() -> None:
    """The console script: runs ``cli`` and exits with its code."""
    if "httpx" not in sys.modules:
        # httpx imports its own command line client (rich, pygments: ~45 ms of start-up)
        # whenever those are installed; this process never runs it. A None entry makes
        # that optional import fail fast, and httpx.main then only says it cannot run.
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    signal.signal(signal.SIGTERM, _on_sigterm)
    sys.exit(run(cli))
