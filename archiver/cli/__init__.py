"""The command line: one module per group of commands.

``app`` holds the group, the shared options and the one place that maps library errors
to exit codes; ``ops`` and ``store`` add their commands to it.
"""

from archiver.cli.app import cli, main

__all__ = ["cli", "main"]
