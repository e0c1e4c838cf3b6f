"""Held-out evaluation: mean KL(final ‖ row) per row, logit lens vs tuned lens.

Both lenses read the same held-out contexts (documents never trained on), every position except BOS,
in float32 through the same chunked statistics as :func:`~mechscope.lens.logit.logit_lens`. The last
row is the model output (KL 0 for both) and is not reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from jaxtyping import Int
from torch import Tensor

from mechscope.lens.rows import collect, lens_rows
from mechscope.lens.stream import Final, Unembedding, stream_stats

if TYPE_CHECKING:  # pragma: no cover
    from mechscope.lens.tuned import TunedLens
    from mechscope.model.hooked import HookedModel


@dataclass(frozen=True)
class LensEvaluation:
    """Per-row mean KL to the final distribution (nats) on held-out text."""

    labels: list[str]
    hooks: list[str]
    logit_kl: list[float]
    tuned_kl: list[float]
    tokens: int
    """Positions averaged over (BOS excluded)."""
    contexts: int
    seconds: float

    @property
    def tuned_better_everywhere(self) -> bool:
        return all(t < lo for t, lo in zip(self.tuned_kl, self.logit_kl))

    def to_dict(self) -> dict:
        rows = [{"label": lb, "hook": h, "logit_kl": lo, "tuned_kl": t}
                for lb, h, lo, t in zip(self.labels, self.hooks, self.logit_kl, self.tuned_kl)]  # fmt: skip
        return {"rows": rows, "tokens": self.tokens, "contexts": self.contexts, "seconds": round(self.seconds, 1),
                "tuned_better_everywhere": self.tuned_better_everywhere}  # fmt: skip

    def table(self) -> str:
        lines = [f"{'row':<10} {'logit KL':>10} {'tuned KL':>10}   (nats, mean over {self.tokens:,} held-out positions)"]
        for lb, lo, t in zip(self.labels, self.logit_kl, self.tuned_kl):
            lines.append(f"{lb:<10} {lo:>10.3f} {t:>10.3f}")
        return "\n".join(lines)


@torch.no_grad()
def evaluate_lenses(model: HookedModel, lens: TunedLens, contexts: Int[Tensor, "context seq"],
                    sublayers: bool = False, progress: bool = True) -> LensEvaluation:  # fmt: skip
    """Mean KL per row of the logit lens and of ``lens`` over ``contexts`` (all positions but BOS)."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    lens.check_model(model)
    rows = lens_rows(model.cfg.n_layers, sublayers)
    lens.check_rows(rows)
    inner = rows[:-1]
    unembed = Unembedding(model)
    total = torch.zeros(2, len(inner), dtype=torch.float64)
    count = 0
    for ids in tqdm(contexts, desc="mechscope: evaluating lenses", unit="context", disable=not progress):
        final_logits, resid = collect(model, ids, rows)
        h = resid[:-1]
        both = torch.cat([h, lens.translate(h, inner)])  # [2·rows, pos, d]: logit rows, then tuned rows
        track = ids[:, None].to(model.device)  # (ranks unused here)
        stats = stream_stats(unembed, model.unembed.norm(both), Final.of(final_logits.float()), 1, track)
        kl = stats.kl[:, 1:].double()  # BOS excluded
        total += kl.sum(-1).view(2, len(inner)).cpu()
        count += kl.shape[1]
    mean = (total / max(1, count)).tolist()
    return LensEvaluation([r.label for r in inner], [r.hook for r in inner], mean[0], mean[1], count,
                          contexts.shape[0], time.perf_counter() - start)  # fmt: skip
