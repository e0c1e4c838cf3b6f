"""The reliability harness: run a command in-process inside a sandbox of a user's files and check the
promises of docs/errors.md — exit code 0 or 2, no traceback, at most one line on stderr, and nothing of
the user's changed, deleted or added outside the output paths the command was given.

A sandbox holds a user's folder with files (``mydocs/``), a lone file, an empty folder, a small corpus
and a tiny model directory; :func:`paths` draws output paths among them (new, existing folder,
existing file, missing parent, the sandbox itself, ``.`` and ``..``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

from mechscope.cli import main
from tests.tiny import TEXT

_PROGRESS = re.compile(r"\d+(/\d+)? \[[\d:?]+(<[\d:?]+)?")
"""tqdm's ``12/40 [00:01<00:02`` counter: such a line is a progress bar, not a message."""
STATS = {"cases": 0, "exit_0": 0, "exit_2": 0, "tracebacks": 0, "files_lost": 0}
"""Counted over a session; printed in pytest's summary (tests/reliability/conftest.py)."""


@dataclass
class Outcome:
    argv: list[str]
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        """stderr lines that are not progress-bar updates (tqdm redraws with carriage returns)."""
        return [line for line in self.err.splitlines() if line.strip() and not _PROGRESS.search(line)]


@dataclass
class Sandbox:
    root: Path
    model_dir: str
    snapshot: dict[str, str] = field(default_factory=dict)
    user_files: dict[str, str] = field(default_factory=dict)
    """The user's files (path → sha256) before any run: never changed, never removed."""
    user_dirs: set[Path] = field(default_factory=set)
    """Folders holding the user's files before any run (the sandbox itself, mydocs/)."""

    @staticmethod
    def make(root: Path, model_dir: str) -> Sandbox:
        (root / "mydocs").mkdir(parents=True)
        (root / "mydocs" / "notes.txt").write_text("my notes, not mechscope's\n")
        (root / "mydocs" / "progress.json").write_text('{"mine": true}\n')
        (root / "x.txt").write_text("a lone file\n")
        (root / "empty").mkdir()
        (root / "corpus.txt").write_text(TEXT * 3)
        (root / "cwd").mkdir()
        box = Sandbox(root, model_dir)
        box.snapshot = box._files()
        box.user_files = dict(box.snapshot)
        box.user_dirs = {(root / f).resolve().parent for f in box.snapshot}
        return box

    def _files(self) -> dict[str, str]:
        out = {}
        for p in sorted(self.root.rglob("*")):
            if p.is_file():
                out[str(p.relative_to(self.root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        return out

    def run(self, argv: list[str]) -> Outcome:
        """Run ``mechscope *argv`` with the sandbox's ``cwd/`` as working directory."""
        out, err = io.StringIO(), io.StringIO()
        here = os.getcwd()
        os.chdir(self.root / "cwd")
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(list(argv))
                except SystemExit as exc:  # argparse (one line, see cli.OneLineParser)
                    code = exc.code if isinstance(exc.code, int) else 2
        finally:
            os.chdir(here)
        return Outcome(list(argv), code, out.getvalue(), err.getvalue())

    def check(self, o: Outcome, outputs: list[str]) -> None:
        """The promises, plus: files existing before are unchanged, new files only under ``outputs``."""
        before, now = self.snapshot, self._files()
        self.snapshot = now  # what runs made may be remade by later runs; the user's files never change
        STATS["cases"] += 1
        STATS[f"exit_{o.code}"] = STATS.get(f"exit_{o.code}", 0) + 1
        if "Traceback" in o.err or o.code == 3:
            STATS["tracebacks"] += 1
        lost = [f for f, digest in self.user_files.items() if now.get(f) != digest]
        STATS["files_lost"] += len(lost)
        assert o.code in (0, 2), f"exit {o.code} for {o.argv!r}: {o.err[-600:]}"
        assert "Traceback" not in o.err, f"traceback for {o.argv!r}"
        assert len(o.err_lines) <= 1, f"{len(o.err_lines)} stderr lines for {o.argv!r}: {o.err[-600:]}"
        if o.code == 2:
            assert o.err_lines and o.err_lines[0].startswith("mechscope: error: "), o.err
        assert not lost, f"{o.argv!r} changed or removed the user's {lost}"
        cwd = self.root / "cwd"
        allowed = [(cwd / p).resolve() for p in outputs] + [cwd.resolve()]
        if "--force" not in o.argv:  # a user's folder given as output gains nothing without --force
            allowed = [a for a in allowed if a not in self.user_dirs]
        stray = [f for f in now if f not in before
                 and not any(_under((self.root / f).resolve(), a) for a in allowed)]  # fmt: skip
        assert not stray, f"{o.argv!r} wrote {stray[:5]} outside its output paths"


def _under(path: Path, top: Path) -> bool:
    return path == top or top in path.parents


# --- strategies ---------------------------------------------------------------------------------------
def paths(box: Sandbox, suffix: str = "") -> st.SearchStrategy[str]:
    """An output path: mostly new ones, often a user's folder or file, sometimes absurd."""
    r = box.root
    return st.one_of(
        st.integers(0, 10**6).map(lambda i: str(r / f"new{i}{suffix}")),
        st.sampled_from([str(r / "mydocs"), str(r / "x.txt"), str(r / "empty"), str(r / "missing" / f"deep{suffix}"),
                         str(r), ".", "..", str(r / "mydocs" / f"inside{suffix}"), "", str(r / "x.txt" / "below")]),
    )  # fmt: skip


ints = st.one_of(st.integers(-3, 40), st.sampled_from([10**6, 10**12, -(10**9)])).map(str)
floats = st.one_of(st.floats(-5, 5, allow_nan=False).map(repr), st.sampled_from(["nan", "inf", "-inf", "1e309", "0"]))
junk = st.sampled_from(["", "abc", "\udcff\udcfeabc", "-1", "1.5", "[1,2]", "{", "x" * 300, "None", "--json"])
prompts = st.one_of(
    st.sampled_from(["The capital of France is", "Hi", "a b c d e f", "\udcff\udcfeabc", "", " ", "\n", "word " * 200]),
    st.text(min_size=0, max_size=30),
)
hooks = st.sampled_from(["blocks.1.hook_resid_post", "blocks.0.mlp.hook_post", "blocks.2.attn.hook_pattern",
                         "*resid_post", "blocks.9.hook_resid_post", "blocks.1.hook_resid_pots", "", "[", "5"])  # fmt: skip


def models(box: Sandbox) -> st.SearchStrategy[str]:
    """Mostly the tiny model; sometimes a file, a folder that is no model, a missing path or a bad name."""
    r = box.root
    bad = st.sampled_from([str(r / "x.txt"), str(r / "mydocs"), str(r / "empty"), str(r / "nope.gguf"),
                           "gemma-3-27", "org/name", "", "."])  # fmt: skip
    return st.one_of(st.just(box.model_dir), st.just(box.model_dir), bad)


Flag = tuple[st.SearchStrategy[str], st.SearchStrategy[str]] | st.SearchStrategy[str] | None
"""A flag's values: (good, bad) strategies, one strategy (values already mixed), or None (a switch)."""


def options(spec: dict[str, Flag]) -> st.SearchStrategy[list[str]]:
    """A random subset of flags in random order. A third of the command lines use only good values (so
    the command really runs and writes), a third exactly one bad value, a third any mix."""
    flags = sorted(spec)

    @st.composite
    def build(draw):
        chosen = draw(st.lists(st.sampled_from(flags), unique=True, max_size=len(flags))) if flags else []
        mode = draw(st.sampled_from(["good", "good", "one bad", "wild"]))
        bad_one = draw(st.sampled_from(chosen)) if chosen and mode == "one bad" else None
        argv: list[str] = []
        for flag in chosen:
            argv.append(flag)
            values = spec[flag]
            if values is None:
                continue
            if isinstance(values, tuple):
                good, bad = values
                use_bad = flag == bad_one or (mode == "wild" and draw(st.booleans()))
                argv.append(draw(bad if use_bad else good))
            else:
                argv.append(draw(values))
        return argv

    return build()


def good_or(good, bad=None) -> tuple[st.SearchStrategy[str], st.SearchStrategy[str]]:
    """(good values, bad values) for :func:`options`; ``good`` may be a list of strings."""
    good = st.sampled_from(good) if isinstance(good, list) else good
    return good, bad if bad is not None else junk
