"""``mechscope tour``: the guided demo on the embedded Gemma 3 270M (what ``make demo`` runs)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from mechscope.cli.common import add_json_arg, add_model_arg, add_parser, emit_json, load_model

PROMPT = "The reliability of Wikipedia is very"


def register(subparsers) -> None:
    p = add_parser(subparsers, "tour",
                   "A guided tour on the embedded Gemma 3 270M: next-token predictions, clamping one residual "
                   "coordinate, the logit lens walkthrough, causal tracing of a fact, SAE features, a steering vector, "
                   "superposition in a toy model "
                   "and a grokking run. Pictures go to --out.",
                   "  mechscope tour\n  mechscope tour --out tour-pictures\n  mechscope tour --only basics --json")  # fmt: skip
    add_model_arg(p)
    add_json_arg(p)
    p.add_argument("--out", type=Path, default=Path("tour"),
                   help="folder for the tour's pictures: new, empty, or an earlier tour's")  # fmt: skip
    p.add_argument("--force", action="store_true",
                   help="write into a folder that holds other files too (they are kept; only the tour's are replaced)")  # fmt: skip
    p.add_argument("--only", choices=("basics", "lens", "circuits", "sae", "steering", "superposition", "grokking"), action="append",
                   help="run only these sections (repeatable); default: all")  # fmt: skip
    p.set_defaults(func=run)


def _section(title: str) -> str:
    return f"\n=== {title} " + "=" * max(0, 70 - len(title))


def basics(model) -> tuple[list[str], dict]:
    from mechscope.cli.common import format_top
    from mechscope.tour.basics import clamp_demo

    res = clamp_demo(model, PROMPT)
    lines = [_section("1. Next-token prediction"), f"prompt: {PROMPT!r}  ({model.name})", "top-10 next tokens:"]
    lines += format_top(model, res.before.probs, res.before.ids)
    lines += [
        _section("2. Clamp one residual coordinate"),
        f"{res.hook}, dimension {res.dim}: the MLP of layer {res.hook.split('.')[1]} writes up to "
        f"{res.observed_max:.1f} there on this prompt.",
        "This is a residual-stream coordinate, not an MLP neuron (neurons live at mlp.hook_post).",
    ]
    for sign, top in res.after.items():
        lines.append(f"\nclamped to {sign}{res.value:g} at every position — top-10:")
        lines += format_top(model, top.probs, top.ids)
    return lines, res.to_dict()


SECTIONS = {
    "basics": ("model", basics),
    "lens": ("model", "mechscope.tour.lens:tour"),
    "circuits": ("model", "mechscope.attribution.tour:tour"),
    "sae": ("model", "mechscope.sae.tour:tour"),
    "steering": ("model", "mechscope.tour.steering:tour"),
    "superposition": ("none", "mechscope.labs.superposition.tour:tour"),
    "grokking": ("none", "mechscope.labs.grokking.tour:tour"),
}


KIND = "tour"
"""The marker kind of a tour folder: a later tour may write there again; a user's folder is refused."""


LEGACY_OUTPUTS = frozenset({"lens_wikipedia.png", "grok-fast", "grok_probe_circle.png", "grok_neuron_crest.png"})
"""What tours wrote before tour folders had a marker: a folder holding only these is adopted."""


def _prepare(out: Path, force: bool) -> tuple[Path, set[str]]:
    """Check ``--out`` before any work (new, empty, an earlier tour's folder, or with ``force`` any
    folder) and create it. Returns it and the names in it that are not the tour's (kept, never listed)."""
    from mechscope.io import MARKER_FILE, check_output_dir, marker, read_marker, write_json

    names = {p.name for p in out.iterdir()} if out.is_dir() else set()
    if names and names <= LEGACY_OUTPUTS and read_marker(out) is None:  # an earlier version's tour folder
        write_json(out / MARKER_FILE, marker(KIND, {n: {"bytes": None} for n in sorted(names)}))
    out = check_output_dir(out, KIND, force=force)
    out.mkdir(parents=True, exist_ok=True)
    ours = set((read_marker(out) or {}).get("files", {}))
    return out, {p.name for p in out.iterdir() if p.name not in ours}


def _seal(out: Path, others: set[str]) -> None:
    """List what the tour wrote in the folder's marker, so the next tour recognises the folder as its own."""
    from mechscope.io import MARKER_FILE, marker, write_json

    files = {p.name: {"bytes": p.stat().st_size if p.is_file() else None}
             for p in sorted(out.iterdir()) if p.name not in others and p.name != MARKER_FILE}  # fmt: skip
    write_json(out / MARKER_FILE, marker(KIND, files))


def run(args) -> int:
    wanted = args.only or list(SECTIONS)
    args.out, others = _prepare(args.out, args.force)
    _seal(args.out, others)
    model = load_model(args) if any(SECTIONS[s][0] == "model" for s in wanted) else None
    report = {}
    for name in wanted:
        needs, fn = SECTIONS[name]
        if isinstance(fn, str):
            module, attr = fn.split(":")
            try:
                fn = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError):
                print(f"(tour section '{name}' is not available in this build)", file=sys.stderr)
                continue
            lines = fn(model, args.out) if needs == "model" else fn(args.out)
            data = None
        else:
            lines, data = fn(model)
        report[name] = data if data is not None else lines
        _seal(args.out, others)  # after every section: an interrupted tour's folder is still the tour's
        if not args.json:
            print("\n".join(lines), flush=True)
    if args.json:
        emit_json(report)
    else:
        print(f"\nNext, live in your browser (lens, interventions): mechscope serve{'' if args.model == 'gemma-3-270m' else ' --model ' + args.model}  → http://127.0.0.1:8000")
    return 0
