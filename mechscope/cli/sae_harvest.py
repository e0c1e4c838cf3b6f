"""``mechscope sae harvest``: record a model's activations at some hooks over a corpus into a store."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechscope.cli.common import add_json_arg, add_model_arg, add_parser, emit_json, load_model

EXAMPLES = """\
  mechscope sae harvest --hook blocks.6.hook_resid_post --tokens 200000 --out runs/acts-l6        # ~1.5 min on 2 cores
  mechscope sae harvest --hook blocks.6.ln2.hook_normalized --hook blocks.6.hook_mlp_out --out runs/acts-mlp6
  mechscope sae harvest --hook blocks.6.hook_resid_post --corpus 'notes/*.txt' --dtype bfloat16 --out runs/acts
  torchrun --nproc_per_node 2 -m mechscope sae harvest --hook blocks.6.hook_resid_post --out runs/acts   # sharded by rank
Killed? Run the same command again: it resumes, with no token missing or repeated."""


def register(actions) -> None:
    from mechscope.cli.config_args import add_config_args
    from mechscope.sae.config import HarvestConfig

    p = add_parser(actions, "harvest", "Run the model over a corpus and store its activations at one or more hooks "
                   "(sharded safetensors + manifest; resumable).", EXAMPLES)  # fmt: skip
    add_config_args(p, HarvestConfig, skip=("heldout_fraction",), rename={"hooks": "--hook", "sources": "--corpus"},
                    help={"hooks": "hook to record, e.g. blocks.6.hook_resid_post (`mechscope info` lists them); repeatable",
                          "sources": "'builtin' (offline, default) or .txt/.jsonl/.parquet files, directories, globs; repeatable"})  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="store folder (created; an interrupted store there is resumed)")
    p.add_argument("--force", action="store_true", help="write into a folder that holds other files (they are kept)")
    add_model_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mechscope.cli.config_args import config_from_args
    from mechscope.io import check_output_dir
    from mechscope.sae.store import KIND, HarvestConfig, harvest

    cfg = config_from_args(HarvestConfig, args)
    check_output_dir(args.out, KIND, force=args.force)
    model = load_model(args)
    from mechscope.cli.common_dist import init_distributed

    with init_distributed():
        store = harvest(model, cfg, args.out, progress=not args.json, force=args.force)
    summary = {"store": str(store.path), "hooks": store.hooks, "dims": store.dims, "contexts": store.n_contexts,
               "tokens": store.n_tokens, "positions": "all but BOS" if cfg.skip_bos else "all",
               "shards": len(store.shard_names), "dtype": cfg.dtype, "seconds": store.marker.get("seconds")}  # fmt: skip
    if args.json:
        emit_json(summary)
    else:
        print(f"wrote {store.path}: {store.n_tokens:,} activation rows ({summary['positions']}) of "
              f"{', '.join(f'{h} [{d}]' for h, d in store.dims.items())} in {len(store.shard_names)} shards, "
              f"{summary['seconds']:.0f} s")  # fmt: skip
    return 0
