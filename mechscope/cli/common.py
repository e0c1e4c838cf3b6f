"""Small helpers shared by CLI subcommands (argument conventions, JSON output)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

DEFAULT_MODEL = "gemma-3-270m"


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the examples block as written and shows defaults."""


def add_parser(subparsers, name: str, help: str, examples: str) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        name, help=help, description=help, epilog=f"Examples:\n{examples}", formatter_class=HelpFormatter
    )


def add_model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="model spec: 'gemma-3-270m' (embedded), a local HF directory, a .gguf file, or a hub id (online only)",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu, cuda, cuda:1 ...")


def add_json_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one machine-readable JSON object")


NON_FINITE_FIELD = "non_finite"
"""Added to a ``--json`` object that had NaN or ±inf values: where they were (they are printed as null)."""


def emit_json(obj: Any) -> None:
    """Print one strict JSON object: NaN and ±inf become ``null``, and a dict gains
    :data:`NON_FINITE_FIELD` listing where they were (``["rows[3].kl"]``)."""
    from mechscope.io import finite_json

    found: list[str] = []
    clean = finite_json(obj, found)
    if found and isinstance(clean, dict):
        clean[NON_FINITE_FIELD] = found
    json.dump(clean, sys.stdout, indent=None, separators=(", ", ": "), allow_nan=False)
    sys.stdout.write("\n")


def load_model(args: argparse.Namespace):
    """Load ``--model`` on ``--device`` (one-line errors come from mechscope.load)."""
    import mechscope

    return mechscope.load(args.model, device=args.device)


def format_top(model, probs, ids) -> list[str]:
    """Rows ``rank  token  prob`` for a top-k list (tokens drawn with :func:`mechscope.viz.tokens.visible`)."""
    from mechscope.viz.tokens import visible

    toks = model.to_str_tokens([int(i) for i in ids], visible=False)
    return [f"{r + 1:>3}  {visible(t):<18} {p:7.2%}" for r, (t, p) in enumerate(zip(toks, probs))]


def require_finite(model, values, what: str = "logits") -> None:
    """Refuse (one line, exit 2) a result holding NaN or inf: the model's weights are damaged, or an
    intervention made them so; point at the check that finds and repairs a damaged cache."""
    import torch

    from mechscope.errors import CacheError

    if not bool(torch.isfinite(values).all()):
        raise CacheError(f"the model produced NaN or infinite {what}: its weights may be damaged (or an "
                         f"intervention made them so); `mechscope check --full --model {model.name}` checks and "
                         "repairs a converted cache")  # fmt: skip
