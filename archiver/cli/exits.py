"""The one place that turns what stops a command into one line on stderr and an exit code.

Commands never catch ``ArchiverError``: it escapes to ``ArchiverGroup.invoke`` (or, for
what happens outside any command, to ``run``), and both ask ``failure`` for the line
and the code::

    0    every link ok (or, with --fail-on new, nothing newly broken)
    1    some link is not ok / a report matched / a check found damage
    2    usage or configuration error
    3    the run could not be done (store or database unusable, network unreachable)
    70   a bug: an unexpected exception (one line; the traceback goes to a file)
    75   another run holds the lock
    130  interrupted by SIGINT (Ctrl-C); 143: by SIGTERM (what finished is recorded)

A library error's code is its ``exit_code`` (see ``archiver.errors``).
"""

from __future__ import annotations

import signal
import sys
import tempfile
import traceback
from typing import Any

import click

from archiver.cli.options import LOG_KEY, Log
from archiver.errors import ArchiverError, Stop

__all__ = ["ArchiverGroup", "failure", "run"]


class ArchiverGroup(click.Group):
    """The ``archiver`` group: turns what escapes a command into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Stop(signal.SIGINT) from None  # not click's "Aborted!" and exit 1
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own: ``main`` words them (a test runner has click do it)
        except Exception as exc:
            log = ctx.meta.get(LOG_KEY)
            sys.exit(failure(exc, debug=bool(ctx.params.get("debug")), log=log))


def run(group: click.Group) -> int:
    """Runs ``group`` on ``sys.argv`` outside click's own error handling, so that every
    error is worded by ``failure``; returns the exit code."""
    try:
        code = group.main(prog_name="archiver", standalone_mode=False)
    except (Exception, Stop) as exc:  # SystemExit is a command's own exit code
        return failure(exc, debug="--debug" in sys.argv[1:2])
    return code if isinstance(code, int) else 0


def failure(exc: BaseException, *, debug: bool, log: Log | None = None) -> int:
    """Writes the one line that says why the command stopped; returns its exit code.

    ``log``: the command's log (``Log.install``); a JSON log gets a library error as a
    JSON line, so a log reader sees how the run ended.
    """
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        exc.show()  # plain ``archiver``: the help itself, as click prints it
        return exc.exit_code
    if isinstance(exc, click.UsageError):
        click.echo(usage_line(exc), err=True)
        return exc.exit_code
    if isinstance(exc, click.ClickException):
        click.echo(f"archiver: {exc.format_message()}", err=True)
        return exc.exit_code
    if isinstance(exc, click.Abort):  # KeyboardInterrupt while click itself was parsing
        click.echo("archiver: interrupted by SIGINT", err=True)
        return 128 + signal.SIGINT if exc.__cause__ is not None else 1
    if isinstance(exc, Stop):
        click.echo(f"archiver: interrupted by {signal.Signals(exc.signum).name}", err=True)
        return 128 + exc.signum
    if isinstance(exc, ArchiverError):
        if log is not None and log.fmt == "json":
            log.emit("error", str(exc), exit_code=exc.exit_code)
        else:
            click.echo(f"archiver: {exc}", err=True)
        return exc.exit_code
    return internal_error(exc, debug=debug)


def internal_error(exc: BaseException, *, debug: bool) -> int:
    """A bug: one line, the traceback in a file it names (or on stderr with --debug), exit 70."""
    from archiver.run.crawl import INTERNAL_ERROR, describe_bug

    text = "".join(traceback.format_exception(exc))
    what = describe_bug(exc)
    if debug:
        click.echo(text, err=True, nl=False)
        where = "traceback above"
    else:
        try:
            fd, name = tempfile.mkstemp(prefix="archiver-traceback-", suffix=".txt")
            with open(fd, "w", encoding="utf-8") as f:
                f.write(text)
            where = f"traceback in {name}"
        except OSError as write_error:
            where = f"traceback not saved ({write_error.strerror}); rerun with --debug"
    click.echo(
        f"archiver: internal error: {what} ({where}; please report it)",
        err=True,
    )
    return INTERNAL_ERROR


def usage_line(exc: click.UsageError) -> str:
    """Click's three lines (Usage, Try, Error) as the one ``archiver: ...`` line used
    for every other error, naming the help to read."""
    message = " ".join(exc.format_message().split()).replace(". (", " (")
    message = message[:1].lower() + message[1:] if message[1:2].islower() else message
    command = exc.ctx.command_path if exc.ctx is not None else "archiver"
    return f"archiver: {message.rstrip('.')} (see '{command} --help')"
