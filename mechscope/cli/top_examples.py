"""``mechscope top-examples``: the contexts of a corpus where one unit (neuron, residual dimension, head)
fires most and least. One streamed pass ranks every unit of the hook; later units are read from the cache."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechscope.cli.common import add_json_arg, add_model_arg, add_parser, emit_json, load_model

EXAMPLES = """\
  mechscope top-examples --hook blocks.9.mlp.hook_post --unit 1393            # ~20 s the first time, then instant
  mechscope top-examples --hook blocks.9.mlp.hook_post --unit 7 --json
  mechscope top-examples --hook blocks.6.attn.hook_z --unit 2 --html head.html   # a head: norm of its z
  mechscope top-examples --hook blocks.12.hook_resid_post --unit 163 --corpus 'notes/*.txt' --tokens 200000"""


def register(subparsers) -> None:
    from mechscope.attribution.config import TopExamplesConfig
    from mechscope.cli.config_args import add_config_args

    p = add_parser(subparsers, "top-examples",
                   "Max- and min-activating corpus contexts for one unit of a hook (MLP neuron, residual dimension, "
                   "or attention head via the norm of its hook_z), with per-token activations.",
                   EXAMPLES)  # fmt: skip
    p.add_argument("--hook", required=True, help="hook name, e.g. blocks.9.mlp.hook_post (`mechscope info` lists them)")
    p.add_argument("--unit", type=int, required=True, help="neuron / dimension / head index")
    add_config_args(p, TopExamplesConfig, skip=("heldout_fraction",), rename={"sources": "--corpus"},
                    help={"sources": "'builtin' (offline, default) or .txt/.jsonl/.parquet files, directories, globs; repeatable"})  # fmt: skip
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="where the scan is saved (default: $MECHSCOPE_HOME/top_examples/<fingerprint>/<hook>-<key>)")
    p.add_argument("--rescan", action="store_true", help="scan again even if a cached result exists")
    p.add_argument("--html", type=Path, help="write the contexts as a self-contained HTML page")
    add_model_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mechscope.io import finite_json
    from mechscope.attribution.top_examples import TopExamplesConfig, top_examples
    from mechscope.cli.config_args import config_from_args
    from mechscope.io import atomic_write, check_output_file

    cfg = config_from_args(TopExamplesConfig, args)
    html_path = check_output_file(args.html, suffixes=(".html", ".htm")) if args.html else None
    model = load_model(args)
    res = top_examples(model, args.hook, args.unit, cfg, cache_dir=args.cache_dir, rescan=args.rescan,
                       progress=not args.json)  # fmt: skip
    data = res.unit(model, args.unit)
    files = []
    if html_path:
        from mechscope.viz.top_examples import html_page

        files.append(str(atomic_write(html_path, html_page(data))))
    if args.json:
        emit_json(finite_json({**data, "files": files}))
        return 0
    from mechscope.viz.top_examples import text_lines

    print("\n".join(text_lines(data)))
    print(f"({'cached, ' if res.cached else ''}{res.seconds:.1f} s)" + "".join(f"\nwrote {f}" for f in files))
    return 0
