"""``mechscope sae features``: one latent's dashboard (density, activation histogram, top and quantile-band
contexts with per-token activations, top/bottom logits, nearest latents). One pass computes every latent
of the SAE and is cached; later latents are instant."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechscope.cli.common import add_json_arg, add_model_arg, add_parser, emit_json, load_model

EXAMPLES = """\
  mechscope sae features runs/sae-l6 --latent 7 --store runs/acts-l6          # all latents once, then instant
  mechscope sae features runs/sae-l6 --latent 7 --png latent7.png --html latent7.html
  mechscope sae features runs/sae-l6 --latent 7 --tokens 131072 --json        # no store: the corpus, ~1 min
  mechscope sae features gemma-scope/layer_6/width_16k --hook blocks.6.hook_resid_post --latent 7"""


def register(actions) -> None:
    from mechscope.cli.config_args import add_config_args
    from mechscope.sae.feature_config import FeaturesConfig

    p = add_parser(actions, "features",
                   "A latent's dashboard: activation density and log10 histogram, top activating contexts and "
                   "contexts from activation quantile bands (per-token activations), top/bottom logits of its "
                   "decoder direction, nearest latents by decoder cosine. BOS positions are left out.",
                   EXAMPLES)  # fmt: skip
    p.add_argument("sae", type=Path, metavar="DIR", help="the SAE folder (mechscope, SAELens, sparsify or Gemma Scope)")
    p.add_argument("--latent", type=int, required=True, help="latent index")
    p.add_argument("--store", type=Path, default=None,
                   help="an activation store holding the SAE's input hook (default: run --tokens corpus tokens "
                        "through the model)")  # fmt: skip
    p.add_argument("--hook", default=None, help="the SAE's input hook, for layouts that do not record it (Gemma Scope)")
    add_config_args(p, FeaturesConfig, skip=("heldout_fraction",), rename={"sources": "--corpus"},
                    help={"sources": "'builtin' (offline, default) or .txt/.jsonl/.parquet files, directories, globs; repeatable"})  # fmt: skip
    p.add_argument("--bands", type=int, default=4, help="activation quantile bands the sampled contexts are shown in")
    p.add_argument("--logits", type=int, default=10, help="top and bottom logits listed")
    p.add_argument("--similar", type=int, default=10, help="nearest latents listed")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="where the pass is saved (default: $MECHSCOPE_HOME/sae_features/<SAE digest>/<source key>)")
    p.add_argument("--rescan", action="store_true", help="compute again even if a cached result exists")
    p.add_argument("--png", type=Path, help="write the dashboard as a PNG")
    p.add_argument("--html", type=Path, help="write the dashboard as a self-contained HTML page")
    add_model_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mechscope.cli.config_args import config_from_args
    from mechscope.errors import ConfigError
    from mechscope.io import atomic_write, check_output_file
    from mechscope.sae.artifact import check_for_model, load
    from mechscope.sae.feature_scan import open_store
    from mechscope.sae.feature_weights import check_latent
    from mechscope.sae.feature_config import FeaturesConfig
    from mechscope.sae.features import features

    cfg = config_from_args(FeaturesConfig, args)
    for name in ("bands", "logits", "similar"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name} must be a positive integer, got {getattr(args, name)}")
    png = check_output_file(args.png, suffixes=(".png",)) if args.png else None
    html_path = check_output_file(args.html, suffixes=(".html", ".htm")) if args.html else None
    sae = load(args.sae, hook=args.hook)
    check_latent(args.latent, sae.cfg.width)
    model = load_model(args)
    check_for_model(sae, model, where=str(args.sae))
    sae.to(model.device)
    store = open_store(args.store, model, sae) if args.store else None
    stats = features(model, sae, args.latent, cfg, store=store, cache_dir=args.cache_dir, rescan=args.rescan,
                     progress=not args.json)  # fmt: skip
    data = stats.latent(args.latent, model, sae, bands=args.bands, n_logits=args.logits, n_similar=args.similar)
    files = []
    if png:
        from mechscope.viz.sae_features import save_dashboard_png

        files.append(str(save_dashboard_png(data, png)))
    if html_path:
        from mechscope.viz.sae_features import html_page

        files.append(str(atomic_write(html_path, html_page(data))))
    if args.json:
        emit_json({**data, "files": files})
        return 0
    from mechscope.viz.sae_features import text_lines

    print("\n".join(text_lines(data)))
    print(f"({'cached, ' if stats.cached else ''}{stats.seconds:.1f} s)" + "".join(f"\nwrote {f}" for f in files))
    return 0
