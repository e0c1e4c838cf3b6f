"""The superposition section of ``mechscope tour``: the pentagon, and the honest orthogonality numbers.

Fast (a few seconds on one core): the toy models are the defaults (n = 5, m = 2, density 0.05, four
instances); the vector sets are 2,000 × 100 rather than the video's 10,000 × 100 (``mechscope toy
orthogonal`` runs the full size in under a minute).
"""

from __future__ import annotations

import math
import pathlib

TOUR_N, TOUR_DIM, TOUR_STEPS = 2_000, 100, 40


def tour(out_dir: pathlib.Path) -> list[str]:
    """Train the pentagon toy models and two optimised vector sets; write two PNGs into ``out_dir``;
    return the lines to print."""
    from mechscope.labs.superposition import figures
    from mechscope.labs.superposition.capacity import welch_capacity
    from mechscope.labs.superposition.config import OrthoConfig, ToyConfig
    from mechscope.labs.superposition.geometry import is_regular_polygon, summarize
    from mechscope.labs.superposition.orthogonal import run, welch_bound
    from mechscope.labs.superposition.toy import train
    from mechscope.runtime import cpu_threads

    out_dir = pathlib.Path(out_dir)
    cfg = ToyConfig()
    with cpu_threads(1):
        models = train(cfg)
        ortho = OrthoConfig(n=TOUR_N, dim=TOUR_DIM, steps=TOUR_STEPS)
        random_stats, runs = run(ortho)
    pentagon = figures.plot_directions(models.W, out_dir / "superposition_pentagon.png", models.importance)
    angles_png = figures.plot_angles(random_stats, runs, out_dir / "superposition_angles.png", ortho.n, ortho.dim)
    inst = summarize(models.W)
    n_pent = sum(is_regular_polygon(models.W[i], 5) for i in range(cfg.instances))
    first = next((s for s in inst if len(s["angles_deg"]) == 5), inst[0])
    by = {r.loss: r.stats for r in runs}
    welch = welch_bound(ortho.n, ortho.dim)

    def row(name, st):
        return (f"    {name:<7} min {st.min_angle_deg:5.1f}°, max {st.max_angle_deg:5.1f}°, "
                f"{100 * st.frac_within_89_91:4.1f}% of pairs within 89–91°")  # fmt: skip

    return [
        f"Superposition lab: {cfg.n} features in {cfg.m} dimensions (density {cfg.density:g}, importance "
        f"{cfg.importance:g}^i): {n_pent} of {cfg.instances} toy models store all five as a pentagon "
        f"(adjacent angles {', '.join(f'{a:.0f}°' for a in first['angles_deg'])}; D* = {first['d_star']:.2f} "
        f"dims per feature) in {models.seconds:.1f} s",
        f"  {ortho.n:,} vectors in {ortho.dim} dims, every pair counted (3Blue1Brown's demo uses 10,000):",
        row("random", random_stats),
        row("3b1b", by["3b1b"]) + " (the video's loss: a narrow peak, a long tail)",
        row("maxcos", by["maxcos"]) + " (targets the worst pair)",
        f"    no set can do better than min {math.degrees(math.acos(welch)):.1f}° (Welch bound); at most "
        f"{welch_capacity(ortho.dim, 1.0):.0f} vectors in {ortho.dim} dims can be pairwise within 89–91°",
        f"  pictures: {pentagon} (the pentagon), {angles_png} (angle histograms)",
        "  more: mechscope toy superposition --help, mechscope toy orthogonal --help, mechscope toy memory",
    ]
