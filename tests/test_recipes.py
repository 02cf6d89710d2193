"""README's cron and systemd recipes, run as written: what they log and what they mail.

The command lines are read from README.md itself, so the recipes cannot drift from what
is tested. Paths are swapped for a temp folder, ``mail`` for a stub on PATH that records
its arguments and stdin, and the posts link a loopback server.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from server import LoopbackServer, Reply
from test_cli import PDF, PNG

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
SRV = "/srv/archiver"


def _cron_command() -> str:
    block = re.search(r"```cron\n(.*?)```", README, flags=re.S)
    assert block is not None
    (entry,) = [line for line in block.group(1).splitlines() if line and line[0] != "#"]
    return entry.split(None, 5)[5]  # the five time fields, then the command


def _unit(key: str) -> str:
    block = re.search(r"```ini\n(\[Unit\]\nDescription=archiver: check.*?)```", README, re.S)
    assert block is not None
    (value,) = [
        line.split("=", 1)[1] for line in block.group(1).splitlines() if line.startswith(key + "=")
    ]
    return value


class Machine:
    """/srv/archiver in a temp folder: a .venv/bin/archiver that runs this checkout, posts
    linking a loopback server, and a ``mail`` stub first on PATH."""

    def __init__(self, root: Path, server: LoopbackServer) -> None:
        self.root, self.server = root, server
        self.deck = server.route("/deck.pdf", Reply(body=PDF, content_type="application/pdf"))
        self.img = server.route("/cover.png", Reply(body=PNG, content_type="image/png"))
        post = root / "posts" / "meetup.md"
        post.parent.mkdir(parents=True)
        post.write_text(f"![cover]({self.img})\n[deck]({self.deck})\n", encoding="utf-8")
        # Every run re-checks (recheck_after) and one failure confirms a link dead.
        (root / "config.toml").write_text(
            'db = "state/archive.db"\nstore = "state/store"\nrecheck_after = 0.001\n'
            'confirm_runs = 1\n[[sources]]\npath = "posts"\n',
            encoding="utf-8",
        )
        self._script(
            root / ".venv" / "bin" / "archiver",
            f'exec {shlex.quote(sys.executable)} -m archiver "$@"\n',
        )
        self.mailbox = root / "mailbox"
        self.mailbox.mkdir()
        self._script(
            root / "stub" / "mail",
            f'n=$(ls {self.mailbox} | wc -l)\nprintf "%s\\n" "$@" > {self.mailbox}/$n.args\n'
            f"cat > {self.mailbox}/$n.body\n",
        )
        self.env = {
            **os.environ,
            "PATH": f"{root / 'stub'}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": os.pathsep.join(sys.path),
        }

    @staticmethod
    def _script(path: Path, body: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def swap(self, command: str) -> str:
        return command.replace(SRV, str(self.root))

    def sh(self, command: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["/bin/sh", "-c", self.swap(command)],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            env={**self.env, **env},
        )

    def mails(self) -> list[tuple[list[str], str]]:
        out = []
        for args in sorted(self.mailbox.glob("*.args")):
            body = args.with_suffix(".body").read_text(encoding="utf-8")
            out.append((args.read_text(encoding="utf-8").splitlines(), body))
        return out


@pytest.fixture
def machine(tmp_path: Path, server: LoopbackServer) -> Machine:
    return Machine(tmp_path, server)


def test_the_cron_line_mails_the_report_once_when_a_link_breaks(machine: Machine) -> None:
    line = _cron_command()
    assert line.startswith(f"cd {SRV} && ")
    first = machine.sh(line)
    assert (first.stdout, first.stderr) == ("", "")  # cron mails any output: none when all is well
    assert machine.mails() == []
    machine.server.route("/deck.pdf", Reply(status=404))
    broke = machine.sh(line)
    assert broke.stderr == f"archiver: warning: newly broken: {machine.deck}\n"
    ((args, body),) = machine.mails()
    assert args == ["-s", "archiver: links broke", "webmaster@example.org"]
    assert f"<{machine.deck}> | dead | HTTP 404" in body
    still = machine.sh(line)  # still broken, but not newly: no second mail
    assert (still.stdout, still.stderr) == ("", "")
    assert len(machine.mails()) == 1


def test_the_systemd_unit_logs_json_and_mails_when_a_link_breaks(machine: Machine) -> None:
    start, stop = _unit("ExecStart"), _unit("ExecStopPost")
    assert _unit("WorkingDirectory") == SRV and _unit("SuccessExitStatus") == "1"
    assert stop.startswith("/bin/sh -c '") and stop.endswith("'")
    post = stop[len("/bin/sh -c '") : -1]

    def service() -> tuple[int, list[dict[str, object]]]:
        """ExecStart, then ExecStopPost with the $EXIT_STATUS systemd gives it."""
        proc = machine.sh(start)
        assert proc.stdout == ""
        machine.sh(post, EXIT_STATUS=str(proc.returncode))
        return proc.returncode, [json.loads(line) for line in proc.stderr.splitlines()]

    code, log = service()
    assert code == 0
    (summary,) = log  # --quiet still logs the summary in a JSON log
    assert summary["level"] == "info" and summary["counts"] == {"ok": 2}
    assert machine.mails() == []
    machine.server.route("/deck.pdf", Reply(status=404))
    code, log = service()
    assert code == 1
    warning, summary = log
    assert warning == {
        "level": "warning",
        "message": f"newly broken: {machine.deck}",
        "url": machine.deck,
    }
    assert summary["newly_broken"] == [machine.deck] and summary["exit_code"] == 1
    assert summary["broken"] == 1
    ((args, body),) = machine.mails()
    assert args == ["-s", "archiver: links broke", "webmaster@example.org"]
    assert f"<{machine.deck}> | dead | HTTP 404" in body
    code, log = service()
    assert code == 0 and [e["level"] for e in log] == ["info"]
    assert len(machine.mails()) == 1
