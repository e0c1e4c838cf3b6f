"""The steering-vector step of ``mechscope tour``: one contrastive vector from the built-in doubt set
(60 doubtful vs confident statements, difference of means at the middle block's residual stream) and one
coefficient sweep on "The reliability of Wikipedia is very", with " questionable" as the target word.

``mechscope/cli/tour.py`` calls :func:`tour` and prints the lines it returns. The vector is saved in the
tour folder and reused by the next tour on the same model (making it reads 120 prompts, ~10 s on 2 cores).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from mechscope.model.hooked import HookedModel

PROMPT = "The reliability of Wikipedia is very"
TARGET = "questionable"
COEFS = (0.5, 1.0, 1.5, 2.0, 3.0)
"""Coefficients swept (c = 0 is always run as the reference)."""
GENERATE = 8
VECTOR_DIR = "vector_doubt"
PNG_NAME = "vector_sweep_doubt.png"


def hook_of(model: HookedModel) -> str:
    return f"blocks.{model.cfg.n_layers // 2}.hook_resid_post"


def make_or_reuse(model: HookedModel, out_dir: Path):
    """The tour's vector: loaded from ``out_dir`` when an earlier tour made it for this model from the same
    prompts, else made (and saved there). Returns it and whether it was reused."""
    from mechscope.errors import MechscopeError
    from mechscope.steer.builtin import builtin_set
    from mechscope.steer.vector import _digest, load_vector, make_vector

    pos, neg = builtin_set("doubt")
    path = Path(out_dir) / VECTOR_DIR
    if path.is_dir():
        try:
            vec = load_vector(path, model, hook=hook_of(model))
            if vec.meta.get("prompts_sha256") == _digest(pos, neg) and vec.method == "mean":
                return vec, True
        except MechscopeError:
            pass
    vec = make_vector(model, pos, neg, hook_of(model))
    vec.meta["source"] = "builtin:doubt"
    vec.save(path, force=True)
    return vec, False


def summary(data: dict) -> str:
    """Where the target's shift peaks and where it turns negative, in words."""
    cols = sorted(data["coefs"], key=lambda c: c["coef"])
    best = max(cols, key=lambda c: c["target_logprob_shift"])
    neg = next((c for c in cols if c["coef"] > best["coef"] and c["target_logprob_shift"] < 0), None)
    first = f"The effect peaks at c = {best['coef']:g} ({best['target_logprob_shift']:+.2f} nats, rank " \
            f"{best['target_ranks'][0]})"  # fmt: skip
    if neg is None:
        return first + "; it stays positive over this sweep."
    return first + f" and reverses by c = {neg['coef']:g} ({neg['target_logprob_shift']:+.2f} nats): pushed too " \
                   "far, the residual stream leaves the region where doubt reads as doubt."  # fmt: skip


def tour(model: HookedModel, out_dir: Path) -> list[str]:
    """Lines of the walkthrough; writes the vector folder and ``vector_sweep_doubt.png`` into ``out_dir``."""
    from mechscope.steer.apply import apply_vector
    from mechscope.viz.tokens import visible
    from mechscope.viz.vector import save_vector_png

    t0 = time.perf_counter()
    vec, reused = make_or_reuse(model, out_dir)
    res = apply_vector(model, vec, PROMPT, list(COEFS), generate=GENERATE, targets=[TARGET], top_k=5)
    data = res.to_dict()
    m = vec.meta
    lines = [
        "\n=== Steering vectors: a direction of doubt " + "=" * 28,
        f"The difference of mean activations at {vec.hook} between {m['n_pos']} doubtful and {m['n_neg']} confident "
        f"statements (the built-in doubt set, each prompt averaged over its positions but BOS), "
        f"{'reused from' if reused else 'saved to'} {Path(out_dir) / VECTOR_DIR}: norm {vec.norm:.0f}, against "
        f"activations of norm ~{m['pos_norm']:.0f} there.",
        f"Adding c × that vector at every position but BOS, on {PROMPT!r} (greedy text, {GENERATE} tokens):",
    ]
    for c in [data["reference"], *data["coefs"]]:
        tops = ", ".join(f"{visible(t['token'])} {t['prob']:.0%}" for t in c["top"][:3])
        lines.append(f"  c = {c['coef']:<4g} {visible(res.targets[0]['token'])} rank {c['target_ranks'][0]:<4} "
                     f"{c['target_logprob_shift']:+.2f} nats | next {tops} | {c['text']!r}")  # fmt: skip
    lines.append(summary(data))
    try:
        png = save_vector_png(data, Path(out_dir) / PNG_NAME)
        lines.append(f"picture: {png}  ({time.perf_counter() - t0:.0f} s; `mechscope vector --help` for your own sets)")
    except OSError as exc:
        lines.append(f"(could not write the picture into {out_dir}: {exc.strerror or exc})")
    return lines
