"""Top examples as text and as a self-contained HTML page (tokens shaded by activation).

Input is :meth:`mechscope.attribution.top_examples.TopExamples.unit`'s dict; no torch here.
"""

from __future__ import annotations

import html

from mechscope.viz.tokens import html_token, visible


def _window(tokens: list[str], acts: list[float], pos: int, width: int) -> tuple[list[str], list[float], int]:
    lo = max(1, pos - width)
    hi = min(len(tokens), pos + width // 2 + 1)
    return tokens[lo:hi], acts[lo:hi], pos - lo


def text_lines(data: dict, width: int = 12) -> list[str]:
    """One line per context: the activation, then the text around the max token, which is [bracketed]."""
    lines = [f"{data['hook']} unit {data['unit']} ({data['unit_kind']}), {data['tokens']:,} corpus tokens"]
    for side in ("top", "bottom"):
        lines.append(f"\n{side} {len(data[side])}:")
        for ex in data[side]:
            toks, _, at = _window(ex["tokens"], ex["activations"], ex["position"], width)
            text = "".join(f"[{visible(t)}]" if i == at else t for i, t in enumerate(toks)).replace("\n", "⏎")
            lines.append(f"{ex['activation']:9.3f}  {text}")
    return lines


def _shade(value: float, scale: float) -> str:
    a = max(-1.0, min(1.0, value / scale)) if scale else 0.0
    return f"rgba(217,95,2,{a:.2f})" if a >= 0 else f"rgba(27,158,119,{-a:.2f})"


def html_page(data: dict) -> str:
    """A page listing top and bottom contexts; each token's background shows its activation (orange +, green −)."""
    scale = max([abs(v) for side in ("top", "bottom") for ex in data[side] for v in ex["activations"][1:]] or [1.0])
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(data['hook'])} unit {data['unit']}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}.ctx{font-family:monospace;"
             "white-space:pre-wrap;margin:.4em 0;padding:.3em;border-bottom:1px solid #eee}"
             "span.t{border-radius:2px}b.max{outline:2px solid #333}</style>",
             f"<h2>{html.escape(data['hook'])} — unit {data['unit']} ({html.escape(str(data['unit_kind']))})</h2>",
             f"<p>{data['tokens']:,} tokens of {html.escape(', '.join(data['corpus']['sources']))}; hover a token for "
             "its activation.</p>"]  # fmt: skip
    for side in ("top", "bottom"):
        parts.append(f"<h3>{side} {len(data[side])}</h3>")
        for ex in data[side]:
            spans = []
            for i, (t, v) in enumerate(zip(ex["tokens"], ex["activations"])):
                if i == 0:
                    continue  # BOS
                span = f"<span class='t' title='{v:.4f}' style='background:{_shade(v, scale)}'>{html_token(t)}</span>"
                spans.append(f"<b class='max'>{span}</b>" if i == ex["position"] else span)
            parts.append(f"<div class='ctx'><b>{ex['activation']:.3f}</b>  {''.join(spans)}</div>")
    return "\n".join(parts) + "\n"
