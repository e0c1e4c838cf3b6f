"""Tuned lens: zero translators are the logit lens exactly; files refuse another model; the hand-written
KL gradient equals autograd's; training lowers KL below the logit lens."""

from __future__ import annotations

import json

import pytest
import torch

from mechscope.data.corpus import CorpusConfig
from mechscope.data.documents import Document
from mechscope.data.packing import pack
from mechscope.errors import ConfigError, RunError
from mechscope.lens.evaluate import evaluate_lenses
from mechscope.lens.logit import logit_lens
from mechscope.lens.train import TunedLensTrainConfig, _KLFromNormed, schedule_factor, train_tuned_lens
from mechscope.io import MARKER_FILE, OutputPathError
from mechscope.lens.tuned import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    LensMismatchError,
    TunedLens,
    check_lens_dir,
    load_tuned_lens,
)
from tests.tiny import TEXT, tiny_model, tiny_tokenizer

PROMPT = "The reliability of Wikipedia is very questionable."
FIELDS = ("top_ids", "top_probs", "entropy", "kl", "next_prob", "next_rank", "target_probs", "target_ranks")


@pytest.mark.parametrize("arch", ["gemma3", "gemma2", "gpt2"])
@pytest.mark.parametrize("sublayers", [False, True])
def test_zero_initialised_tuned_lens_is_the_logit_lens_exactly(arch, sublayers):
    model = tiny_model(arch)
    lens = TunedLens.for_model(model, sublayers)
    a = logit_lens(model, PROMPT, sublayers=sublayers, targets=[7])
    b = logit_lens(model, PROMPT, sublayers=sublayers, targets=[7], lens=lens)
    assert b.lens == "tuned" and a.lens == "logit"
    for f in FIELDS:
        assert torch.equal(getattr(a, f).nan_to_num(-1), getattr(b, f).nan_to_num(-1)), f


def test_translator_is_affine_residual():
    model = tiny_model("llama")
    lens = TunedLens.for_model(model)
    with torch.no_grad():
        lens.weight.normal_(0, 0.1)
        lens.bias.normal_()
        lens.scale.fill_(2.0)
    h = torch.randn(3, 5, 64)
    idx = torch.tensor([0, 2, 1])
    manual = torch.stack([h[i] + h[i] @ lens.weight[j].T + 2.0 * lens.bias[j] for i, j in enumerate(idx.tolist())])
    torch.testing.assert_close(lens.translate_index(h, idx), manual, atol=1e-5, rtol=1e-5)


def test_save_load_roundtrip_and_refusals(tmp_path):
    model = tiny_model("gemma3")
    lens = TunedLens.for_model(model)
    with torch.no_grad():
        lens.weight.normal_(0, 0.05)
        lens.bias.normal_()
    lens.save(tmp_path / "lens", extra={"note": "x"})
    assert sorted(p.name for p in (tmp_path / "lens").iterdir()) == sorted([CONFIG_FILE, WEIGHTS_FILE, MARKER_FILE])
    meta = json.loads((tmp_path / "lens" / CONFIG_FILE).read_text())
    assert meta["fingerprint"] == model.fingerprint and meta["hooks"] == lens.hooks and meta["note"] == "x"
    back = load_tuned_lens(tmp_path / "lens", model)
    assert torch.equal(back.weight, lens.weight) and torch.equal(back.bias, lens.bias)
    a = logit_lens(model, PROMPT, lens=lens)
    b = logit_lens(model, PROMPT, lens=back)
    assert torch.equal(a.top_ids, b.top_ids) and torch.equal(a.kl, b.kl)
    other = tiny_model("gemma3", seed=1)
    with pytest.raises(LensMismatchError, match=r"trained for 'tiny-gemma3' \(fingerprint [0-9a-f]{16}\), not for") as e:
        load_tuned_lens(tmp_path / "lens", other)
    assert "\n" not in str(e.value)
    with pytest.raises(LensMismatchError):
        logit_lens(other, PROMPT, lens=back)
    with pytest.raises(RunError, match="no tuned lens at"):
        load_tuned_lens(tmp_path / "missing", model)
    (tmp_path / "lens" / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(RunError, match="corrupted"):
        load_tuned_lens(tmp_path / "lens", model)
    (tmp_path / "lens" / MARKER_FILE).unlink()  # a lens from before the marker: read without checksums
    with pytest.raises(RunError, match="unreadable"):
        load_tuned_lens(tmp_path / "lens", model)


def test_save_never_deletes_a_users_folder(tmp_path):
    lens = TunedLens.for_model(tiny_model("gemma3"))
    mine = tmp_path / "mydocs"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(OutputPathError, match="did not create"):
        check_lens_dir(mine)
    with pytest.raises(OutputPathError, match="did not create"):
        lens.save(mine)
    with pytest.raises(OutputPathError):
        lens.save(tmp_path)  # `--out ..`: the parent of everything
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mydocs"]
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    lens.save(mine, force=True)  # --force: the lens's files are added, the user's stay
    assert (mine / "notes.txt").read_text() == "keep me"
    load_tuned_lens(mine)
    lens.save(tmp_path / "lens")
    lens.save(tmp_path / "lens")  # its own previous lens is replaced


def test_sublayer_rows_need_sublayer_translators():
    model = tiny_model("qwen2")
    lens = TunedLens.for_model(model, sublayers=False)
    with pytest.raises(LensMismatchError, match=r"no translator for blocks\.0\.hook_resid_mid \(it was trained without --sublayers\)"):
        logit_lens(model, PROMPT, sublayers=True, lens=lens)


@pytest.mark.parametrize("cap", [None, 3.0])
def test_hand_written_kl_gradient_equals_autograd(cap):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 16, dtype=torch.float64, requires_grad=True)
    w = torch.randn(40, 16, dtype=torch.float64)
    p = torch.randn(5, 40, dtype=torch.float64).softmax(-1)
    entropy = -(p * p.log()).sum(-1)
    kl = _KLFromNormed.apply(x, w, p, entropy, cap)
    (kl * torch.arange(1.0, 6.0, dtype=torch.float64)).sum().backward()
    grad = x.grad.clone()
    x.grad = None
    z = x @ w.T
    if cap is not None:
        z = cap * torch.tanh(z / cap)
    ref = (p * (p.log() - z.log_softmax(-1))).sum(-1)
    torch.testing.assert_close(kl, ref.detach())
    (ref * torch.arange(1.0, 6.0, dtype=torch.float64)).sum().backward()
    torch.testing.assert_close(grad, x.grad)


def test_training_lowers_kl_below_the_logit_lens_everywhere():
    model = tiny_model("gemma3")
    contexts = pack(tiny_tokenizer(), [Document(TEXT, "tiny")], seq_len=24)
    cfg = TunedLensTrainConfig(tokens=contexts.numel(), corpus=CorpusConfig(seq_len=24), contexts_per_step=1,
                      positions_per_step=16, lr=3e-3, precision="float32")  # fmt: skip
    lens = train_tuned_lens(model, cfg, contexts=contexts.repeat(6, 1), progress=False)
    result = lens.info["result"]
    assert result["steps"] == cfg.steps and result["positions_per_translator"] == cfg.steps * 16
    assert result["kl_history"][-1] < result["kl_history"][0]
    assert not any(p.requires_grad for p in lens.parameters())
    assert all(p.requires_grad for p in model.hf.parameters())  # the model's flags are restored
    ev = evaluate_lenses(model, lens, contexts[:4], progress=False)
    assert ev.tokens == 4 * 23 and len(ev.logit_kl) == model.cfg.n_layers
    assert ev.tuned_better_everywhere, ev.table()


def test_evaluating_a_zero_lens_gives_equal_kl():
    model = tiny_model("llama")
    contexts = pack(tiny_tokenizer(), [Document(TEXT, "tiny")], seq_len=16)[:2]
    ev = evaluate_lenses(model, TunedLens.for_model(model), contexts, progress=False)
    assert ev.logit_kl == ev.tuned_kl and not ev.tuned_better_everywhere
    assert all(k > 0 for k in ev.logit_kl) and "logit KL" in ev.table()


def test_train_config_validates_and_roundtrips():
    cfg = TunedLensTrainConfig(tokens=4096, corpus=CorpusConfig(sources=("a.txt", "builtin"), seq_len=64))
    assert TunedLensTrainConfig(**cfg.to_dict()) == cfg and cfg.contexts == 64 and cfg.steps == 16
    for bad in ({"tokens": 10}, {"lr": 0}, {"positions_per_step": 10_000}, {"precision": "float16"},
                {"contexts_per_step": 0}):  # fmt: skip
        with pytest.raises(ConfigError):
            TunedLensTrainConfig(**bad)
    assert schedule_factor(0, 100, 0.1) == pytest.approx(0.1) and schedule_factor(99, 100, 0.1) == pytest.approx(1 / 90)
