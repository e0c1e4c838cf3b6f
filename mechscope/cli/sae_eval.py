"""``mechscope sae eval DIR``: L0, FVU, dead and dense latents, and the loss recovered with the SAE
spliced into the model, on held-out text."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechscope.cli.common import add_json_arg, add_model_arg, add_parser, emit_json, load_model

EXAMPLES = """\
  mechscope sae eval runs/sae-l6                          # 8,192 held-out tokens: ~70 s for Gemma 3 270M on 2 cores
  mechscope sae eval runs/sae-l6 --json --png sae-l6.png
  mechscope sae eval gemma-scope/layer_6/width_16k/average_l0_71 --hook blocks.6.hook_resid_post
  mechscope sae eval runs/sae-l6 --corpus 'notes/*.txt' --tokens 65536"""


def register(actions) -> None:
    from mechscope.cli.config_args import add_config_args
    from mechscope.sae.config import SAEEvalConfig

    p = add_parser(actions, "eval",
                   "Evaluate an SAE or transcoder on held-out text, all positions but BOS: L0, FVU, dead/dense latents, "
                   "and the model's next-token loss clean, with the SAE spliced in, and with the target zero-ablated "
                   "(loss recovered = (zero - spliced) / (zero - clean)).",
                   EXAMPLES)  # fmt: skip
    p.add_argument("sae", type=Path, metavar="DIR", help="SAE folder (mechscope, SAELens, sparsify or Gemma Scope layout)")
    p.add_argument("--hook", default=None,
                   help="the hook the SAE reads, for layouts that do not record it in mechscope's naming (Gemma Scope)")
    add_config_args(p, SAEEvalConfig, skip=("heldout_fraction",), rename={"sources": "--corpus"},
                    help={"sources": "'builtin' (offline, default) or .txt/.jsonl/.parquet files, directories, globs; "
                                     "repeatable (its held-out split is used)"})  # fmt: skip
    p.add_argument("--png", type=Path, help="write the latent density histogram and the loss bars as a PNG")
    add_model_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mechscope.cli.config_args import config_from_args
    from mechscope.io import check_output_file
    from mechscope.sae.artifact import load
    from mechscope.sae.evaluate import SAEEvalConfig, evaluate

    cfg = config_from_args(SAEEvalConfig, args)
    png = check_output_file(args.png, suffixes=(".png",)) if args.png else None
    model = load_model(args)
    sae = load(args.sae, model, hook=args.hook)
    res = evaluate(model, sae, cfg, progress=not args.json)
    files = []
    if png:
        from mechscope.viz.sae_sweep import save_eval_png

        files.append(str(save_eval_png(res.to_dict(), png, title=f"{model.name}: {args.sae}")))
    if args.json:
        emit_json({**res.to_dict(), "sae": str(args.sae), "model": model.name, "files": files})
        return 0
    print(res.table())
    for f in files:
        print(f"wrote {f}")
    return 0
