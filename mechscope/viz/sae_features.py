"""An SAE latent's dashboard as text, a PNG and a self-contained HTML page.

Input is :meth:`mechscope.sae.features.FeatureStats.latent`'s dict (the ``--json`` schema); no torch
here, matplotlib imported on use (Agg backend). Tokens are shaded by activation (orange, relative to
the latent's largest shown activation); the max token of each context is outlined / [bracketed].
"""

from __future__ import annotations

import html
from pathlib import Path

from mechscope.viz.tokens import clip, html_token, visible

POS_COLOR = "#d95f02"
NEG_COLOR = "#1b9e77"


def window(ex: dict, before: int = 14, after: int = 5) -> tuple[list[str], list[float], int]:
    """The tokens around an example's max: ``(tokens, acts, index of the max in them)``."""
    pos = ex["position"]
    lo, hi = max(0, pos - before), min(len(ex["tokens"]), pos + after + 1)
    return ex["tokens"][lo:hi], ex["acts"][lo:hi], pos - lo


def context_text(ex: dict, before: int = 14, after: int = 5) -> str:
    toks, _, at = window(ex, before, after)
    return "".join(f"[{visible(t)}]" if i == at else t for i, t in enumerate(toks)).replace("\n", "⏎")


def _logit_row(items: list[dict], n: int = 8) -> str:
    return ", ".join(f"{visible(x['token'])} {x['logit']:+.2f}" for x in items[:n])


def text_lines(data: dict, n_examples: int = 8) -> list[str]:
    """Human output: numbers, logits, neighbours, then top and quantile-band contexts."""
    lines = [f"latent {data['latent']} of {data['width']} at {data['hook']} ({data['model']})",
             f"density {data['density']:.4%} ({data['fires']:,} of {data['tokens_scanned']:,} tokens, BOS excluded); "
             f"mean activation when firing {data['mean_activation']:.3g}, max {data['max_activation']:.3g}"]  # fmt: skip
    counts, edges = data["histogram"]["counts"], data["histogram"]["log10_edges"]
    nz = [i for i, c in enumerate(counts) if c]
    if nz:
        lines.append(f"log10 activation from {edges[nz[0]]:.1f} to {edges[nz[-1] + 1]:.1f}, mode at "
                     f"{edges[max(nz, key=counts.__getitem__)]:.1f}")  # fmt: skip
    if data.get("top_logits"):
        lines += [f"top logits:    {_logit_row(data['top_logits'])}", f"bottom logits: {_logit_row(data['bottom_logits'])}"]
    elif data.get("logits_note"):
        lines.append(data["logits_note"])
    if data.get("similar"):
        lines.append("similar latents (decoder cosine): " + ", ".join(f"{s['latent']} {s['cosine']:.2f}"
                                                                      for s in data["similar"][:8]))  # fmt: skip
    lines.append(f"\ntop {min(n_examples, len(data['top_examples']))} of {len(data['top_examples'])} contexts:")
    lines += [f"{ex['max']:9.3f}  {context_text(ex)}" for ex in data["top_examples"][:n_examples]]
    for band in data["quantiles"]:
        lo, hi = band["fraction"]
        lines.append(f"\nquantile band {band['band']} (sampled contexts ranked {lo:.0%}–{hi:.0%} from the top, "
                     f"max {band['range'][0]:.3g}–{band['range'][1]:.3g}):")  # fmt: skip
        lines += [f"{ex['max']:9.3f}  {context_text(ex)}" for ex in band["examples"][:3]]
    if not data["top_examples"]:
        lines.append("  (the latent never fired on the scanned tokens)")
    return lines


# --------------------------------------------------------------------------------------------- HTML
def _shade(value: float, scale: float) -> str:
    a = max(0.0, min(1.0, value / scale)) if scale > 0 else 0.0
    return f"rgba(217,95,2,{a:.2f})"


def _context_html(ex: dict, scale: float) -> str:
    spans = []
    for i, (t, v) in enumerate(zip(ex["tokens"], ex["acts"])):
        span = f"<span class='t' title='{v:.4f}' style='background:{_shade(v, scale)}'>{html_token(t)}</span>"
        spans.append(f"<b class='max'>{span}</b>" if i == ex["position"] else span)
    return f"<div class='ctx'><b>{ex['max']:.3f}</b>  {''.join(spans)}</div>"


def _hist_svg(data: dict, w: int = 420, h: int = 120) -> str:
    counts, edges = data["histogram"]["counts"], data["histogram"]["log10_edges"]
    top = max(counts) or 1
    bw = w / len(counts)
    bars = "".join(f"<rect x='{i * bw:.1f}' y='{h - h * c / top:.1f}' width='{bw:.1f}' height='{h * c / top:.1f}' "
                   f"fill='{POS_COLOR}'><title>[{edges[i]:.2f}, {edges[i + 1]:.2f}): {c}</title></rect>"
                   for i, c in enumerate(counts) if c)  # fmt: skip
    return (f"<svg width='{w}' height='{h + 16}' style='border-bottom:1px solid #999'>{bars}"
            f"<text x='0' y='{h + 14}' font-size='11'>10^{edges[0]:g}</text>"
            f"<text x='{w}' y='{h + 14}' font-size='11' text-anchor='end'>10^{edges[-1]:g}</text></svg>")  # fmt: skip


def _logit_table(items: list[dict], color: str) -> str:
    rows = "".join(f"<tr><td><code>{html_token(x['token'])}</code></td><td style='color:{color}'>{x['logit']:+.3f}"
                   "</td></tr>" for x in items)  # fmt: skip
    return f"<table>{rows}</table>"


def html_page(data: dict) -> str:
    """A self-contained page (no scripts): numbers, histogram, logits, neighbours, top and quantile contexts."""
    shown = data["top_examples"] + [ex for b in data["quantiles"] for ex in b["examples"]]
    scale = max([v for ex in shown for v in ex["acts"]] or [1.0])
    title = f"latent {data['latent']} — {data['hook']}"
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}.ctx{font-family:monospace;"
             "white-space:pre-wrap;margin:.3em 0;padding:.3em;border-bottom:1px solid #eee}span.t{border-radius:2px}"
             "b.max{outline:2px solid #333}.row{display:flex;gap:3em;align-items:flex-start}"
             "td{padding:0 .6em}</style>",
             f"<h2>{html.escape(title)} ({html.escape(data['model'])}, {data['width']:,} latents)</h2>",
             f"<p>density <b>{data['density']:.4%}</b> ({data['fires']:,} of {data['tokens_scanned']:,} tokens, "
             f"BOS excluded) · mean activation when firing {data['mean_activation']:.3g} · max "
             f"{data['max_activation']:.3g}</p>", "<div class='row'><div><h3>log10 activation</h3>",
             _hist_svg(data), "</div>"]  # fmt: skip
    if data.get("top_logits"):
        parts += ["<div><h3>top logits</h3>", _logit_table(data["top_logits"], POS_COLOR), "</div>",
                  "<div><h3>bottom logits</h3>", _logit_table(data["bottom_logits"], NEG_COLOR), "</div>"]
    if data.get("similar"):
        rows = "".join(f"<tr><td>{s['latent']}</td><td>{s['cosine']:.3f}</td></tr>" for s in data["similar"])
        parts += ["<div><h3>similar latents</h3><table>", rows, "</table></div>"]
    parts.append("</div>")
    if data.get("logits_note"):
        parts.append(f"<p>{html.escape(data['logits_note'])}</p>")
    parts.append(f"<h3>top {len(data['top_examples'])} contexts</h3><p>hover a token for its activation</p>")
    parts += [_context_html(ex, scale) for ex in data["top_examples"]] or ["<p>never fired on the scanned tokens</p>"]
    for band in data["quantiles"]:
        lo, hi = band["fraction"]
        parts.append(f"<h3>quantile band {band['band']}: sampled contexts ranked {lo:.0%}–{hi:.0%} from the top "
                     f"(max {band['range'][0]:.3g}–{band['range'][1]:.3g})</h3>")  # fmt: skip
        parts += [_context_html(ex, scale) for ex in band["examples"]]
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------- PNG
def _plain(token: str) -> str:
    """A token for running text: spaces stay spaces, other whitespace drawn as in :func:`visible`."""
    return "".join(" " if ch == " " else visible(ch) for ch in token) or "∅"


def _draw_context(ax, y: float, ex: dict, scale: float, cw: float, x0: float, max_chars: int) -> None:
    from matplotlib.patches import Rectangle

    toks, acts, at = window(ex)
    texts = [_plain(t) for t in toks]
    while sum(map(len, texts)) > max_chars and len(texts) > at + 1 and at > 0:  # drop from the left first
        texts, acts, at = texts[1:], acts[1:], at - 1
    x = x0
    for i, (t, v) in enumerate(zip(texts, acts)):
        t = clip(t, max_chars)
        if x + cw * len(t) > x0 + cw * max_chars:
            break
        a = max(0.0, min(1.0, v / scale)) if scale > 0 else 0.0
        ax.add_patch(Rectangle((x, y - 0.4), cw * len(t), 0.8, facecolor=POS_COLOR, alpha=a, linewidth=1.2 if i == at else 0,
                               edgecolor="black"))  # fmt: skip
        ax.text(x, y, t, family="monospace", fontsize=7.5, va="center", ha="left")
        x += cw * len(t)


def dashboard_figure(data: dict, n_examples: int = 10):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    examples = data["top_examples"][:n_examples]
    bands = [(b, ex) for b in data["quantiles"] for ex in b["examples"][:1]]
    n_rows = len(examples) + len(bands) + 2
    fig = plt.figure(figsize=(12, 3.2 + 0.22 * n_rows), dpi=110)
    gs = fig.add_gridspec(2, 3, height_ratios=[3.0, 0.22 * n_rows + 0.3], hspace=0.35, wspace=0.45)
    ax = fig.add_subplot(gs[0, 0])
    counts, edges = data["histogram"]["counts"], data["histogram"]["log10_edges"]
    ax.bar(edges[:-1], counts, width=edges[1] - edges[0], align="edge", color=POS_COLOR)
    nz = [i for i, c in enumerate(counts) if c]
    if nz:
        ax.set_xlim(edges[nz[0]] - 0.5, edges[nz[-1] + 1] + 0.5)
    ax.set_xlabel("log10 activation (firing tokens)")
    ax.set_ylabel("tokens")
    ax.set_title(f"density {data['density']:.3%}", fontsize=9, loc="left")
    for col, key, color in ((1, "top_logits", POS_COLOR), (2, "bottom_logits", NEG_COLOR)):
        axl = fig.add_subplot(gs[0, col])
        items = data.get(key) or []
        axl.barh(range(len(items)), [x["logit"] for x in items], color=color)
        axl.set_yticks(range(len(items)), [clip(visible(x["token"]), 14) for x in items], fontsize=8)
        axl.invert_yaxis()
        axl.set_title(key.replace("_", " ") if items else data.get("logits_note", "no logits"), fontsize=9, loc="left")
    axc = fig.add_subplot(gs[1, :])
    axc.set_axis_off()
    axc.set_xlim(0, 1)
    axc.set_ylim(n_rows, 0)
    fig.canvas.draw()
    probe = axc.text(0, 0, "M" * 50, family="monospace", fontsize=7.5)
    cw = probe.get_window_extent().width / 50 / axc.get_window_extent().width
    probe.remove()
    max_chars = int(0.9 / cw)
    shown = [v for ex in examples + [e for _, e in bands] for v in ex["acts"]]
    scale = max(shown or [1.0])
    axc.text(0, 0.5, f"top {len(examples)} contexts (max activation, then the text; the max token is outlined)",
             fontsize=8.5, weight="bold", va="center")  # fmt: skip
    row = 1.5
    for ex in examples:
        axc.text(0.075, row, f"{ex['max']:.2f}", fontsize=7.5, va="center", ha="right")
        _draw_context(axc, row, ex, scale, cw, 0.085, max_chars)
        row += 1
    if bands:
        axc.text(0, row, "one sampled context per activation quantile band", fontsize=8.5, weight="bold", va="center")
        row += 1
        for b, ex in bands:
            axc.text(0.075, row, f"q{b['band']} {ex['max']:.2f}", fontsize=7.5, va="center", ha="right")
            _draw_context(axc, row, ex, scale, cw, 0.085, max_chars)
            row += 1
    fig.suptitle(f"latent {data['latent']} of {data['width']:,} at {data['hook']} ({data['model']}); "
                 f"{data['tokens_scanned']:,} tokens, BOS excluded", fontsize=10)  # fmt: skip
    return fig


def save_dashboard_png(data: dict, path: str | Path) -> Path:
    import warnings

    import matplotlib.pyplot as plt

    from mechscope.io import atomic_path

    path = Path(path)
    with warnings.catch_warnings():  # tokens in scripts the installed fonts lack are drawn as boxes
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        fig = dashboard_figure(data)
        try:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format="png")
        finally:
            plt.close(fig)
    return path
