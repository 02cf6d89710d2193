"""``python -m archiver`` as a real process: what cron and CI run, exit code and all.

The environment is the test's (conftest puts the fake resolver on ``PYTHONPATH`` and
allows loopback), unless a test passes its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "archiver", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        env=dict(os.environ) if env is None else env,
    )
