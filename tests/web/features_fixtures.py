"""A runs folder for the Neurons & features, Steering and Diffing pages: a tiny corpus, an SAE trained by
the library's trainer on the tiny model, and a "tuned" model (a perturbed copy saved with save_pretrained)."""

from __future__ import annotations

from pathlib import Path

import torch

HOOK = "blocks.1.hook_resid_post"
SEQ_LEN = 16


def train_tiny_sae(model, corpus: str, out: Path, width: int = 32, k: int = 4) -> Path:
    from mechscope.data.corpus import CorpusConfig
    from mechscope.sae.config import SAEConfig, SAETrainConfig
    from mechscope.sae.train import ModelSource, train_saes

    cfg = SAEConfig(arch="topk", d_in=model.cfg.d_model, width=width, k=k)
    tc = SAETrainConfig(tokens=1536, batch_tokens=256, warmup_steps=1, log_every=1, checkpoint_every=0)
    src = ModelSource(model, HOOK, corpus=CorpusConfig(sources=(corpus,), seq_len=SEQ_LEN))
    train_saes(src, [cfg], tc, [out], progress=False)
    return out


def save_tuned(out: Path, layer: int = 1, size: float = 0.5) -> Path:
    """The tiny Gemma of ``tests.tiny`` (seed 0, what the web fixtures load) with one MLP's down
    projection nudged, saved as a Hugging Face folder."""
    from tests.tiny import tiny_hf, tiny_tokenizer

    hf = tiny_hf("gemma3")
    with torch.no_grad():
        w = hf.model.layers[layer].mlp.down_proj.weight
        w.add_(size * torch.randn(w.shape, generator=torch.Generator().manual_seed(1)))
    hf.save_pretrained(out)
    tiny_tokenizer().save_pretrained(out)
    return out


def build_runs(root: Path, model) -> dict:
    """``root`` filled: ``text.jsonl`` (corpus), ``sae`` (trained), ``tuned`` (a fine-tune stand-in)."""
    from tests.tiny import save_tiny_corpus

    corpus = save_tiny_corpus(root, 6)
    sae = train_tiny_sae(model, corpus, root / "sae")
    tuned = save_tuned(root / "tuned")
    return {"corpus": corpus, "sae": str(sae), "tuned": str(tuned)}
