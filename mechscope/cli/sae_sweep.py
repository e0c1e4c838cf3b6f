"""``mechscope sae sweep``: SAEs of several widths at the same k, trained in one pass, evaluated, and
their latents matched across widths (feature splitting)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechscope.cli.common import add_json_arg, add_model_arg, add_parser, emit_json, load_model

EXAMPLES = """\
  mechscope sae sweep --hook blocks.6.hook_resid_post --widths 512,2048 --tokens 50000 --out runs/sweep-l6 --png
  mechscope sae sweep --store runs/acts-l6 --widths 1024,4096,16384 --k 32 --out runs/sweep-l6 --json
  mechscope sae sweep --store runs/acts-l6 --widths 1024,4096 --eval-tokens 32768 --threshold 0.7 --out runs/sweep-l6
Writes OUT/<arch>-<width>-k<k>/ (one SAE each), OUT/sweep.json and, with --png, OUT/sweep.png.
Killed? Run the same command again: training resumes from its checkpoint."""


def _widths(text: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    return vals


def register(actions) -> None:
    from mechscope.cli.config_args import add_config_args
    from mechscope.data.corpus import CorpusConfig
    from mechscope.sae.config import SAETrainConfig

    p = add_parser(actions, "sweep",
                   "Train SAEs of several widths at matched L0 (the same k) in one pass over the same activations, "
                   "evaluate each on held-out text (L0, FVU, dead, loss recovered), and match latents across widths "
                   "by decoder cosine: how many split into two or more children in the next width.",
                   EXAMPLES)  # fmt: skip
    src = p.add_argument_group("activations")
    src.add_argument("--store", type=Path, help="an activation store (`mechscope sae harvest`); else stream from --model")
    src.add_argument("--hook", help="input hook (default: the store's only hook; required without --store)")
    src.add_argument("--target", help="hook to reconstruct, for transcoders (default: --hook)")
    add_config_args(src, CorpusConfig, skip=("heldout_fraction",), rename={"sources": "--corpus"},
                    help={"sources": "training text without --store, and held-out text for the evaluation (default: "
                                     "builtin, or the store's corpus); repeatable"})  # fmt: skip
    sae = p.add_argument_group("SAEs")
    sae.add_argument("--widths", type=_widths, default=[1024, 4096, 16384], help="comma-separated latent counts (default: 1024,4096,16384)")
    sae.add_argument("--k", type=int, default=32, help="active latents per token, the same for every width (default: 32)")
    sae.add_argument("--arch", choices=("topk", "batchtopk"), default="topk", help="architecture (L0 matched through k)")
    add_config_args(p.add_argument_group("training"), SAETrainConfig)
    ev = p.add_argument_group("evaluation and matching")
    ev.add_argument("--eval-tokens", type=int, default=8192, help="held-out tokens for the evaluation (default: 8192)")
    ev.add_argument("--threshold", type=float, default=0.6,
                    help="decoder cosine above which a larger latent is a child of its best-matching smaller one (default: 0.6)")
    p.add_argument("--out", type=Path, required=True, help="sweep folder: one SAE folder per width, sweep.json, sweep.png")
    p.add_argument("--png", action="store_true", help="also draw OUT/sweep.png")
    p.add_argument("--fresh", action="store_true", help="start training from step 0 (delete the checkpoint)")
    p.add_argument("--force", action="store_true", help="write into a folder that holds other files (they are kept)")
    add_model_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mechscope.cli.config_args import config_from_args
    from mechscope.data.corpus import CorpusConfig
    from mechscope.errors import ConfigError
    from mechscope.sae.config import SAETrainConfig
    from mechscope.sae.evaluate import SAEEvalConfig
    from mechscope.sae.sweep import check_sweep_dir, sweep, sweep_configs
    from mechscope.sae.train import ModelSource, StoreSource

    tc = config_from_args(SAETrainConfig, args)
    if not -1 <= args.threshold <= 1:
        raise ConfigError(f"--threshold is a cosine, between -1 and 1; got {args.threshold}")
    probe = sweep_configs(args.widths, 1, 1, arch=args.arch, k=args.k)  # validate before any work
    check_sweep_dir(args.out, [c.label() for c in probe], force=args.force)
    model = load_model(args)
    store = None
    if args.store is not None:
        from mechscope.sae.store import ActivationStore

        store = ActivationStore(args.store, model)
        hook = args.hook or (store.hooks[0] if len(store.hooks) == 1 else None)
        if hook is None:
            raise ConfigError(f"the store holds {', '.join(store.hooks)}: choose one with --hook")
    elif not args.hook:
        raise ConfigError("give --store, or --hook to stream activations from the model")
    hook = model.spec(args.hook or hook).name
    target = model.spec(args.target).name if args.target else None
    corpus = config_from_args(CorpusConfig, args, store.config.corpus if store is not None else None)
    source = StoreSource(store, hook, target) if store is not None else ModelSource(model, hook, target, corpus)
    d_in, d_out = source.dims()
    transcoder = target is not None and target != hook
    cfgs = sweep_configs(args.widths, d_in, d_out, arch=args.arch, k=args.k, transcoder=transcoder)
    eval_cfg = SAEEvalConfig(tokens=args.eval_tokens, corpus=corpus)
    res = sweep(model, source, cfgs, tc, eval_cfg, args.out, threshold=args.threshold, png=args.png,
                progress=not args.json, force=args.force, fresh=args.fresh)  # fmt: skip
    out = Path(args.out).expanduser()
    files = [str(out / "sweep.json")] + ([str(out / "sweep.png")] if args.png else [])
    if args.json:
        emit_json({**res.to_dict(), "model": model.name, "out": str(out), "files": files})
        return 0
    print(res.table())
    print("\n".join(f"wrote {f}" for f in files))
    return 0
