"""The fine-tune to diff: loss falls on a theme, resume is bit-identical, LoRA merges exactly, the output
is a Hugging Face folder that loads with mechscope.load, and bad input is one line."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import mechscope
from mechscope.diff import finetune_checkpoint as ckpt
from mechscope.diff.finetune import KIND, RECORD_FILE, batch_indices, finetune, read_record
from mechscope.diff.finetune_config import FinetuneConfig
from mechscope.diff.lora import LoRA, linear_layers
from mechscope.diff.themes import THEMES, get_theme, theme_documents
from mechscope.errors import CheckpointMismatchError, ConfigError, CorpusError, OutputPathError
from tests.tiny import tiny_model

PROMPT = "The capital of France is"


def tiny_cfg(**kw) -> FinetuneConfig:
    base = dict(theme="ocean", steps=6, batch=2, seq_len=16, docs=40, general=0.0, precision="float32", lora=4, warmup=2,
                checkpoint_every=2)  # fmt: skip
    return FinetuneConfig(**{**base, **kw})


@pytest.fixture
def model():
    return tiny_model("gemma3")


def test_theme_text_is_seeded_and_themed():
    a, b = theme_documents("ocean", 5, seed=1), theme_documents("ocean", 5, seed=1)
    assert [d.text for d in a] == [d.text for d in b]
    assert [d.text for d in a] != [d.text for d in theme_documents("ocean", 5, seed=2)]
    words = set(THEMES["ocean"].words)
    text = " ".join(d.text for d in a).replace(".", " ").replace(",", " ").replace(":", " ")
    assert sum(w in words for w in text.split()) >= 20  # every template carries theme words
    assert not any("{" in d.text for d in a)


@pytest.mark.parametrize("lora", [4, 0])
def test_loss_falls_on_the_theme(model, one_thread, tmp_path, lora):
    res = finetune(model, tiny_cfg(steps=30, batch=4, lora=lora, lr=1e-2 if lora else 2e-3), tmp_path / "out",
                   progress=False)  # fmt: skip
    first, last = sum(res.losses[:5]) / 5, sum(res.losses[-5:]) / 5
    assert last < first - 0.5, (first, last)
    assert res.trainable_params > 0 and res.tokens_per_s > 0


def test_base_model_is_not_changed(model, one_thread, tmp_path):
    before = {k: v.clone() for k, v in model.hf.state_dict().items()}
    finetune(model, tiny_cfg(lora=0, lr=1e-2), tmp_path / "out", progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.hf.state_dict().items())


@pytest.mark.parametrize("lora", [4, 0])
def test_resume_is_bit_identical(model, one_thread, tmp_path, lora):
    cfg = tiny_cfg(lora=lora, lr=5e-3, checkpoint_every=4)
    straight = finetune(model, cfg, tmp_path / "a", progress=False)

    def stop_at_3(step, loss):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(model, cfg, tmp_path / "b", progress=False, on_step=stop_at_3)
    assert json.loads((tmp_path / "b.checkpoint" / ckpt.CHECKPOINT_FILE).read_text())["step"] == 3
    assert not (tmp_path / "b").exists()
    resumed = finetune(model, cfg, tmp_path / "b", progress=False)
    assert resumed.resumed_at == [3] and resumed.losses == straight.losses
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (tmp_path / "b.checkpoint").exists()  # removed once the output is written


def test_lora_merge_equals_lora_forward(model):
    layers = linear_layers(model.hf.get_submodule(model.adapter.layers))
    assert len(layers) == 3 * 7  # q k v o gate up down per block
    lora = LoRA(layers, rank=4, alpha=8.0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in lora.B.values():
            p.normal_(0, 0.05)  # B starts at zero: make the adapters do something
    base = model(PROMPT)
    with lora.attached():
        adapted = model(PROMPT)
    assert torch.equal(model(PROMPT), base)  # hooks gone on exit
    assert (adapted - base).abs().max() > 1e-2
    lora.merge()
    torch.testing.assert_close(model(PROMPT), adapted, atol=2e-5, rtol=1e-5)


def test_lora_starts_at_the_base_model(model):
    lora = LoRA(linear_layers(model.hf), rank=2, alpha=4.0)
    with lora.attached():
        assert torch.equal(model(PROMPT), model.hf(**{"input_ids": model.to_tokens(PROMPT).input_ids}).logits)


def test_output_loads_like_any_hf_folder(model, one_thread, tmp_path):
    res = finetune(model, tiny_cfg(), tmp_path / "out", progress=False)
    loaded = mechscope.load(str(tmp_path / "out"), device="cpu")
    assert torch.equal(loaded(PROMPT), res.model(PROMPT))
    assert loaded.fingerprint == res.tuned_fingerprint != model.fingerprint
    ids = loaded.to_tokens(PROMPT).input_ids[0].tolist()
    assert ids == model.to_tokens(PROMPT).input_ids[0].tolist() and ids.count(loaded.tokenizer.bos_token_id) == 1
    record = read_record(tmp_path / "out")
    assert record["base"]["fingerprint"] == model.fingerprint and len(record["losses"]) == 6
    assert record["config"] == tiny_cfg().to_dict() and record["theme_shift"]["prompts"]
    marker = json.loads((tmp_path / "out" / "mechscope.json").read_text())
    assert marker["kind"] == KIND and RECORD_FILE in marker["files"]
    again = finetune(model, tiny_cfg(), tmp_path / "out", progress=False)  # our own output: replaced
    assert again.losses == res.losses


def test_batches_are_a_function_of_seed_and_step():
    assert torch.equal(batch_indices(5, 3, 0, 4), batch_indices(5, 3, 0, 4))
    epoch0 = torch.cat([batch_indices(6, 2, 0, s) for s in range(3)])
    assert sorted(epoch0.tolist()) == list(range(6))  # an epoch visits every context once
    assert not torch.equal(torch.cat([batch_indices(6, 2, 1, s) for s in range(3)]), epoch0)


def test_a_changed_config_refuses_the_checkpoint(model, one_thread, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        finetune(model, tiny_cfg(), tmp_path / "o", progress=False, on_step=lambda s, l: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(CheckpointMismatchError, match="another setting lr=None, not 0.002"):
        finetune(model, tiny_cfg(lr=2e-3), tmp_path / "o", progress=False)


@pytest.mark.parametrize("kw, match", [
    (dict(theme="oceann"), "unknown theme 'oceann'.*ocean, cooking"),
    (dict(steps=0), "steps must be an integer ≥ 1"),
    (dict(lr=float("nan")), "lr must be a finite number"),
    (dict(lr=-1.0), "lr must be between 0 and 1"),
    (dict(theme=None), "needs a corpus"),
    (dict(text=("a.txt",)), "either --theme or --text"),
    (dict(lora=4, train="all"), "--train all needs --lora 0"),
    (dict(precision="fp8"), "precision must be one of"),
])  # fmt: skip
def test_bad_config_is_one_line(kw, match):
    with pytest.raises(ConfigError, match=match) as info:
        tiny_cfg(**kw)
    assert "\n" not in str(info.value)


def test_bad_corpus_and_output_are_one_line(model, tmp_path):
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    cases = [(dict(theme=None, text=(str(tmp_path / "missing.txt"),)), tmp_path / "o1", CorpusError, "no such text file"),
             (dict(theme=None, text=(str(tmp_path / "empty.txt"),)), tmp_path / "o2", CorpusError, "holds no text"),
             (dict(seq_len=4096), tmp_path / "o3", CorpusError, "context window"),
             (dict(), tmp_path / "mine", OutputPathError, "folder mechscope did not create .notes.txt.: choose a new folder$")]  # fmt: skip
    for kw, out, exc, match in cases:
        with pytest.raises(exc, match=match) as info:
            finetune(model, tiny_cfg(**kw), out, progress=False)
        assert "\n" not in str(info.value)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt", "mine"]


def test_get_theme():
    assert get_theme("cooking").name == "cooking"
    for theme in THEMES.values():
        assert len(set(theme.words)) == len(theme.words) >= 40
        assert all(w == w.strip() and " " not in w for w in theme.words)


@pytest.mark.gemma
def test_theme_words_are_single_gemma_tokens(gemma):
    for theme in THEMES.values():
        single = [w for w in theme.words if len(gemma.tokenizer(" " + w, add_special_tokens=False)["input_ids"]) == 1]
        assert len(single) == len(theme.words), sorted(set(theme.words) - set(single))


@pytest.mark.gemma
def test_gemma_finetune_output_has_one_bos(gemma, tmp_path):
    cfg = FinetuneConfig(theme="ocean", steps=1, batch=1, seq_len=16, docs=20)
    res = finetune(gemma, cfg, tmp_path / "g", progress=False)
    loaded = mechscope.load(str(tmp_path / "g"), device="cpu")
    for prompt in (PROMPT, "<bos>Paris"):
        ids = loaded.to_tokens(prompt).input_ids[0].tolist()
        assert ids == gemma.to_tokens(prompt).input_ids[0].tolist() and ids.count(2) == 1 and ids[0] == 2
    torch.testing.assert_close(loaded(PROMPT), res.model(PROMPT), atol=0, rtol=0)
