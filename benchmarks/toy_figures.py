"""The pictures of docs/superposition.md (small PNGs under docs/superposition/), with their numbers.

    . .venv/bin/activate && flock /tmp/mechscope-cpu.lock python benchmarks/toy_figures.py

~2 minutes on one core: pentagon + WᵀW (4 s), the sparsity sweep (n = 40, m = 8, 24 densities), the
phase diagram (15 × 15 cells), the capacity curve (±10°), the AND neuron. The 10,000 × 100 angle
histogram comes from ``toy_orthogonal.py --png``.
"""

from __future__ import annotations

import time
from pathlib import Path

from _common import ROOT, emit

OUT = ROOT / "docs" / "superposition"


def main() -> None:
    import torch

    from mechscope.labs.superposition import figures, memory
    from mechscope.labs.superposition.capacity import capacity_curve
    from mechscope.labs.superposition.config import ToyConfig
    from mechscope.labs.superposition.geometry import summarize
    from mechscope.labs.superposition.sweep import phase_diagram, sparsity_sweep
    from mechscope.labs.superposition.toy import train

    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    values: dict = {}
    t = time.perf_counter()
    models = train(ToyConfig())
    figures.plot_directions(models.W, OUT / "pentagon.png", models.importance)
    figures.plot_wtw(models.W, models.b, OUT / "wtw.png")
    values["pentagon"] = {"instances": summarize(models.W), "seconds": round(models.seconds, 2)}
    sweep = sparsity_sweep(n=40, m=8, steps=3000)
    figures.plot_dimensionality(sweep, OUT / "dimensionality.png")
    values["sweep_d_star"] = [round(x, 3) for x in sweep.d_star.tolist()]
    phase = phase_diagram()
    figures.plot_phase(phase, OUT / "phase.png")
    values["phase_counts"] = torch.bincount(phase.phase.flatten(), minlength=3).tolist()
    curve = capacity_curve(dims=(2, 4, 8, 16, 32), eps_deg=10.0, steps=200, n_max=2048)
    figures.plot_capacity(curve, OUT / "capacity.png")
    values["capacity"] = curve.to_dict()
    memory.plot(OUT / "and_neuron.png")
    values["seconds"] = round(time.perf_counter() - t, 1)
    emit("toy_figures", values=values, files=sorted(str(p.relative_to(ROOT)) for p in Path(OUT).glob("*.png")))


if __name__ == "__main__":
    main()
