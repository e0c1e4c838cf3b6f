"""``mechscope steer``: steer the model with one SAE latent (add its decoder row, or clamp it) and watch
the next token and a greedy continuation change with the dose."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechscope.cli.common import add_json_arg, add_model_arg, add_parser, emit_json, load_model

EXAMPLES = """\
  mechscope steer "I think that" --sae runs/sae-l6 --latent 7 --value 100
  mechscope steer "I think that" --sae runs/sae-l6 --latent 7 --mode clamp --sweep 0,50,100,200,400 --png dose.png
  mechscope steer "I think that" --sae runs/sae-l6 --latent 7 --sweep 0,100 --generate 40 --json
Modes (at the SAE's target hook; every position but BOS, generated tokens included):
  add    y <- y + V·W_dec[N]                        (V = 0 is the unsteered model, exactly)
  clamp  y <- y + (V - f_N(x))·W_dec[N]            (= SAE(x with f_N := V) + the SAE's error term)
Generation is greedy (deterministic). See docs/steering.md."""


def register(subparsers) -> None:
    p = add_parser(subparsers, "steer",
                   "Steer with one SAE latent: add V times its decoder row, or clamp it to V inside the SAE "
                   "(error term kept), at every position but BOS; shows next-token top-k and greedy text per dose.",
                   EXAMPLES)  # fmt: skip
    p.add_argument("prompt", help="the text to steer")
    p.add_argument("--sae", required=True, metavar="DIR", help="the SAE folder (`mechscope sae train` output, or "
                   "SAELens / sparsify / Gemma Scope layouts)")  # fmt: skip
    p.add_argument("--hook", default=None, help="the SAE's hook, for layouts that do not record it (Gemma Scope)")
    p.add_argument("--latent", required=True, type=int, metavar="N", help="the latent to steer (0..width-1)")
    p.add_argument("--mode", choices=("add", "clamp"), default="add",
                   help="add: y + V·W_dec[N]; clamp: set f_N to V in the spliced SAE, keeping its error term")
    dose = p.add_mutually_exclusive_group(required=True)
    dose.add_argument("--value", type=float, metavar="V", help="one dose")
    dose.add_argument("--sweep", metavar="V,V,...", help="several doses, comma-separated (e.g. 0,50,100,200,400; write --sweep=-50,0,50 when the first is negative)")
    p.add_argument("--generate", type=int, default=20, metavar="N", help="tokens to continue greedily per dose (0 = none)")
    p.add_argument("--top-k", type=int, default=10, help="next tokens shown per dose")
    p.add_argument("--include-bos", action="store_true", help="steer position 0 (BOS) too; by default it is left alone")
    p.add_argument("--intervene", metavar="JSON|FILE", help="other interventions applied to every run, the unsteered "
                   "one included (docs/interventions.md)")  # fmt: skip
    p.add_argument("--png", type=Path, help="write the dose-response picture (token probabilities, KL, texts)")
    add_model_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run)


def parse_sweep(text: str) -> list[float]:
    """``"0,50,1e2"`` → ``[0.0, 50.0, 100.0]``; anything else is one line."""
    import math

    from mechscope.errors import ConfigError
    from mechscope.steer.feature import MAX_DOSES

    parts = [s.strip() for s in text.split(",")]
    values = []
    for s in parts:
        try:
            v = float(s)
        except ValueError:
            v = None
        if v is None or not math.isfinite(v):
            raise ConfigError(f"--sweep takes comma-separated finite numbers like 0,50,100; {s!r:.20} is not one")
        values.append(v)
    if len(values) > MAX_DOSES:
        raise ConfigError(f"--sweep lists {len(values)} doses; at most {MAX_DOSES}")
    return values


def sweep_values(args: argparse.Namespace, flag: str, one: float | None) -> list[float]:
    """The doses or coefficients (``one`` given with ``flag``, else ``--sweep``), after checking them and
    ``--generate`` / ``--top-k``: one line for anything wrong."""
    import math

    from mechscope.errors import ConfigError

    if one is not None and not math.isfinite(one):
        raise ConfigError(f"{flag} must be a finite number, got {one}")
    values = [one] if one is not None else parse_sweep(args.sweep)
    if args.generate < 0:
        raise ConfigError(f"--generate must be ≥ 0, got {args.generate}")
    if args.top_k < 1:
        raise ConfigError(f"--top-k must be between 1 and the vocabulary size, got {args.top_k}")
    return values


def run(args: argparse.Namespace) -> int:
    from mechscope.cli.run import parse_interventions
    from mechscope.io import check_output_file
    from mechscope.model.tokens import check_prompt

    check_prompt(args.prompt)
    values = sweep_values(args, "--value", args.value)
    interventions = parse_interventions(args.intervene)
    png = check_output_file(args.png, suffixes=(".png",)) if args.png else None
    model = load_model(args)

    from mechscope.sae.artifact import load
    from mechscope.steer.feature import steer_latent

    sae = load(args.sae, model, hook=args.hook)
    bar = None if args.json or len(values) < 2 else _bar(len(values))
    try:
        res = steer_latent(model, sae, args.latent, args.prompt, values, args.mode, generate=args.generate,
                           top_k=args.top_k, include_bos=args.include_bos, interventions=interventions,
                           progress=(lambda done, total: bar.update(1)) if bar else None)  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    data = {**res.to_dict(), "sae_dir": str(args.sae), "interventions": [iv.to_dict() for iv in interventions]}
    files = []
    if png:
        from mechscope.viz.steer import save_steer_png

        files.append(str(save_steer_png(data, png)))
    if args.json:
        emit_json({**data, "files": files})
        return 0
    from mechscope.viz.steer import render

    print(render(data))
    print(f"({res.seconds:.1f} s)" + "".join(f"\nwrote {f}" for f in files))
    return 0


def _bar(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="mechscope: steering", unit="dose", leave=False)
