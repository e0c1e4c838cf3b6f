"""``mechscope grok``: the grokking lab (train, analyze, figures) for modular arithmetic."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from mechscope.cli.common import add_json_arg, add_parser, emit_json

TRAIN_EXAMPLES = """\
  mechscope grok train --out runs/grok                 # the paper's recipe, seed 0, 40k epochs
  mechscope grok train --out runs/grok-fast --recipe fast
  mechscope grok train --out runs/grok-4 --seeds 4     # seeds 0..3 stacked in one process
  mechscope grok train --out runs/sub --operation subtract --p 97 --frac 0.4
  mechscope grok train --out runs/grok                 # after a kill: resumes where it stopped
"""

ANALYZE_EXAMPLES = """\
  mechscope grok analyze runs/grok
  mechscope grok analyze runs/grok --json
  mechscope grok analyze runs/grok-4 --seed 2
"""

THREADS_HELP = (
    "torch CPU threads. Default 1: on a shared 2-core machine two OpenMP threads stall on each other "
    "(a training step measured 5x slower than on one thread); try 2 on an idle machine"
)

FIGURES_EXAMPLES = """\
  mechscope grok figures runs/grok                     # PNGs + GIF into runs/grok/seed_0/figures
  mechscope grok figures runs/grok --out /tmp/figs --no-animation
"""


def register(subparsers) -> None:
    parser = add_parser(
        subparsers,
        "grok",
        "grokking lab: train, reverse-engineer and watch a one-layer transformer learn modular addition",
        "  mechscope grok train --out runs/grok-fast --recipe fast\n"
        "  mechscope grok analyze runs/grok-fast --json\n"
        "  mechscope grok figures runs/grok-fast",
    )
    sub = parser.add_subparsers(dest="grok_command", metavar="SUBCOMMAND")
    sub.required = True

    train = add_parser(sub, "train", "train (or resume) a run; writes >= 200 checkpoints", TRAIN_EXAMPLES)
    train.add_argument("--out", required=True, type=Path, help="run directory (created, or resumed if it holds a run)")
    train.add_argument("--recipe", choices=("paper", "fast"), default=None,
                       help="paper: Nanda et al. 2023; fast: weight decay 5, 2,000 epochs. "
                            "None: paper for a new run, the saved one on resume")  # fmt: skip
    train.add_argument("--seed", type=int, default=None,
                       help="first seed (data split and initialisation). None: 0, or the saved value on resume")  # fmt: skip
    train.add_argument("--seeds", type=int, default=None,
                       help="number of seeds trained together in one process. None: 1, or the saved value")  # fmt: skip
    train.add_argument("--epochs", type=int, default=None, help="full-batch steps. None: the recipe's (40000 paper, 2000 fast)")
    train.add_argument("--p", type=int, default=None, help="modulus. None: 113")
    train.add_argument("--frac", type=float, default=None, help="fraction of pairs used for training, in (0, 1). None: 0.3")
    train.add_argument("--operation", choices=("add", "subtract", "multiply"), default=None, help="None: add")
    train.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, or auto (CUDA if present)")
    train.add_argument("--threads", type=int, default=None,
                       help="CPU threads. One seed: torch threads (default 1: on a shared 2-core machine two "
                            "OpenMP threads stalled each other, 5x slower). Several seeds: seeds trained at "
                            "once, one thread each, bit-identical to training each alone (default: the "
                            "number of cores)")  # fmt: skip
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_arg(train)
    train.set_defaults(func=_train)

    analyze = add_parser(sub, "analyze", "Fourier mechanism, progress measures and phases of a run", ANALYZE_EXAMPLES)
    analyze.add_argument("dir", type=Path, help="run directory written by `mechscope grok train`")
    analyze.add_argument("--seed", type=int, default=None, help="which seed of a multi-seed run (default: the first)")
    analyze.add_argument("--recompute", action="store_true", help="ignore a saved analysis")
    analyze.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    analyze.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_arg(analyze)
    analyze.set_defaults(func=_analyze)

    figures = add_parser(sub, "figures", "PNG figures and an animation of a run (analyzes it first if needed)", FIGURES_EXAMPLES)
    figures.add_argument("dir", type=Path, help="run directory written by `mechscope grok train`")
    figures.add_argument("--seed", type=int, default=None, help="which seed of a multi-seed run (default: the first)")
    figures.add_argument("--out", type=Path, default=None, help="output folder (default DIR/seed_<S>/figures)")
    figures.add_argument("--no-animation", action="store_true", help="skip the GIF (the slowest figure)")
    figures.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    figures.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_arg(figures)
    figures.set_defaults(func=_figures)


def _check_threads(threads: int | None) -> None:
    from mechscope.errors import ConfigError

    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")


def _train(args: argparse.Namespace) -> int:
    from mechscope.labs.grokking.config import GrokConfig, GrokModelConfig
    from mechscope.labs.grokking.rundir import CONFIG_FILE, load_config
    from mechscope.labs.grokking.train import train
    from mechscope.runtime import cpu_threads, resolve_device

    _check_threads(args.threads)
    seed_workers = args.threads if args.threads is not None else (os.cpu_count() or 1)
    overrides = {
        "seed": args.seed, "n_seeds": args.seeds, "epochs": args.epochs,
        "frac_train": args.frac, "operation": args.operation,
    }  # fmt: skip
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.p is not None:
        overrides["model"] = GrokModelConfig(p=args.p)
    if (args.out / CONFIG_FILE).exists() and args.recipe is None:
        # re-running on a run directory resumes it; flags, if given, must match the saved config
        cfg = dataclasses.replace(load_config(args.out), **overrides) if overrides else None
    else:
        cfg = GrokConfig.from_recipe(args.recipe or "paper", **overrides)
    device = resolve_device(args.device)
    with cpu_threads(1 if args.threads is None else args.threads):
        summary = train(cfg, args.out, device=device, progress=not args.quiet, seed_workers=seed_workers)
    if args.json:
        emit_json(summary.to_dict())
    else:
        for i, seed in enumerate(summary.seeds):
            reach = summary.epoch_test_acc_99[i]
            reached = (
                f"test acc >= 99% at epoch {reach} ({summary.wall_s_test_acc_99[i]:.0f} s)"
                if reach is not None
                else "test acc never reached 99%"
            )
            print(
                f"seed {seed}: {summary.epochs} epochs, train acc {100 * summary.final_train_acc[i]:.1f}%, "
                f"test acc {100 * summary.final_test_acc[i]:.2f}%, {reached}"
            )
        print(f"{summary.wall_s:.0f} s in all ({1000 * summary.s_per_epoch:.1f} ms/epoch this session); run in {summary.dir}")
        print(f"next: mechscope grok analyze {summary.dir}")
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from mechscope.labs.grokking.analyze import analyze
    from mechscope.runtime import cpu_threads

    _check_threads(args.threads)
    with cpu_threads(args.threads):
        result = analyze(args.dir, seed=args.seed, progress=not args.quiet, reuse=not args.recompute)
    s, d = result.summary, result.details
    if args.json:
        emit_json(s)
        return 0
    ph = s["phases"]

    def fmt(x, spec=".3g"):
        return "-" if x is None else format(x, spec)

    probe, wl = d["probe"], d["W_L_key_fraction"]
    rows = [
        ("run", f"{args.dir} (seed {result.run.seed}, {result.run.config.recipe} recipe, "
                f"{d['final_epoch']} epochs, {d['n_checkpoints']} checkpoints)"),
        ("final train / test accuracy", f"{100 * s['final_train_acc']:.2f}% / {100 * s['final_test_acc']:.2f}%"),
        ("final test loss", fmt(s["test_loss_final"])),
        ("train acc >= 99% at epoch", fmt(s["epoch_train_acc_99"], "d")),
        ("test acc >= 99% at epoch", fmt(s["epoch_test_acc_99"], "d")),
        ("key frequencies", ", ".join(map(str, s["key_frequencies"])) or "none"),
        ("neurons with FVE > 0.85", f"{100 * s['neuron_fve_fraction_085']:.1f}% "
                                    f"({100 * d['neuron_fve_fraction_085_variance_weighted']:.1f}% of neuron variance)"),
        ("W_L norm in key frequencies", f"{100 * wl:.1f}%" if wl is not None else "-"),
        ("restricted / excluded loss (final)", f"{fmt(s['restricted_loss_final'])} / {fmt(s['excluded_loss_final'])}"),
        ("phases (epochs)", f"memorisation 0-{ph['memorisation_end']}, circuit formation -{ph['circuit_formation_end']}, "
                            f"cleanup -{ph['cleanup_end']}"),
        ("probe (frequency k)", f"k={probe['frequency']}: R^2 {probe['r2']:.3f} (cv {probe['r2_cv']:.3f}), "
                                f"dims cos {probe['kept_dims_cos']} sin {probe['kept_dims_sin']}"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


def _figures(args: argparse.Namespace) -> int:
    from mechscope.labs.grokking.figures import write_figures
    from mechscope.runtime import cpu_threads

    _check_threads(args.threads)
    with cpu_threads(args.threads):
        paths = write_figures(args.dir, seed=args.seed, out_dir=args.out, animation=not args.no_animation,
                              progress=not args.quiet)  # fmt: skip
    if args.json:
        emit_json({"figures": [str(p) for p in paths]})
    else:
        for path in paths:
            print(path)
    return 0

