"""Tuned-lens training checkpoints: a run killed mid-way and started again with the same arguments ends
bit-identical to an uninterrupted run; writes are atomic; another config, model or text is refused."""

from __future__ import annotations

import json

import pytest
import torch

from mechscope.data.corpus import CorpusConfig
from mechscope.data.documents import Document
from mechscope.data.packing import pack
from mechscope.errors import ConfigError
from mechscope.io import OutputPathError
from mechscope.lens import checkpoint as ckpt
from mechscope.lens.train import TunedLensTrainConfig, train_tuned_lens
from tests.tiny import TEXT, tiny_model, tiny_tokenizer

STEPS = 9


class Killed(Exception):
    """Stands in for a kill: raised from inside a training step."""


def setup(arch: str = "gemma3", precision: str = "float32", **over):
    model = tiny_model(arch)
    contexts = pack(tiny_tokenizer(), [Document(TEXT, "tiny")], seq_len=24).repeat(3, 1)[: STEPS * 2]
    cfg = TunedLensTrainConfig(tokens=contexts.numel(), corpus=CorpusConfig(seq_len=24), contexts_per_step=2,
                      positions_per_step=16, lr=3e-3, precision=precision, **over)  # fmt: skip
    assert cfg.steps == STEPS
    return model, contexts, cfg


def kill_at(monkeypatch, model, step: int) -> None:
    """Make the forward of training step ``step`` (0-based) raise."""
    real, calls = model.collect, {"n": 0}

    def collect(*a, **k):
        if calls["n"] == step:
            raise Killed
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(model, "collect", collect)


@pytest.mark.parametrize("arch,precision", [("gemma3", "float32"), ("gemma2", "bfloat16")])
def test_killed_and_resumed_run_ends_identical_to_an_uninterrupted_one(tmp_path, monkeypatch, arch, precision):
    model, contexts, cfg = setup(arch, precision)
    ref = train_tuned_lens(model, cfg, contexts=contexts, progress=False)
    ref_ck = train_tuned_lens(model, cfg, contexts=contexts, progress=False, checkpoint=tmp_path / "ref", checkpoint_every=2)
    assert torch.equal(ref.weight, ref_ck.weight) and torch.equal(ref.bias, ref_ck.bias)  # checkpointing changes nothing

    ck = tmp_path / "run.checkpoint"
    with monkeypatch.context() as m:  # killed during step 5: the checkpoint of step 4 survives
        kill_at(m, model, 5)
        with pytest.raises(Killed):
            train_tuned_lens(model, cfg, contexts=contexts, progress=False, checkpoint=ck, checkpoint_every=2)
    meta = json.loads((ck / ckpt.CHECKPOINT_FILE).read_text())
    assert meta["step"] == 4 and len(meta["history"]) == 4 and [p.name for p in ck.glob("state-*")] == [meta["tensors"]]
    with monkeypatch.context() as m:  # resumed at 4, killed again during (0-based) step 6: checkpoint of step 6
        kill_at(m, model, 2)
        with pytest.raises(Killed):
            train_tuned_lens(model, cfg, contexts=contexts, progress=False, checkpoint=ck, checkpoint_every=2)
    assert json.loads((ck / ckpt.CHECKPOINT_FILE).read_text())["step"] == 6
    lens = train_tuned_lens(model, cfg, contexts=contexts, progress=False, checkpoint=ck, checkpoint_every=2)
    for name in ("weight", "bias", "scale"):
        assert torch.equal(getattr(lens, name), getattr(ref, name)), name
    res, ref_res = lens.info["result"], ref.info["result"]
    assert res["kl_history"] == ref_res["kl_history"] and res["final_train_kl"] == ref_res["final_train_kl"]
    assert res["resumed_at_steps"] == [4, 6] and ref_res["resumed_at_steps"] == []
    assert json.loads((ck / ckpt.CHECKPOINT_FILE).read_text())["step"] == STEPS  # the end is checkpointed too
    again = train_tuned_lens(model, cfg, contexts=contexts, progress=False, checkpoint=ck)  # finished: nothing to do
    assert torch.equal(again.weight, ref.weight)


def test_a_kill_while_writing_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    model, contexts, cfg = setup()
    ck = tmp_path / "ck"
    real = ckpt.save_checkpoint
    calls = {"n": 0}

    def dies_before_the_json(directory, identity, step, *rest):
        calls["n"] += 1
        if calls["n"] == 2:  # the tensors file is written, the JSON is not: a kill between the two renames
            from safetensors.torch import save_file

            save_file(rest[0], str(directory / f"state-{step:07d}.safetensors"))
            raise Killed
        return real(directory, identity, step, *rest)

    monkeypatch.setattr(ckpt, "save_checkpoint", dies_before_the_json)
    with pytest.raises(Killed):
        train_tuned_lens(model, cfg, contexts=contexts, progress=False, checkpoint=ck, checkpoint_every=3)
    monkeypatch.setattr(ckpt, "save_checkpoint", real)
    assert json.loads((ck / ckpt.CHECKPOINT_FILE).read_text())["step"] == 3
    lens = train_tuned_lens(model, cfg, contexts=contexts, progress=False, checkpoint=ck, checkpoint_every=3)
    ref = train_tuned_lens(model, cfg, contexts=contexts, progress=False)
    assert torch.equal(lens.weight, ref.weight) and lens.info["result"]["resumed_at_steps"] == [3]
    assert sorted(p.name for p in ck.iterdir()) == [ckpt.CHECKPOINT_FILE, f"state-{STEPS:07d}.safetensors"]


def test_another_config_model_or_text_is_refused_in_one_line(tmp_path, monkeypatch):
    model, contexts, cfg = setup()
    ck = tmp_path / "ck"
    with monkeypatch.context() as m:
        kill_at(m, model, 3)
        with pytest.raises(Killed):
            train_tuned_lens(model, cfg, contexts=contexts, progress=False, checkpoint=ck, checkpoint_every=2)
    other_cfg = TunedLensTrainConfig(**{**cfg.to_dict(), "lr": 1e-3})
    cases = [
        (model, other_cfg, contexts, r"another training setting lr=0\.003, not 0\.001: delete .* or pass --fresh"),
        (tiny_model("gemma3", seed=1), cfg, contexts, r"another model \(fingerprint [0-9a-f]+, this model is [0-9a-f]+\)"),
        (model, cfg, contexts.flip(1), r"another training text"),
    ]
    for m_, c_, ctx, pattern in cases:
        with pytest.raises(ckpt.CheckpointMismatchError, match=pattern) as e:
            train_tuned_lens(m_, c_, contexts=ctx, progress=False, checkpoint=ck)
        assert "\n" not in str(e.value)
    (ck / json.loads((ck / ckpt.CHECKPOINT_FILE).read_text())["tensors"]).write_bytes(b"garbage")
    with pytest.raises(ckpt.CheckpointMismatchError, match="unreadable"):
        train_tuned_lens(model, cfg, contexts=contexts, progress=False, checkpoint=ck)
    with pytest.raises(ConfigError, match="checkpoint_every"):
        train_tuned_lens(model, cfg, contexts=contexts, progress=False, checkpoint=ck, checkpoint_every=0)


def test_checkpoint_files_are_safetensors_and_json_only(tmp_path):
    model, contexts, cfg = setup()
    ck = tmp_path / "ck"
    train_tuned_lens(model, cfg, contexts=contexts, progress=False, checkpoint=ck, checkpoint_every=4)
    meta = json.loads((ck / ckpt.CHECKPOINT_FILE).read_text())
    assert meta["format"] == ckpt.FORMAT and meta["fingerprint"] == model.fingerprint and meta["train"] == cfg.to_dict() | {
        "corpus": json.loads(json.dumps(cfg.corpus.to_dict()))}
    from safetensors.torch import load_file

    tensors = load_file(str(ck / meta["tensors"]))
    n, d = model.cfg.n_layers, model.cfg.d_model
    assert tensors["weight"].shape == (n, d, d) and tensors["adam.weight.exp_avg_sq"].shape == (n, d, d)
    assert tensors["rng"].dtype == torch.uint8 and set(p.suffix for p in ck.iterdir()) == {".json", ".safetensors"}


def test_a_checkpoint_folder_holding_user_files_is_refused_and_kept(tmp_path):
    ck = tmp_path / "out.checkpoint"
    ck.mkdir()
    (ck / "mine.txt").write_text("keep me")
    with pytest.raises(OutputPathError, match="did not write"):
        ckpt.check_checkpoint_dir(ck)
    with pytest.raises(OutputPathError):
        ckpt.remove_checkpoint(ck)  # --fresh
    with pytest.raises(OutputPathError):
        ckpt.save_checkpoint(ck, {}, 1, {"x": torch.zeros(1)}, [], 0.0, [])
    assert [p.name for p in ck.iterdir()] == ["mine.txt"]
    (tmp_path / "a_file.checkpoint").write_text("x")
    with pytest.raises(OutputPathError, match="not a folder"):
        ckpt.check_checkpoint_dir(tmp_path / "a_file.checkpoint")
    ours = tmp_path / "b.checkpoint"
    ckpt.save_checkpoint(ours, {}, 1, {"x": torch.zeros(1)}, [0.5], 0.0, [])
    ckpt.remove_checkpoint(ours)
    assert not ours.exists()
    ckpt.remove_checkpoint(ours)  # absent: nothing to do


def test_a_checkpoint_resumes_for_the_same_weights_under_another_name(tmp_path):
    ck = tmp_path / "out.checkpoint"
    full = {k: torch.zeros(2) for k in ("weight", "bias", "scale", "per_translator")} | {"rng": torch.zeros(4, dtype=torch.uint8)}
    ckpt.save_checkpoint(ck, {"model": "gemma-a", "fingerprint": "f00d"}, 2, full, [0.5], 1.0, [])
    state = ckpt.load_checkpoint(ck, {"model": "copy-of-gemma-a", "fingerprint": "f00d"})
    assert state is not None and state.step == 2
    with pytest.raises(ckpt.CheckpointMismatchError, match="another model"):
        ckpt.load_checkpoint(ck, {"model": "gemma-a", "fingerprint": "beef"})


@pytest.mark.parametrize("damage", ["json-list", "tensors-path", "missing-step", "history-text", "missing-tensor",
                                    "empty-state", "json-binary"])  # fmt: skip
def test_a_corrupted_checkpoint_is_one_line(tmp_path, damage):
    ck = tmp_path / "out.checkpoint"
    ident = {"model": "m", "fingerprint": "f"}
    full = {k: torch.zeros(2) for k in ("weight", "bias", "scale", "per_translator")} | {"rng": torch.zeros(4, dtype=torch.uint8)}
    ckpt.save_checkpoint(ck, ident, 3, full, [0.5], 1.0, [])
    meta_path = ck / ckpt.CHECKPOINT_FILE
    meta = json.loads(meta_path.read_text())
    if damage == "json-list":
        meta_path.write_text("[1, 2]")
    elif damage == "tensors-path":
        meta_path.write_text(json.dumps({**meta, "tensors": "../../elsewhere.safetensors"}))
    elif damage == "missing-step":
        meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "step"}))
    elif damage == "history-text":
        meta_path.write_text(json.dumps({**meta, "history": "abc"}))
    elif damage == "missing-tensor":
        ckpt.save_checkpoint(ck, ident, 4, {"weight": torch.zeros(2)}, [0.5], 1.0, [])
    elif damage == "empty-state":
        (ck / meta["tensors"]).write_bytes(b"")
    else:
        meta_path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ckpt.CheckpointMismatchError) as err:
        ckpt.load_checkpoint(ck, ident)
    assert "\n" not in str(err.value) and "--fresh" in str(err.value)
