"""``mechscope sae convert DIR --to saelens|sparsify|mechscope --out OUT``: an SAE in another tool's layout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mechscope.cli.common import add_json_arg, add_parser, emit_json

EXAMPLES = """\
  mechscope sae convert runs/sae-l6 --to saelens --out runs/sae-l6-saelens        # SAE.load_from_disk reads it
  mechscope sae convert runs/sae-l6 --to sparsify --out runs/sae-l6-sparsify      # TopK only
  mechscope sae convert gemma-scope/layer_6/width_16k/average_l0_71 --hook blocks.6.hook_resid_post \\
      --to mechscope --out runs/gemmascope-l6
  mechscope sae convert ckpt/ --hook blocks.6.hook_resid_post --to mechscope --out runs/l6   # sparsify checkpoint
Reads mechscope, SAELens, sparsify, Gemma Scope (params.npz) and Gemma Scope 2 (params.safetensors) layouts.
What the target cannot express is refused in one line (sparsify: TopK only, no thresholds; SAELens: no TopK
transcoder); a BatchTopK SAE becomes SAELens' jumprelu (same outputs for thresholds >= 0)."""


def register(actions) -> None:
    from mechscope.sae.formats import WRITABLE

    p = add_parser(actions, "convert", "Convert an SAE or transcoder between layouts (mechscope, SAELens, sparsify; "
                   "Gemma Scope read only), keeping its outputs and mechscope's record of model and hooks.", EXAMPLES)  # fmt: skip
    p.add_argument("sae", type=Path, metavar="DIR", help="SAE folder in any layout mechscope reads")
    p.add_argument("--to", required=True, choices=WRITABLE, help="layout to write")
    p.add_argument("--out", type=Path, required=True, help="folder to write (new or empty)")
    p.add_argument("--hook", default=None, help="the hook the SAE reads (mechscope's name), for layouts that do not "
                   "record it (Gemma Scope, unmapped sparsify hookpoints); selects the SAE of a sparsify checkpoint")  # fmt: skip
    p.add_argument("--force", action="store_true", help="write into a folder that holds other files (they are kept)")
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mechscope.sae.formats import convert

    sae, source_format, out = convert(args.sae, args.out, args.to, hook=args.hook, force=args.force)
    files = sorted(p.name for p in Path(out).iterdir() if p.is_file() and not p.name.startswith("."))
    row = {"source": str(args.sae), "from": source_format, "to": args.to, "out": str(out), "sae": sae.cfg.label(),
           "arch": sae.cfg.arch, "d_in": sae.cfg.d_in, "width": sae.cfg.width, "d_out": sae.cfg.out_dim,
           "transcoder": sae.cfg.transcoder, "hook": sae.hook, "target": sae.target,
           "model": sae.info.get("model"), "fingerprint": sae.info.get("fingerprint"), "files": files}  # fmt: skip
    if args.json:
        emit_json(row)
        return 0
    where = f" {sae.hook}" + (f" -> {sae.target}" if sae.target != sae.hook else "") if sae.hook else ""
    print(f"{args.sae} ({source_format}, {sae.cfg.label()}{where}) -> {out} ({args.to}): {', '.join(files)}")
    if not sae.hook:
        print(f"note: {out} does not say which hook the SAE reads: pass --hook when you use it", file=sys.stderr)
    return 0
