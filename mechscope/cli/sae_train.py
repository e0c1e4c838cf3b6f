"""``mechscope sae train``: train SAEs (or transcoders) from a store or straight from the model."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechscope.cli.common import add_json_arg, add_model_arg, add_parser, emit_json, load_model

EXAMPLES = """\
  mechscope sae train --store runs/acts-l6 --arch topk --width 4096 --k 32 --out runs/sae-l6
  mechscope sae train --hook blocks.6.hook_resid_post --tokens 200000 --out runs/sae-l6     # from the model, no store
  mechscope sae train --store runs/acts-l6 --width 1024,4096,16384 --k 32 --out runs/widths   # several SAEs, one pass
  mechscope sae train --store runs/acts-mlp6 --hook blocks.6.ln2.hook_normalized --target blocks.6.hook_mlp_out \\
      --transcoder --skip --out runs/tc-l6                                                 # a skip transcoder
  torchrun --nproc_per_node 2 -m mechscope sae train --store runs/acts-l6 --out runs/sae-l6   # data parallel
Killed? Run the same command again: it resumes from OUT.checkpoint, bit for bit."""


def _ints(text: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return vals


def register(actions) -> None:
    from mechscope.cli.config_args import add_config_args
    from mechscope.data.corpus import CorpusConfig
    from mechscope.sae.config import SAEConfig, SAETrainConfig

    p = add_parser(actions, "train", "Train sparse autoencoders (TopK, BatchTopK, JumpReLU, ReLU) or transcoders on "
                   "activations from a store or streamed from the model; several widths/k in one pass.", EXAMPLES)  # fmt: skip
    src = p.add_argument_group("activations")
    src.add_argument("--store", type=Path, help="an activation store (`mechscope sae harvest`); else stream from --model")
    src.add_argument("--hook", help="input hook (default: the store's only hook; required without --store)")
    src.add_argument("--target", help="hook to reconstruct, for transcoders (default: --hook)")
    src.add_argument("--forward-dtype", choices=("float32", "bfloat16"), default="float32",
                     help="without --store: the model's matmul precision (bfloat16 autocast: faster on AMX / "
                          "AVX-512-BF16 CPUs and CUDA; activations carry bf16 rounding)")  # fmt: skip
    add_config_args(src, CorpusConfig, skip=("heldout_fraction",), rename={"sources": "--corpus"},
                    help={"sources": "without --store: 'builtin' (default) or text files/globs; repeatable"})  # fmt: skip
    arch = p.add_argument_group("SAE")
    arch.add_argument("--width", type=_ints, default=[4096], help="latents; comma-separated for several SAEs (default: 4096)")
    arch.add_argument("--k", type=_ints, default=[32], help="active latents per token (topk, batchtopk); comma-separated (default: 32)")
    add_config_args(arch, SAEConfig, skip=("d_in", "d_out", "width", "k"))
    train = p.add_argument_group("training")
    add_config_args(train, SAETrainConfig)
    p.add_argument("--out", type=Path, required=True, help="SAE folder (several SAEs: OUT/<arch>-<width>-k<k>)")
    p.add_argument("--fresh", action="store_true", help="delete OUT.checkpoint and start from step 0")
    p.add_argument("--force", action="store_true", help="write into a folder that holds other files (they are kept)")
    add_model_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mechscope.cli.common_dist import init_distributed
    from mechscope.cli.config_args import config_from_args
    from mechscope.data.corpus import CorpusConfig
    from mechscope.errors import ConfigError
    from mechscope.io import check_output_dir
    from mechscope.sae.config import SAEConfig, SAETrainConfig
    from mechscope.sae.train import ModelSource, StoreSource, train_saes

    tc = config_from_args(SAETrainConfig, args)
    base = config_from_args(SAEConfig, args, d_in=1, d_out=None, width=max(args.width), k=min(args.k))
    combos = [(w, k) for w in args.width for k in (args.k if base.arch in ("topk", "batchtopk") else args.k[:1])]
    for w, k in combos:  # validate every combination before any work
        SAEConfig(**{**base.to_dict(), "width": w, "k": k})
    if len(combos) == 1:
        outs = [args.out]
    else:
        outs = [args.out / SAEConfig(**{**base.to_dict(), "width": w, "k": k}).label() for w, k in combos]
    for o in outs:
        check_output_dir(o, "sae", force=args.force)
    if args.store is not None:
        from mechscope.sae.store import ActivationStore

        store = ActivationStore(args.store)
        hook = args.hook or (store.hooks[0] if len(store.hooks) == 1 else None)
        if hook is None:
            raise ConfigError(f"the store holds {', '.join(store.hooks)}: choose one with --hook")
        source = StoreSource(store, hook, args.target)
        store.check_hook(hook)
        if args.target:
            store.check_hook(args.target)
    else:
        if not args.hook:
            raise ConfigError("give --store, or --hook to stream activations from the model")
        model = load_model(args)
        hook = model.spec(args.hook).name
        target = model.spec(args.target).name if args.target else None
        source = ModelSource(model, hook, target, config_from_args(CorpusConfig, args), forward_dtype=args.forward_dtype)
    d_in, d_out = source.dims()
    cfgs = [SAEConfig(**{**base.to_dict(), "width": w, "k": k, "d_in": d_in,
                         "d_out": d_out if d_out != d_in or base.transcoder else None}) for w, k in combos]  # fmt: skip
    from mechscope.runtime import resolve_device

    device = source.model.device if isinstance(source, ModelSource) else resolve_device(args.device)
    with init_distributed() as (rank, _world):
        if device.type == "cuda" and _world > 1:  # one GPU per rank
            import torch

            device = torch.device("cuda", rank % torch.cuda.device_count())
        results = train_saes(source, cfgs, tc, outs, progress=not args.json, fresh=args.fresh, force=args.force,
                             device=device)  # fmt: skip
    if rank != 0:
        return 0
    rows = [{"sae": r.sae.cfg.label(), "path": str(r.path), "tokens": r.tokens, "seconds": round(r.seconds, 1),
             "tokens_per_s": round(r.tokens / max(r.seconds, 1e-9)), **(r.history[-1] if r.history else {})}
            for r in results]  # fmt: skip
    if args.json:
        emit_json({"hook": source.hook, "target": source.target or source.hook, "positions": "all but BOS"
                   if tc.skip_bos else "all", "saes": rows})  # fmt: skip
        return 0
    print(f"{'SAE':<22} {'FVU':>7} {'L0':>7} {'dead':>7} {'tok/s':>8}  folder")
    for r in rows:
        print(f"{r['sae']:<22} {r.get('fvu', float('nan')):7.4f} {r.get('l0', float('nan')):7.1f} "
              f"{r.get('dead_fraction', float('nan')):7.1%} {r['tokens_per_s']:8,}  {r['path']}")  # fmt: skip
    print(f"(training batches, {'BOS left out' if tc.skip_bos else 'all positions'}; `mechscope sae eval` for held-out "
          "FVU and loss recovered)")  # fmt: skip
    return 0
