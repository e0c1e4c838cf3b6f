"""``mechscope grok analyze``: reverse-engineer a trained run and compute its progress measures.

At the last checkpoint: the Fourier spectrum of W_E, each neuron's best frequency and fraction of
variance explained (FVE), the key frequencies (neuron clusters), W_L's Fourier sparsity, and a sparse
probe of the circle for the strongest key frequency. At every checkpoint: the progress measures of
``measures.py`` with the final key frequencies, from which ``phases.py`` reads the phase boundaries.

Results go to ``DIR/seed_<S>/analysis.json`` (everything) and ``measures.safetensors`` (curves); the
stable summary (the ``--json`` output) is ``Analysis.summary``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from mechscope.errors import RunError
from mechscope.labs.grokking import fourier, rundir
from mechscope.labs.grokking.data import Dataset
from mechscope.labs.grokking.measures import FVE_THRESHOLD, forward_all_pairs, measures_over, w_logit
from mechscope.labs.grokking.phases import detect_phases
from mechscope.labs.grokking.probe import fit_probe
from mechscope.labs.grokking.rundir import Run

ANALYSIS_FORMAT = "mechscope-grok-analysis/1"

# Keys of the stable --json summary, in order.
SUMMARY_KEYS = (
    "p", "final_train_acc", "final_test_acc", "test_loss_final", "key_frequencies", "neuron_fve_fraction_085",
    "epoch_train_acc_99", "epoch_test_acc_99", "phases", "restricted_loss_final", "excluded_loss_final",
)  # fmt: skip


@dataclass(frozen=True)
class Analysis:
    """Everything ``analyze`` computed for one seed of a run."""

    run: Run
    """The run that was analysed."""
    summary: dict[str, Any]
    """The stable ``--json`` object (keys in ``SUMMARY_KEYS``)."""
    details: dict[str, Any]
    """Everything else (spectra, neuron frequencies, probe, wall-clock ...), as saved in analysis.json."""
    measures: dict[str, np.ndarray]
    """Progress measures at every checkpoint."""

    def to_dict(self, max_points: int | None = 2000) -> dict[str, Any]:
        """Everything as JSON (the web workbench's Grokking page): the run, ``summary``, ``details``, the
        training ``curves`` (per-epoch series thinned to about ``max_points`` epochs, dense early and
        even later, so log and linear axes both look right; None keeps all) and the progress
        ``measures`` at every checkpoint. NaN stays NaN (``mechscope.io.finite_json`` makes it null)."""
        m = self.run.metrics
        keep = thin_epochs(len(m["epoch"]), max_points)
        curves = {"epoch": m["epoch"][keep].tolist(), "train_loss": m["train_loss"][keep].tolist(),
                  "train_acc": m["train_acc"][keep].tolist(), "eval_epoch": m["eval_epoch"].tolist(),
                  "test_loss": m["test_loss"].tolist(), "test_acc": m["test_acc"].tolist()}  # fmt: skip
        return {"dir": str(self.run.dir), "seed": self.run.seed, "seeds": self.run.config.seeds,
                "step": self.run.step, "complete": self.run.complete, "epochs": self.run.epochs,
                "config": self.run.config.to_dict(), "summary": self.summary, "details": self.details,
                "curves": curves, "measures": {k: np.asarray(v).tolist() for k, v in self.measures.items()}}  # fmt: skip


def thin_epochs(n: int, max_points: int | None) -> np.ndarray:
    """Indices into ``n`` per-epoch values: all when ``n <= max_points`` (or None), else about half
    log-spaced and half evenly spaced, always with the first and last."""
    if max_points is None or n <= max_points:
        return np.arange(n)
    half = max(max_points // 2, 2)
    log = np.rint(np.geomspace(1, n - 1, half)).astype(int)
    even = np.rint(np.linspace(0, n - 1, half)).astype(int)
    return np.unique(np.concatenate([[0, n - 1], log, even]))


def _first_epoch(epochs: np.ndarray, values: np.ndarray, threshold: float) -> int | None:
    hits = np.nonzero(values >= threshold)[0]
    return int(epochs[hits[0]]) if len(hits) else None


def _variance_weighted(post: torch.Tensor, fve: torch.Tensor) -> float:
    """Share of the total neuron variance held by neurons with FVE > 0.85 (weak neurons count less)."""
    var = post.reshape(-1, post.shape[-1]).var(dim=0)
    return float(var[fve > FVE_THRESHOLD].sum() / var.sum().clamp_min(1e-300))


def _clean(x: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def analyze(run_dir: str | Path, seed: int | None = None, progress: bool = True, reuse: bool = True) -> Analysis:
    """Analyse one seed of the run in ``run_dir`` (default: its first seed). With ``reuse``, a saved
    analysis of the same training step is read back instead of recomputed.

    Subnormal floats are flushed to zero meanwhile (CPU, this thread; ``runtime.flush_denormals``):
    the late checkpoints' softmax outputs are full of them, and Intel cores handle them in microcode."""
    from mechscope.runtime import flush_denormals

    with flush_denormals():
        return _analyze(run_dir, seed, progress, reuse)


def _analyze(run_dir: str | Path, seed: int | None, progress: bool, reuse: bool) -> Analysis:
    run = Run.open(run_dir, seed)
    if reuse:
        cached = load_analysis(run)
        if cached is not None:
            return cached
    cfg = run.config
    p = cfg.model.p
    data = Dataset.build(cfg)
    final = run.weights()

    # --- mechanism at the last checkpoint
    _, post = forward_all_pairs(final)
    best, fve, _ = fourier.neuron_frequency_fve(post)
    key = fourier.key_frequencies(best, fve)
    W_E = final["W_E"][0, :p].to(torch.float64)
    we_spectrum = fourier.frequency_norms(fourier.fft1d(W_E))
    wl_spectrum = fourier.frequency_norms(fourier.fft1d(w_logit(final).T))
    wl_sq = wl_spectrum.pow(2)
    wl_key_fraction = float(wl_sq[[k - 1 for k in key]].sum() / wl_sq.sum()) if key else float("nan")
    probe_freq = max(key, key=lambda k: float(we_spectrum[k - 1])) if key else int(torch.argmax(we_spectrum)) + 1
    probe = fit_probe(W_E.numpy(), probe_freq)

    # --- progress measures over checkpoints
    bar = tqdm(total=len(run.epochs), desc="grok analyze", unit="ckpt", file=sys.stderr, disable=not progress)
    try:
        meas = measures_over(run.weights, run.epochs, data, run.seed_index, key, cfg.operation, progress=bar.update)
    finally:
        bar.close()
    phases = detect_phases(meas)

    m = run.metrics
    final_meas = {k: v[-1] for k, v in meas.items()}
    summary = {
        "p": p,
        "final_train_acc": float(final_meas["train_acc"]),
        "final_test_acc": float(final_meas["test_acc"]),
        "test_loss_final": float(final_meas["test_loss"]),
        "key_frequencies": key,
        "neuron_fve_fraction_085": float((fve > FVE_THRESHOLD).double().mean()),
        "epoch_train_acc_99": _first_epoch(m["epoch"], m["train_acc"], 0.99),
        "epoch_test_acc_99": _first_epoch(m["eval_epoch"], m["test_acc"], 0.99),
        "phases": phases.to_dict(),
        "restricted_loss_final": float(final_meas["restricted_loss"]),
        "excluded_loss_final": float(final_meas["excluded_loss_all"]),
    }
    epoch_99 = summary["epoch_test_acc_99"]
    details = {
        "format": ANALYSIS_FORMAT,
        "seed": run.seed,
        "step": run.step,
        "final_epoch": run.final_epoch,
        "n_checkpoints": len(run.epochs),
        "recipe": cfg.recipe,
        "operation": cfg.operation,
        "epoch_train_acc_100": _first_epoch(m["epoch"], m["train_acc"], 1.0),
        "wall_s_total": float(m["wall_s"][-1]),
        "wall_s_test_acc_99": float(m["wall_s"][epoch_99]) if epoch_99 is not None else None,
        "neuron_fve_fraction_085_variance_weighted": _variance_weighted(post, fve),
        "neuron_frequency": best.tolist(),
        "neuron_fve": fve.tolist(),
        "cluster_sizes": {str(k): int(((best == k) & (fve >= 0.5)).sum()) for k in key},
        "W_E_frequency_norms": we_spectrum.tolist(),
        "W_L_frequency_norms": wl_spectrum.tolist(),
        "W_L_key_fraction": wl_key_fraction,
        "gini_W_E_final": float(final_meas["gini_W_E"]),
        "gini_W_L_final": float(final_meas["gini_W_L"]),
        "excluded_loss_per_frequency_final": dict(zip(map(str, key), meas["excluded_loss"][-1].tolist())),
        "probe": probe.to_dict(),
        "probe_circle": probe.circle.tolist(),
        "probe_map": probe.map_dict(),
        "phase_evidence": phases.evidence,
    }
    analysis = Analysis(run, _clean(summary), _clean(details), meas)
    save_analysis(analysis)
    return analysis


def save_analysis(analysis: Analysis) -> None:
    seed_dir = analysis.run.seed_dir
    rundir.write_json(seed_dir / rundir.ANALYSIS_FILE, {"summary": analysis.summary, **analysis.details})
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in analysis.measures.items()}
    rundir.write_safetensors(seed_dir / rundir.MEASURES_FILE, tensors, {"format": ANALYSIS_FORMAT})


def load_analysis(run: Run) -> Analysis | None:
    """A saved analysis of the run's current step, or None if there is none (or it is stale)."""
    path = run.seed_dir / rundir.ANALYSIS_FILE
    if not path.exists() or not (run.seed_dir / rundir.MEASURES_FILE).exists():
        return None
    try:
        saved = rundir.read_json(path)
        tensors = rundir.read_safetensors(run.seed_dir / rundir.MEASURES_FILE)
    except RunError:
        return None  # a corrupted cache is recomputed
    if saved.get("format") != ANALYSIS_FORMAT or saved.get("step") != run.step or "summary" not in saved:
        return None
    summary = saved.pop("summary")
    if set(summary) != set(SUMMARY_KEYS):
        return None
    return Analysis(run, summary, saved, {k: v.numpy() for k, v in tensors.items()})
