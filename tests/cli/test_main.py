"""``mechscope.cli.main``: every failure is one stderr line with an exit code, never a traceback."""

from __future__ import annotations

import errno

import pytest

from mechscope import cli


def fake_command(monkeypatch, exc):
    """``mechscope info`` raising ``exc`` (its parser is built after the patch, so it takes the fake)."""
    import mechscope.cli.info as info

    def run(args):
        raise exc

    monkeypatch.setattr(info, "run", run)


@pytest.mark.parametrize("exc,code,line", [
    (RuntimeError("boom\ninside torch"), 3, "mechscope: internal error: RuntimeError: boom (a bug in mechscope"),
    (OSError(errno.ENOSPC, "No space left on device", "/tmp/x.png"), 2, "mechscope: error: No space left on device: /tmp/x.png"),
    (MemoryError(), 2, "mechscope: error: out of memory"),
])  # fmt: skip
def test_unexpected_failures_are_one_line(monkeypatch, capsys, exc, code, line):
    monkeypatch.delenv("MECHSCOPE_DEBUG", raising=False)
    fake_command(monkeypatch, exc)
    assert cli.main(["info"]) == code
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1 and "Traceback" not in err


def test_debug_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("MECHSCOPE_DEBUG", "1")
    fake_command(monkeypatch, RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["info"])
