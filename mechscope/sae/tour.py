"""The sparse-autoencoder step of ``mechscope tour`` ("The dark matter of AI"): train a CPU-sized SAE on
Gemma 3 270M, read the latents that fire on the Wikipedia prompt's last token, and steer with a latent
whose decoder direction promotes words of doubt — if this SAE has one (it says so when it does not).

``mechscope/cli/tour.py`` calls :func:`tour` and prints the lines it returns. The SAE is saved in the
tour folder and reused by the next tour run on the same model (training takes ~1 min on 2 cores).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from mechscope.model.hooked import HookedModel

WIDTH, K = 2048, 32
TOKENS = 81_280
"""Training rows (BOS excluded): 40 steps of 2,032 (16 contexts of 128 tokens), ~1 min on 2 cores."""
PROMPT = "The reliability of Wikipedia is very"
SAE_DIR = "sae_l9"
PNG_NAME = "sae_steer_doubt.png"
DOUBT = (" questionable", " doubtful", " dubious", " uncertain", " unclear", " unreliable", " suspicious",
         " skeptical", " doubt", " controversial", " debatable", " unsure")  # fmt: skip
"""Words of doubt whose decoder logits pick the latent to steer with."""
DOSES = (0.0, 0.5, 1.0, 2.0, 4.0)
"""Steering doses as multiples of the latent's largest activation on the prompt set."""


def hook_of(model: HookedModel) -> str:
    return f"blocks.{model.cfg.n_layers // 2}.hook_resid_post"


def train_or_reuse(model: HookedModel, out_dir: Path, progress: bool = True):
    """The tour's SAE: loaded from ``out_dir`` when an earlier tour trained it for this model, else trained."""
    from mechscope.errors import ArtifactError
    from mechscope.sae import artifact
    from mechscope.sae.config import SAEConfig, SAETrainConfig
    from mechscope.sae.train import ModelSource, train_saes

    path = Path(out_dir) / SAE_DIR
    tc = SAETrainConfig(tokens=TOKENS, batch_tokens=2032, log_every=5, checkpoint_every=0)
    if path.is_dir():
        try:
            sae = artifact.load(path, model)
            if sae.info.get("train") == tc.to_dict() and sae.cfg.width == WIDTH and sae.hook == hook_of(model):
                return sae, True, sae.info.get("training", {})
        except ArtifactError:
            pass
    cfg = SAEConfig(arch="topk", d_in=model.cfg.d_model, width=WIDTH, k=K)
    from mechscope.runtime import fast_bf16

    # bf16 matmuls in the forward where the hardware has them (AMX here: ~2x faster; the SAE is as good)
    fwd = "bfloat16" if fast_bf16(model.device) else "float32"
    (res,) = train_saes(ModelSource(model, hook_of(model), forward_dtype=fwd), [cfg], tc, [path], progress=progress,
                        force=True)  # fmt: skip
    return artifact.load(path, model), False, res.sae.info.get("training", {})


def doubt_latent(model: HookedModel, sae) -> tuple[int, float, list[str]] | None:
    """The latent whose decoder logits favour :data:`DOUBT` most (mean z-score of those tokens among its
    logits), its score, and its top-10 logit tokens; None when no doubt word is a single token."""
    import torch

    from mechscope.sae.feature_weights import decoder_logits

    ids = sorted({model.token_id(w) for w in DOUBT if _single(model, w)})
    if not ids:
        return None
    best, score = -1, float("-inf")
    for start in range(0, sae.cfg.width, 256):  # [256, d_vocab] at a time: 256 MB, not the whole 2 GB table
        lat = torch.arange(start, min(start + 256, sae.cfg.width))
        logits = decoder_logits(model, sae, lat)
        z = (logits[:, ids] - logits.mean(1, keepdim=True)) / logits.std(1, keepdim=True)
        s, i = z.mean(1).max(0)
        if float(s) > score:
            best, score = int(lat[i]), float(s)
    top = decoder_logits(model, sae, torch.tensor([best]))[0].topk(10).indices.tolist()
    return best, score, model.to_str_tokens(top)


def _single(model, word: str) -> bool:
    from mechscope.errors import PromptError

    try:
        model.token_id(word)
        return True
    except PromptError:
        return False


def tour(model: HookedModel, out_dir: Path) -> list[str]:
    """Lines of the walkthrough; writes the SAE folder and ``sae_steer_doubt.png`` into ``out_dir``."""
    from mechscope.sae.feature_weights import logit_lists, top_latents
    from mechscope.steer.feature import steer_latent
    from mechscope.viz.steer import save_steer_png

    t0 = time.perf_counter()
    sae, reused, training = train_or_reuse(model, out_dir)
    final = training.get("final", {})
    lines = [
        "\n=== Sparse autoencoder features " + "=" * 39,
        f"A TopK SAE ({WIDTH} latents, k = {K}) on {sae.hook}, {'reused from' if reused else 'trained just now into'} "
        f"{Path(out_dir) / SAE_DIR}: {training.get('tokens', TOKENS):,} tokens of the built-in corpus, BOS left out; "
        f"training FVU {final.get('fvu', float('nan')):.3f}, L0 {final.get('l0', float('nan')):.0f}.",
    ]
    top = top_latents(model, sae, PROMPT, -1, k=3)
    lines.append(f"Latents firing on {top.tokens[-1]!r}, the last token of {PROMPT!r} ({top.active} active):")
    for lat, act in zip(top.latents.tolist(), top.activations.tolist()):
        words = ", ".join(repr(t["token"]) for t in logit_lists(model, sae, lat, k=5)["top_logits"])
        lines.append(f"  latent {lat:>5}  activation {act:8.1f}   its decoder promotes {words}")
    found = doubt_latent(model, sae)
    if found is None:
        latent, score, words = int(top.latents[0]) if top.active else 0, float("nan"), []
        lines.append(f"None of the words of doubt is a single token of {model.name}; steering with latent {latent}, "
                     "the strongest on the prompt:")  # fmt: skip
    else:
        latent, score, words = found
    if not words:
        pass
    elif any(w in DOUBT for w in words):
        lines.append(f"Latent {latent}'s decoder direction promotes words of doubt: {', '.join(map(repr, words))}.")
    else:
        lines.append(f"No latent of this small SAE promotes words of doubt among its top-10 logits; the closest, "
                     f"latent {latent} (doubt words {score:.1f} σ above its mean logit), promotes "
                     f"{', '.join(map(repr, words[:6]))}. Steering with it anyway:")  # fmt: skip
    act = max(top.activations.tolist() + [1.0])
    res = steer_latent(model, sae, latent, PROMPT, [d * act for d in DOSES], "add", generate=8, top_k=5)
    data = res.to_dict()
    for d in data["doses"]:
        tops = ", ".join(f"{t['token']!r} {t['prob']:.0%}" for t in d["top"][:3])
        lines.append(f"  +{d['value']:7.0f} × W_dec[{latent}]: next {tops}  | {d['text']!r}")
    png = save_steer_png(data, Path(out_dir) / PNG_NAME)
    lines += [f"(doses are multiples of {act:.0f}, the strongest activation on the prompt's last token; "
              f"{time.perf_counter() - t0:.0f} s)", f"wrote {png}"]  # fmt: skip
    return lines
