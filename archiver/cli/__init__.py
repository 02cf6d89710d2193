"""The command line: one module per group of commands.

``app`` holds the group and adds every command to it by name; ``crawl``, ``extract``,
``report`` and ``store`` hold the commands; ``options`` what they share (options,
config loading, the log); ``exits`` the one place that maps library errors to exit
codes. Imports go one way, ``app`` -> commands -> ``options``, and no module outside
this package imports it.
"""

from archiver.cli.app import cli, main

__all__ = ["cli", "main"]
