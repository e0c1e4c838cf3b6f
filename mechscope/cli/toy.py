"""``mechscope toy``: the superposition lab (toy models of superposition, near-orthogonal vectors, the MLP
as a fact memory). Flags come from :class:`~mechscope.labs.superposition.config.ToyConfig` and
:class:`~mechscope.labs.superposition.config.OrthoConfig`, so defaults live there."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechscope.cli.common import add_json_arg, add_model_arg, add_parser, emit_json

SUPERPOSITION_EXAMPLES = """\
  mechscope toy superposition                          # n=5 features in m=2 dims, density 0.05: pentagons (~2 s)
  mechscope toy superposition --png pentagon.png --heatmap wtw.png
  mechscope toy superposition --n 20 --m 5 --density 0.01 --instances 8 --json
"""
ORTHOGONAL_EXAMPLES = """\
  mechscope toy orthogonal                             # 10,000 vectors in 100 dims, both losses (~40 s on 2 cores)
  mechscope toy orthogonal --n 2000 --dim 50 --png angles.png --json
  mechscope toy orthogonal --n 2000 --dim 50 --capacity capacity.png --eps 10
"""
MEMORY_EXAMPLES = """\
  mechscope toy memory                                 # the hand-built AND neuron
  mechscope toy memory --png and_neuron.png
  mechscope toy memory --gemma                         # plus a plain probe of Gemma 3 270M's MLP neurons
"""
THREADS_HELP = "torch CPU threads (default: torch's own choice)"


def register(subparsers) -> None:
    from mechscope.cli.config_args import add_config_args
    from mechscope.labs.superposition.config import OrthoConfig, ToyConfig

    parser = add_parser(subparsers, "toy", "superposition lab: toy models of superposition, near-orthogonal vectors, "
                        "the MLP as a fact memory",
                        SUPERPOSITION_EXAMPLES.splitlines()[0] + "\n" + ORTHOGONAL_EXAMPLES.splitlines()[0] + "\n"
                        + MEMORY_EXAMPLES.splitlines()[0])  # fmt: skip
    sub = parser.add_subparsers(dest="toy_command", metavar="SUBCOMMAND")
    sub.required = True

    s = add_parser(sub, "superposition", "train toy models x' = ReLU(WᵀWx + b) and measure their geometry",
                   SUPERPOSITION_EXAMPLES)  # fmt: skip
    add_config_args(s, ToyConfig)
    s.add_argument("--png", type=Path, help="feature directions per instance (m = 2), else WᵀW heatmaps")
    s.add_argument("--heatmap", type=Path, help="WᵀW and bias heatmaps of the first four instances")
    s.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_arg(s)
    s.set_defaults(func=_superposition)

    o = add_parser(sub, "orthogonal", "random and optimised sets of nearly perpendicular vectors, honestly measured",
                   ORTHOGONAL_EXAMPLES)  # fmt: skip
    add_config_args(o, OrthoConfig)
    o.add_argument("--png", type=Path, help="angle histograms (log counts: the tail shows)")
    o.add_argument("--capacity", type=Path, help="capacity against dimension beside the Welch and JL bounds")
    o.add_argument("--eps", type=float, default=5.0, help="tolerance of the capacity curve: within ±EPS° of 90°")
    o.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_arg(o)
    o.set_defaults(func=_orthogonal)

    r = add_parser(sub, "sae-recovery", "train SAEs on toy models' hidden activations and grade them against the known "
                   "features: recovery falls as features per dimension grow",
                   "  mechscope toy sae-recovery                     # m = 8, n/m = 1..16, ~2 min\n"
                   "  mechscope toy sae-recovery --arch jumprelu --ratio 2 --ratio 8 --png recovery.png --json")  # fmt: skip
    from mechscope.labs.superposition.config import RecoveryConfig

    add_config_args(r, RecoveryConfig, rename={"ratios": "--ratio"},
                    help={"ratios": "features per hidden dimension (n = ratio · m); repeatable"})  # fmt: skip
    r.add_argument("--png", type=Path, help="recovery against features per dimension, every feature's best cosine")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    add_json_arg(r)
    r.set_defaults(func=_recovery)

    m = add_parser(sub, "memory", "the MLP as a fact memory: a hand-built AND neuron (Michael Jordan → basketball)",
                   MEMORY_EXAMPLES)  # fmt: skip
    m.add_argument("--png", type=Path, help="draw the neuron and what it adds per prompt")
    m.add_argument("--gemma", action="store_true",
                   help="also rank Gemma's MLP neurons by direct logit attribution to ' basketball' at ' Jordan' "
                        "(norms frozen from the run; direct effects only)")  # fmt: skip
    add_model_arg(m)
    add_json_arg(m)
    m.set_defaults(func=_memory)


def _check_png(*paths: Path | None) -> None:
    from mechscope.io import check_output_file

    for path in paths:
        if path is not None:
            check_output_file(path, suffixes=(".png",))


def _superposition(args: argparse.Namespace) -> int:
    from mechscope.cli.config_args import config_from_args
    from mechscope.labs.superposition import figures
    from mechscope.labs.superposition.config import ToyConfig
    from mechscope.labs.superposition.report import toy_report
    from mechscope.runtime import cpu_threads

    cfg = config_from_args(ToyConfig, args)
    _check_png(args.png, args.heatmap)
    with cpu_threads(args.threads):
        report = toy_report(cfg, progress=not args.quiet and not args.json)
    models, instances = report.models, report.instances
    files = []
    if args.png:
        if cfg.m == 2:
            files.append(figures.plot_directions(models.W, args.png, models.importance))
        else:
            files.append(figures.plot_wtw(models.W, models.b, args.png))
    if args.heatmap:
        files.append(figures.plot_wtw(models.W, models.b, args.heatmap))
    if args.json:
        emit_json({**report.to_dict(), "files": [str(f) for f in files]})
        return 0
    print(f"{cfg.instances} toy models, n={cfg.n} features in m={cfg.m} dims, density {cfg.density:g}, "
          f"importance {cfg.importance:g}^i, {cfg.steps} steps in {models.seconds:.1f} s")  # fmt: skip
    for k, inst in enumerate(instances):
        norms = " ".join(f"{v:.2f}" for v in inst["norms"])
        line = f"  instance {k}: D* {inst['d_star']:.3f}, loss {inst['loss']:.4f}, norms [{norms}]"
        if inst["angles_deg"]:
            line += ", adjacent angles [" + " ".join(f"{a:.0f}°" for a in inst["angles_deg"]) + "]"
        print(line)
    for f in files:
        print(f)
    return 0


def _orthogonal(args: argparse.Namespace) -> int:
    from mechscope.cli.config_args import config_from_args
    from mechscope.errors import ConfigError
    from mechscope.labs.superposition import figures
    from mechscope.labs.superposition.config import OrthoConfig
    from mechscope.labs.superposition.report import orthogonal_report
    from mechscope.runtime import cpu_threads

    cfg = config_from_args(OrthoConfig, args)
    if not 0 < args.eps < 90:
        raise ConfigError(f"--eps must lie strictly between 0 and 90 degrees, got {args.eps}")
    _check_png(args.png, args.capacity)
    with cpu_threads(args.threads):
        report = orthogonal_report(cfg, progress=not args.quiet and not args.json)
        random_stats, runs = report.random, report.runs
        files = []
        if args.png:
            files.append(figures.plot_angles(random_stats, runs, args.png, cfg.n, cfg.dim))
        if args.capacity:
            from mechscope.labs.superposition.capacity import capacity_curve

            files.append(figures.plot_capacity(capacity_curve(eps_deg=args.eps), args.capacity))
    welch = report.welch
    if args.json:
        emit_json({**report.to_dict(), "files": [str(f) for f in files]})
        return 0
    import math

    print(f"{cfg.n:,} unit vectors in {cfg.dim} dims ({cfg.steps} full-batch Adam steps per loss). "
          f"Welch bound: max |cos| >= {welch:.4f} (min angle <= {math.degrees(math.acos(welch)):.1f}°) for any set")  # fmt: skip
    print(f"  {'set':<8} {'min angle':>10} {'max angle':>10} {'max |cos|':>10} {'89-91°':>8} {'rms cos':>8} {'time':>7}")
    rows = [("random", random_stats, None)] + [(r.loss, r.stats, r.seconds) for r in runs]
    for name, st, sec in rows:
        print(f"  {name:<8} {st.min_angle_deg:>9.1f}° {st.max_angle_deg:>9.1f}° {st.max_abs_cos:>10.4f} "
              f"{100 * st.frac_within_89_91:>7.1f}% {st.rms_cos:>8.4f} {'' if sec is None else f'{sec:.1f} s':>7}")  # fmt: skip
    for f in files:
        print(f)
    return 0


def _recovery(args: argparse.Namespace) -> int:
    from mechscope.cli.config_args import config_from_args
    from mechscope.labs.superposition.config import RecoveryConfig
    from mechscope.labs.superposition.recovery import plot, recover

    cfg = config_from_args(RecoveryConfig, args)
    _check_png(args.png)
    rec = recover(cfg, progress=not (args.quiet or args.json))
    files = [str(plot(rec, args.png))] if args.png else []
    if args.json:
        emit_json({**rec.to_dict(), "files": files})
        return 0
    print(f"{cfg.arch} SAEs ({cfg.width_factor} latents per feature) on toy models with m = {cfg.m} hidden dimensions, "
          f"feature density {cfg.density}: best cosine of each represented feature with an SAE latent")  # fmt: skip
    print(rec.table())
    for f in files:
        print(f"wrote {f}")
    return 0


def _memory(args: argparse.Namespace) -> int:
    from mechscope.labs.superposition.memory import gemma_basketball_neurons, plot
    from mechscope.labs.superposition.report import memory_report

    _check_png(args.png)
    report = memory_report()
    rows = report.rows
    files = [plot(args.png)] if args.png else []
    hits = None
    if args.gemma:
        from mechscope.cli.common import load_model

        hits = gemma_basketball_neurons(load_model(args))
    if args.json:
        out = {**report.to_dict(), "files": [str(f) for f in files]}
        if hits is not None:
            out["gemma"] = [vars(h) for h in hits]
        emit_json(out)
        return 0
    print("AND neuron: pre = (e_Michael + e_Jordan)·x - 1, post = ReLU(pre), writes post · e_basketball")
    for r in rows:
        print(f"  {r['prompt']:<15} pre {r['pre']:+.1f}  post {r['post']:.1f}  basketball added {r['basketball']:.1f}")
    if hits is not None:
        print("Gemma: neurons at ' Jordan' ranked by direct logit attribution to ' basketball' "
              "(norms frozen from the run; direct effects only)")  # fmt: skip
        for h in hits:
            print(f"  L{h.layer} N{h.neuron:<5} activation {h.activation:+.2f}  effect {h.effect:+.3f}")
    for f in files:
        print(f)
    return 0
