"""The mechanism at one checkpoint, as numbers: what the animation draws, for any epoch of a run.

``checkpoint_view(analysis, epoch)`` reads the weights saved at ``epoch`` and returns, with the final
analysis as the frame of reference (as ``animation.py`` does):

* the Fourier spectrum of W_E and of W_L = W_out W_U at this epoch (norm per frequency), with the
  frequencies the neurons use *now* (``key_frequencies_now``) beside the final key frequencies;
* the probe circle: the token embeddings at this epoch seen through the final sparse probe
  (cos vs sin of the probe's frequency), so the circle can be watched forming;
* the neuron surfaces: activation over all pairs (x, y) of the final clusters' best neurons (one per
  main frequency, as ``figures_neurons.plot_neuron_surfaces`` picks them);
* the logit surface of one answer token over (x, y);
* the progress measures at this checkpoint (a row of ``analysis.measures``).

The web workbench's Grokking page serves it per checkpoint (``POST /api/grok/checkpoint``); values are
rounded to 4 decimals to keep the JSON small (p = 113: about 0.5 MB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mechscope.errors import OutOfRangeError
from mechscope.labs.grokking import fourier
from mechscope.labs.grokking.analyze import Analysis
from mechscope.labs.grokking.measures import forward_all_pairs, w_logit

N_NEURONS = 3
"""Neuron surfaces per checkpoint (one per main frequency, slowest waves first)."""


def _round(x: np.ndarray | torch.Tensor, digits: int = 4) -> list:
    return np.round(np.asarray(x, dtype=np.float64), digits).tolist()


def main_frequencies(analysis: Analysis) -> list[int]:
    """Final key frequencies, largest neuron cluster first (falls back to the most common best
    frequencies when the run has no key frequency yet)."""
    freq = np.asarray(analysis.details["neuron_frequency"])
    key = analysis.summary["key_frequencies"]
    if not key:
        counts = np.bincount(freq[freq > 0], minlength=2)
        key = [int(k) for k in np.argsort(-counts)[:3] if counts[k] > 0] or [1]
    return sorted(key, key=lambda k: -int((freq == k).sum()))


def surface_neurons(analysis: Analysis, n: int = N_NEURONS) -> list[tuple[int, int]]:
    """(neuron, frequency): the best-explained neuron of each of the ``n`` slowest of the four biggest
    final clusters (the neurons of ``plot_neuron_surfaces``)."""
    freq, fve = np.asarray(analysis.details["neuron_frequency"]), np.asarray(analysis.details["neuron_fve"])
    out = []
    for k in sorted(main_frequencies(analysis)[:4])[:n]:
        idx = np.nonzero(freq == k)[0]
        out.append((int(idx[np.argmax(fve[idx])]) if len(idx) else 0, int(k)))
    return out


@dataclass(frozen=True)
class CheckpointView:
    """The mechanism at one checkpoint (see the module docstring)."""

    epoch: int
    """The checkpoint's epoch (updates done)."""
    data: dict[str, Any]
    """Everything else, JSON-ready."""

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, **self.data}


@torch.no_grad()
def checkpoint_view(analysis: Analysis, epoch: int, token: int | None = None) -> CheckpointView:
    """The spectrum, probe circle, neuron and logit surfaces at checkpoint ``epoch`` (one of
    ``analysis.run.epochs``). ``token``: the answer whose logit surface is returned (default p // 3)."""
    run = analysis.run
    p = run.config.model.p
    if epoch not in run.epochs:
        near = min(run.epochs, key=lambda e: abs(e - epoch))
        raise OutOfRangeError(f"epoch {epoch} has no checkpoint in {run.dir} (nearest: {near}; "
                              f"{len(run.epochs)} checkpoints from {run.epochs[0]} to {run.epochs[-1]})")  # fmt: skip
    token = p // 3 if token is None else token
    if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < p:
        raise OutOfRangeError(f"token {token!r} out of range: answers are 0..{p - 1}")
    weights = run.weights(epoch)
    logits, post = forward_all_pairs(weights)  # [p², p+1], [p, p, d_mlp]
    best, fve, _ = fourier.neuron_frequency_fve(post)
    W_E = weights["W_E"][0, :p].to(torch.float64)
    we = fourier.frequency_norms(fourier.fft1d(W_E))
    wl = fourier.frequency_norms(fourier.fft1d(w_logit(weights).T))

    pm = analysis.details["probe_map"]
    mean, scale = np.asarray(pm["x_mean"]), np.asarray(pm["x_scale"])
    coef, intercept = np.asarray(pm["coef"]), np.asarray(pm["intercept"])
    circle = ((W_E.numpy() - mean) / scale) @ coef.T + intercept  # [p, 2]

    neurons = [{"neuron": n, "frequency": k, "frequency_now": int(best[n]), "fve_now": round(float(fve[n]), 4),
                "surface": _round(post[:, :, n])} for n, k in surface_neurons(analysis)]  # fmt: skip
    row = run.epochs.index(epoch)
    measures = {k: np.asarray(v)[row].tolist() for k, v in analysis.measures.items() if k != "epoch"}
    data = {
        "p": p,
        "index": row,
        "n_checkpoints": len(run.epochs),
        "key_frequencies": analysis.summary["key_frequencies"],
        "key_frequencies_now": fourier.key_frequencies(best, fve),
        "W_E_frequency_norms": _round(we),
        "W_L_frequency_norms": _round(wl),
        "probe_frequency": analysis.details["probe"]["frequency"],
        "probe_circle": _round(circle),
        "neurons": neurons,
        "logit_token": token,
        "logit_surface": _round(logits[:, token].reshape(p, p)),
        "measures": measures,
    }
    return CheckpointView(int(epoch), data)
