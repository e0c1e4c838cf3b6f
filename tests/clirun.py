"""Running the CLI in-process from tests: ``run_cli(capsys, *argv) -> (code, out, err)``."""

from __future__ import annotations

from mechscope.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def last_line(err: str) -> str:
    """stderr's last line (progress bars redraw with carriage returns before it)."""
    return err.replace("\r", "\n").strip().splitlines()[-1]
