"""mechscope.io: atomic files, artifact directories with markers, refusal of the user's folders."""

from __future__ import annotations

import json

import pytest
import torch

from mechscope import io
from mechscope.io import ArtifactError, OutputPathError


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


# ------------------------------------------------------------------------------------------- files
def test_atomic_write_round_trip_and_replaces(tmp_path):
    p = tmp_path / "sub" / "a.json"
    assert io.atomic_write(p, "héllo") == p
    assert p.read_text(encoding="utf-8") == "héllo"
    io.atomic_write(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    assert _leftovers(p.parent) == []


def test_atomic_path_failure_keeps_old_file_and_no_temp(tmp_path):
    p = tmp_path / "fig.png"
    p.write_bytes(b"old")
    with pytest.raises(RuntimeError), io.atomic_path(p) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png"
        tmp.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert p.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_atomic_write_failure_keeps_old_file(tmp_path, monkeypatch):
    p = tmp_path / "x.txt"
    p.write_text("old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(io.os, "replace", boom)
    with pytest.raises(OSError):
        io.atomic_write(p, "new")
    assert p.read_text() == "old" and _leftovers(tmp_path) == []


def test_write_json_is_strict(tmp_path):
    io.write_json(tmp_path / "x.json", {"a": [float("nan"), 1.0], "b": float("-inf")})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": [None, 1.0], "b": None}


# -------------------------------------------------------------------------------------- artifacts
def _tensors():
    return {"w": torch.arange(6, dtype=torch.float32).view(2, 3), "b": torch.ones(3)}


def test_artifact_round_trip(tmp_path):
    d = tmp_path / "lens"
    io.write_artifact(d, _tensors(), {"hooks": ["a"], "x": 1.5}, kind="test-kind", fingerprint="abc",
                      files={"notes.txt": "hi", "raw.bin": lambda p: p.write_bytes(b"\x01")})  # fmt: skip
    marker = json.loads((d / io.MARKER_FILE).read_text())
    assert marker["kind"] == "test-kind" and marker["fingerprint"] == "abc" and marker["version"] == 1
    assert set(marker["files"]) == {io.TENSORS_FILE, io.META_FILE, "notes.txt", "raw.bin"}
    tensors, meta = io.read_artifact(d, "test-kind", fingerprint="abc")
    assert torch.equal(tensors["w"], _tensors()["w"]) and torch.equal(tensors["b"], _tensors()["b"])
    assert meta == {"hooks": ["a"], "x": 1.5}
    assert _leftovers(tmp_path) == []


def test_artifact_replaces_its_own_kind(tmp_path):
    d = tmp_path / "lens"
    io.write_artifact(d, _tensors(), {"v": 1}, kind="k", fingerprint=None, files={"old.txt": "x"})
    io.write_artifact(d, None, {"v": 2}, kind="k", fingerprint=None)
    assert sorted(p.name for p in d.iterdir()) == sorted([io.META_FILE, io.MARKER_FILE])
    assert io.read_artifact(d, "k")[1] == {"v": 2}
    assert _leftovers(tmp_path) == []


def test_failing_artifact_writer_leaves_old_artifact_and_no_temp(tmp_path):
    d = tmp_path / "lens"
    io.write_artifact(d, _tensors(), {"v": 1}, kind="k", fingerprint=None)
    before = {p.name: p.read_bytes() for p in d.iterdir()}

    def fail(path):
        path.write_bytes(b"partial")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError):
        io.write_artifact(d, _tensors(), {"v": 2}, kind="k", fingerprint=None, files={"big.bin": fail})
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lens"]


def test_foreign_directory_is_refused_and_untouched(tmp_path):
    d = tmp_path / "mydocs"
    d.mkdir()
    (d / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputPathError, match="did not create"):
        io.check_output_dir(d, "tuned lens")
    with pytest.raises(OutputPathError, match="--force"):
        io.write_artifact(d, _tensors(), {}, kind="tuned lens", fingerprint=None)
    assert sorted(p.name for p in d.iterdir()) == ["thesis.tex"]
    assert _leftovers(tmp_path) == []
    # the parent of the cwd, the home folder, a file: all refused
    with pytest.raises(OutputPathError):
        io.check_output_dir(tmp_path, "tuned lens")
    f = tmp_path / "a_file"
    f.write_text("x")
    with pytest.raises(OutputPathError, match="not a folder"):
        io.check_output_dir(f, "tuned lens")
    with pytest.raises(OutputPathError, match="is a file"):
        io.check_output_dir(f / "sub", "tuned lens")


def test_force_writes_only_our_files_into_a_foreign_directory(tmp_path):
    d = tmp_path / "mydocs"
    d.mkdir()
    (d / "thesis.tex").write_text("years of work")
    io.write_artifact(d, _tensors(), {"v": 1}, kind="k", fingerprint=None, force=True)
    assert (d / "thesis.tex").read_text() == "years of work"
    assert io.read_artifact(d, "k")[1] == {"v": 1}
    # rewriting it still needs --force (the folder holds the user's file) and keeps that file
    with pytest.raises(OutputPathError):
        io.write_artifact(d, None, {"v": 2}, kind="k", fingerprint=None)
    io.write_artifact(d, None, {"v": 2}, kind="k", fingerprint=None, force=True)
    assert sorted(p.name for p in d.iterdir()) == sorted([io.META_FILE, io.MARKER_FILE, "thesis.tex"])


def test_other_kind_and_empty_directory(tmp_path):
    d = tmp_path / "run"
    io.write_artifact(d, None, {}, kind="grok-run", fingerprint=None)
    with pytest.raises(OutputPathError, match="grok-run"):
        io.write_artifact(d, None, {}, kind="tuned lens", fingerprint=None, force=True)
    e = tmp_path / "empty"
    e.mkdir()
    io.write_artifact(e, None, {"ok": True}, kind="k", fingerprint=None)
    assert io.read_artifact(e, "k")[1] == {"ok": True}


def test_checksum_catches_a_flipped_byte(tmp_path):
    d = tmp_path / "a"
    io.write_artifact(d, _tensors(), {"v": 1}, kind="k", fingerprint="f")
    path = d / io.TENSORS_FILE
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum"):
        io.read_artifact(d, "k")
    io.read_artifact(d, "k", verify=False)  # sizes still match: only the digest sees it


@pytest.mark.parametrize("damage", ["truncate", "delete", "marker-garbage", "marker-missing", "marker-dir"])
def test_corrupt_artifacts_raise_one_line(tmp_path, damage):
    d = tmp_path / "a"
    io.write_artifact(d, _tensors(), {"v": 1}, kind="k", fingerprint="f")
    if damage == "truncate":
        (d / io.TENSORS_FILE).write_bytes((d / io.TENSORS_FILE).read_bytes()[:10])
    elif damage == "delete":
        (d / io.META_FILE).unlink()
    elif damage == "marker-garbage":
        (d / io.MARKER_FILE).write_bytes(b"\xff\xfe{")
    elif damage == "marker-missing":
        (d / io.MARKER_FILE).unlink()
    else:
        (d / io.MARKER_FILE).unlink()
        (d / io.MARKER_FILE).mkdir()
    with pytest.raises(ArtifactError) as exc:
        io.read_artifact(d, "k", fix="rebuild it")
    assert "\n" not in str(exc.value) and str(exc.value).endswith("rebuild it")


def test_foreign_artifacts_are_refused(tmp_path):
    d = tmp_path / "a"
    io.write_artifact(d, None, {}, kind="k", fingerprint="f1")
    with pytest.raises(ArtifactError, match="another model"):
        io.read_artifact(d, "k", fingerprint="f2")
    with pytest.raises(ArtifactError, match="not a other"):
        io.read_artifact(d, "other")
    with pytest.raises(ArtifactError, match="no k at"):
        io.read_artifact(tmp_path / "missing", "k")


def test_check_output_file(tmp_path):
    with pytest.raises(OutputPathError, match="is a folder"):
        io.check_output_file(tmp_path, suffixes=(".png",))
    with pytest.raises(OutputPathError, match="should end in"):
        io.check_output_file(tmp_path / "x.txt", suffixes=(".png",))
    with pytest.raises(OutputPathError, match="does not exist"):
        io.check_output_file(tmp_path / "missing" / "x.png")
    assert io.check_output_file(tmp_path / "missing" / "x.png", create_parents=True).name == "x.png"
    assert io.check_output_file(tmp_path / "x.png", suffixes=(".png",)) == (tmp_path / "x.png").resolve()


def test_atomic_dir_writes_a_marker_and_keeps_the_old_folder_on_failure(tmp_path):
    d = tmp_path / "store"
    with io.atomic_dir(d, "store") as tmp:
        (tmp / "shard-0.safetensors").write_bytes(b"abc")
    marker = io.verify_artifact(d, "store")
    assert marker["files"]["shard-0.safetensors"]["size"] == 3
    with pytest.raises(RuntimeError), io.atomic_dir(d, "store") as tmp:
        (tmp / "shard-0.safetensors").write_bytes(b"new")
        raise RuntimeError("killed")
    assert (d / "shard-0.safetensors").read_bytes() == b"abc"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_nested_files_are_listed_and_the_current_folder_is_refused(tmp_path, monkeypatch):
    d = tmp_path / "run"
    with io.atomic_dir(d, "run") as tmp:
        (tmp / "seed_0" / "checkpoints").mkdir(parents=True)
        (tmp / "seed_0" / "checkpoints" / "epoch_1.safetensors").write_bytes(b"w")
    assert "seed_0/checkpoints/epoch_1.safetensors" in io.verify_artifact(d, "run")["files"]
    io.check_output_dir(d, "run")  # seed_0 is ours: the run may be replaced
    (d / "seed_0" / "checkpoints" / "epoch_1.safetensors").write_bytes(b"x")
    with pytest.raises(ArtifactError, match="checksum"):
        io.verify_artifact(d, "run")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    with pytest.raises(OutputPathError, match="current or a parent"):
        io.check_output_dir(".", "run")
    with pytest.raises(OutputPathError, match="current or a parent"):
        io.check_output_dir("..", "run")


def test_force_never_overwrites_a_users_file_of_the_same_name(tmp_path):
    d = tmp_path / "mydocs"
    d.mkdir()
    (d / io.META_FILE).write_text("the user's own meta.json")
    with pytest.raises(OutputPathError, match="meta.json"):
        io.write_artifact(d, None, {"v": 1}, kind="k", fingerprint=None, force=True)
    (d / io.META_FILE).rename(d / "other.json")
    (d / io.MARKER_FILE).write_text("the user's own mechscope.json")
    with pytest.raises(OutputPathError, match="mechscope.json"):
        io.write_artifact(d, None, {"v": 1}, kind="k", fingerprint=None, force=True)
    assert sorted(p.name for p in d.iterdir()) == [io.MARKER_FILE, "other.json"]


def test_finite_json_reports_where_and_emit_json_is_strict(capsys):
    import numpy as np

    from mechscope.cli.common import NON_FINITE_FIELD, emit_json

    found = []
    assert io.finite_json({"a": [1.0, float("nan")], "b": {"c": np.float32("inf")}, "d": 2}, found) == \
        {"a": [1.0, None], "b": {"c": None}, "d": 2}  # fmt: skip
    assert found == ["a[1]", "b.c"]
    emit_json({"scale": float("nan"), "ok": True, "n": np.float32(1.5)})
    out = capsys.readouterr().out
    assert json.loads(out) == {"scale": None, "ok": True, "n": 1.5, NON_FINITE_FIELD: ["scale"]}
    assert "NaN" not in out


def test_a_folder_that_gains_user_files_while_we_work_is_not_replaced(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    with pytest.raises(OutputPathError, match="now holds"), io.atomic_dir(d, "k") as tmp:
        (tmp / "a.bin").write_bytes(b"ours")
        (d / "notes.txt").write_text("written by the user meanwhile")
    assert [p.name for p in d.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_written_files_get_the_usual_mode_and_a_flipped_tensor_byte_is_caught(tmp_path):
    """mkstemp makes 0600 temporaries; results must be readable like any file the user writes. A byte
    flipped inside a tensor (safetensors checks no data) is caught by the digest in the metadata."""
    import os

    import torch

    from mechscope.io import ArtifactError, atomic_write, read_safetensors, write_safetensors

    mask = os.umask(0o022)
    try:
        p = atomic_write(tmp_path / "a.txt", "x")
        assert p.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(mask)
    path = write_safetensors(tmp_path / "t.safetensors", {"w": torch.arange(64, dtype=torch.float32)})
    assert torch.equal(read_safetensors(path)["w"], torch.arange(64, dtype=torch.float32))
    data = bytearray(path.read_bytes())
    data[-20] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="do not match their checksum"):
        read_safetensors(path)
