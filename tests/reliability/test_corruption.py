"""Corruption matrix: every file of every artifact type, damaged every way, read by the command that
reads it. Expected: exit 2 with one line naming the file or the fix, and the damaged original left as
it was (nothing deleted, nothing rewritten). The model cache, model directories and GGUF files have
their own matrix in tests/model/test_loading.py.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from mechscope.lens import tuned as tuned_mod
from tests.tiny import TEXT

DAMAGES = ("truncate", "flip", "empty", "wrong type", "folder for file")


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: max(1, len(data) // 3)])
    elif how == "flip":  # bytes in the middle: past a safetensors header, inside a JSON document
        mid = len(data) // 2
        path.write_bytes(data[:mid] + bytes(b ^ 0xFF for b in data[mid : mid + 16]) + data[mid + 16 :])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "wrong type":
        path.write_bytes(b'["a list", 1, 2]' if path.suffix == ".json" else b"\x00" * 64)
    elif how == "folder for file":
        path.unlink()
        path.mkdir()
        (path / "inside.txt").write_text("x")


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def grok_run(tmp_path_factory, box):
    run = tmp_path_factory.mktemp("grok") / "run"
    o = box.run(["grok", "train", "--out", str(run), "--p", "7", "--epochs", "6", "--quiet"])
    assert o.code == 0, o.err
    return run


@pytest.fixture(scope="module")
def lens_dir(tmp_path_factory, box):
    import json

    out = tmp_path_factory.mktemp("lens") / "tuned"
    corpus = out.parent / "corpus.jsonl"  # many small documents: both splits get some
    corpus.write_text("".join(json.dumps({"text": f"{i}: {TEXT}"}) + "\n" for i in range(12)))
    o = box.run(["lens", "train-tuned", "--model", box.model_dir, "--corpus", str(corpus),
                 "--tokens", "256", "--seq-len", "16", "--contexts-per-step", "1", "--positions-per-step", "8",
                 "--heldout-fraction", "0.5", "--out", str(out)])  # fmt: skip
    assert o.code == 0, o.err
    return out


def _check(box, argv, root: Path, target: Path):
    before = digests(root)
    o = box.run(argv)
    assert o.code == 2, f"{argv} after damaging {target.name}: exit {o.code}, {o.err[-400:]}"
    assert len(o.err_lines) == 1 and o.err_lines[0].startswith("mechscope: error: "), o.err
    assert digests(root) == before, "the damaged artifact was changed or deleted"


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("name", ["config.json", "state.safetensors", "progress.json", "checkpoint"])
def test_grok_run(grok_run, box, tmp_path, name, how):
    run = tmp_path / "run"
    shutil.copytree(grok_run, run)
    target = run / name if name != "checkpoint" else sorted((run / "seed_0" / "checkpoints").iterdir())[-1]
    damage(target, how)
    if name == "progress.json":  # a human-readable summary: training resumes without it; analysis needs none
        o = box.run(["grok", "analyze", str(run), "--quiet", "--json"])
        assert o.code in (0, 2) and len(o.err_lines) <= 1, o.err
        return
    _check(box, ["grok", "analyze", str(run), "--quiet", "--json"], run, target)
    if name != "checkpoint":
        _check(box, ["grok", "train", "--out", str(run), "--quiet"], run, target)


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("name", [tuned_mod.WEIGHTS_FILE, tuned_mod.CONFIG_FILE, "mechscope.json"])
def test_tuned_lens(lens_dir, box, tmp_path, name, how):
    lens = tmp_path / "tuned"
    shutil.copytree(lens_dir, lens)
    damage(lens / name, how)
    _check(box, ["lens", "The capital", "--model", box.model_dir, "--lens", "tuned", "--lens-file", str(lens)],
           lens, lens / name)  # fmt: skip
