"""The superposition lab's results as objects with ``to_dict()``: what ``mechscope toy … --json`` prints and
what the web workbench's Superposition page draws (the same functions, so the two always agree).

- :func:`toy_report`: train a batch of toy models and measure their geometry (norms, D_i, D*, angles);
  ``to_dict(weights=True)`` adds W, b and WᵀW per instance for the geometry plot;
- :func:`orthogonal_report`: random and optimised near-orthogonal vectors; ``to_dict(hist=True)`` adds the
  angle histograms (non-empty bins only);
- :func:`memory_report`: the hand-built AND neuron (with and without its AND bias).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mechscope.labs.superposition.config import OrthoConfig, ToyConfig


def _round(t: torch.Tensor, digits: int = 6) -> list:
    return torch.round(t.double(), decimals=digits).tolist()


@dataclass
class ToyReport:
    """Trained toy models and their geometry (one dict per instance)."""

    config: ToyConfig
    models: object
    """The :class:`~mechscope.labs.superposition.toy.ToyModels`."""
    instances: list[dict]
    """Per instance: ``norms``, ``d_star``, ``dimensionality``, ``angles_deg`` (m = 2) and ``loss``."""

    def to_dict(self, weights: bool = False) -> dict:
        """``mechscope toy superposition --json`` (without ``files``); ``weights`` adds ``W`` [inst][m][n],
        ``b`` [inst][n], ``wtw`` [inst][n][n] and ``importance`` [n]."""
        cfg, m = self.config, self.models
        d = {"n": cfg.n, "m": cfg.m, "instances": self.instances, "config": cfg.to_dict(), "seconds": round(m.seconds, 3)}
        if weights:
            W = m.W.detach()
            d.update(W=_round(W), b=_round(m.b.detach()), wtw=_round(W.transpose(1, 2) @ W),
                     importance=_round(m.importance))  # fmt: skip
        return d


def toy_report(cfg: ToyConfig, progress: bool = False) -> ToyReport:
    """Train ``cfg.instances`` toy models (:func:`~mechscope.labs.superposition.toy.train`) and summarise them
    (:func:`~mechscope.labs.superposition.geometry.summarize`, plus each instance's final loss)."""
    from mechscope.labs.superposition.geometry import summarize
    from mechscope.labs.superposition.toy import train

    models = train(cfg, progress=progress)
    instances = summarize(models.W)
    for inst, loss in zip(instances, models.final_loss.tolist()):
        inst["loss"] = loss
    return ToyReport(cfg, models, instances)


@dataclass
class OrthoReport:
    """The random start's angle statistics and each optimised set's."""

    config: OrthoConfig
    random: object
    """:class:`~mechscope.labs.superposition.orthogonal.AngleStats` of the random unit vectors."""
    runs: list
    """:class:`~mechscope.labs.superposition.orthogonal.OrthoRun` per loss."""

    @property
    def welch(self) -> float:
        from mechscope.labs.superposition.orthogonal import welch_bound

        return welch_bound(self.config.n, self.config.dim)

    def to_dict(self, hist: bool = False) -> dict:
        """``mechscope toy orthogonal --json`` (without ``files``); ``hist`` adds ``hist``: per set (``random``
        and each loss) the non-empty bins as ``{"angle_deg": [...], "pairs": [...]}``."""
        cfg = self.config
        d = {"n": cfg.n, "dim": cfg.dim, "runs": [r.to_dict() for r in self.runs], "random": self.random.to_dict(),
             "welch_max_abs_cos": self.welch, "config": cfg.to_dict()}  # fmt: skip
        if hist:
            from mechscope.labs.superposition.orthogonal import HIST_BINS

            edges = torch.linspace(-1, 1, HIST_BINS + 1, dtype=torch.float64)
            centres = torch.rad2deg(torch.arccos(((edges[:-1] + edges[1:]) / 2).clamp(-1, 1)))
            sets = [("random", self.random)] + [(r.loss, r.stats) for r in self.runs]
            d["hist"] = {}
            for name, st in sets:
                keep = st.hist > 0
                d["hist"][name] = {"angle_deg": _round(centres[keep], 4), "pairs": st.hist[keep].tolist()}
        return d


def orthogonal_report(cfg: OrthoConfig, progress: bool = False) -> OrthoReport:
    """:func:`~mechscope.labs.superposition.orthogonal.run`: the random start, then each loss from it."""
    from mechscope.labs.superposition.orthogonal import run

    random_stats, runs = run(cfg, progress=progress)
    return OrthoReport(cfg, random_stats, runs)


@dataclass
class MemoryReport:
    """The AND neuron: each prompt's pre-activation, activation and the basketball it adds."""

    bias: float
    rows: list[dict]
    """With the AND bias (``mechscope toy memory --json``'s ``toy``)."""
    without_and: list[dict]
    """The same neuron with bias 0 (it fires for either name)."""

    def to_dict(self, detail: bool = False) -> dict:
        """``{"toy": rows}``; ``detail`` adds ``bias``, ``without_and``, ``words`` and the neuron's
        ``W_in`` / ``W_out`` over those words."""
        d: dict = {"toy": self.rows}
        if detail:
            from mechscope.labs.superposition.memory import WORDS, build

            mlp = build(self.bias)
            d.update(bias=self.bias, without_and=self.without_and, words=list(WORDS), W_in=mlp.W_in[0].tolist(),
                     W_out=mlp.W_out[:, 0].tolist())  # fmt: skip
        return d


def memory_report(bias: float = -1.0) -> MemoryReport:
    """:func:`~mechscope.labs.superposition.memory.run` with ``bias`` and with 0."""
    import math

    from mechscope.errors import ConfigError
    from mechscope.labs.superposition.memory import run

    if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not math.isfinite(bias):
        raise ConfigError(f"bias must be a finite number, got {bias!r}")
    return MemoryReport(float(bias), run(bias), run(0.0))
