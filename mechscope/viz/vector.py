"""Steering-vector sweeps, as a terminal table and a PNG (``mechscope vector apply``).

Input is :meth:`mechscope.steer.apply.VectorResult.to_dict`'s schema; no torch here, matplotlib imported
on use (Agg backend). The table puts the next-token top-k of each coefficient side by side (coefficient
0 first, always), with the target words' mean log-prob shift and ranks under it, then each
coefficient's greedy continuation. The picture draws the shift against the coefficient, the
probabilities of the tokens in the top 3 at any coefficient, and the texts.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

from mechscope.viz.steer import COLORS, continuation_lines
from mechscope.viz.tokens import clip, visible


def coef_label(c: float) -> str:
    return f"c={c:g}"


def _columns(data: dict) -> list[dict]:
    """Coefficient 0 first, then the requested ones (0 only once)."""
    return [data["reference"], *[c for c in data["coefs"] if c["coef"] != 0.0]]


def header(data: dict) -> str:
    return (f"steering vector ({data['method']}, norm {data['vector_norm']:.4g}) at {data['hook']} · "
            f"adds c × vector · {data['positions']}")  # fmt: skip


def target_line(data: dict) -> str:
    if not data["targets"]:
        return "no --target words: no effect score"
    words = ", ".join(f"{t['word']!r} (scored token {visible(t['token'])})" for t in data["targets"])
    return f"effect score = mean log-prob shift of the next token against c=0, over {words}"


def table_lines(data: dict, width: int | None = None) -> list[str]:
    """Next-token top-k per coefficient, then the effect score, target ranks and KL rows."""
    width = width or shutil.get_terminal_size((120, 24)).columns
    cols = _columns(data)
    cell = max(14, min(24, (width - 8) // len(cols) - 1))
    tok_w = cell - 7
    lines = [("        " + " ".join(f"{coef_label(c['coef']):<{cell}}" for c in cols)).rstrip()]
    for r in range(max(len(c["top"]) for c in cols)):
        cells = []
        for c in cols:
            if r < len(c["top"]):
                t = c["top"][r]
                cells.append(f"{clip(visible(t['token']), tok_w):<{tok_w}}{t['prob']:6.1%} ")
            else:
                cells.append(" " * cell)
        lines.append(f"{r + 1:>7} " + " ".join(cells).rstrip())
    if data["targets"]:
        lines.append(f"{'shift':>7} " + " ".join(f"{c['target_logprob_shift']:+.3f} nats".ljust(cell) for c in cols).rstrip())
        for i, t in enumerate(data["targets"]):
            name = clip(visible(t["token"]), 7)
            lines.append(f"{name:>7} " + " ".join(f"rank {c['target_ranks'][i]}".ljust(cell) for c in cols).rstrip())
    lines.append(f"{'KL':>7} " + " ".join(f"{c['kl']:.3g}".ljust(cell) for c in cols).rstrip())
    return lines


def text_lines(data: dict, width: int | None = None) -> list[str]:
    cols = _columns(data)
    return continuation_lines(data["generate"], [coef_label(c["coef"]) for c in cols], [c["text"] for c in cols], width)


def render(data: dict, width: int | None = None) -> str:
    """What ``mechscope vector apply`` prints."""
    prompt = " ".join(visible(t) for t in data["tokens"])
    lines = [header(data), f"prompt: {prompt}", target_line(data), "",
             f"next token after the prompt (top {len(data['reference']['top'])}):", *table_lines(data, width)]  # fmt: skip
    texts = text_lines(data, width)
    return "\n".join(lines + ([""] + texts if texts else []))


def vector_figure(data: dict):
    """Target log-prob shift against c, the leading tokens' probabilities, and the continuations."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cols = sorted(_columns(data), key=lambda c: c["coef"])
    xs = [c["coef"] for c in cols]
    n_text = len(cols) if data["generate"] else 0
    fig = plt.figure(figsize=(11, 4.4 + 0.2 * n_text), dpi=110)
    grid = fig.add_gridspec(2, 2, width_ratios=[1, 1.3], height_ratios=[4.0, 0.1 + 0.2 * n_text])
    ax, axp = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    ax.axhline(0.0, color="#999999", linewidth=0.8)
    if data["targets"]:
        ax.plot(xs, [c["target_logprob_shift"] for c in cols], marker="o", color="#d95f02", label="mean shift")
        if len(data["targets"]) > 1:
            for i, t in enumerate(data["targets"]):
                ref = data["reference"]["target_logprobs"][i]
                ax.plot(xs, [c["target_logprobs"][i] - ref for c in cols], linewidth=0.8, linestyle="--",
                        color=COLORS[(i + 2) % len(COLORS)], label=clip(repr(t["token"]), 16))  # fmt: skip
        ax.legend(fontsize=8, frameon=False)
        words = ", ".join(repr(t["token"]) for t in data["targets"])
        ax.set_title(f"target log-prob shift vs c=0: {clip(words, 40)}", fontsize=9, loc="left")
    else:
        ax.set_title("no target words given (--target)", fontsize=9, loc="left")
    ax.set_xlabel("coefficient c (c × the vector as made)")
    ax.set_ylabel("log-prob shift, nats")
    for i, t in enumerate(data["tracked"]):
        by_coef = {0.0: t["clean"], **{c["coef"]: p for c, p in zip(data["coefs"], t["probs"])}}
        axp.plot(xs, [by_coef[x] for x in xs], marker="o", color=COLORS[i % len(COLORS)], label=clip(repr(t["token"]), 18))
    axp.set_xlabel("coefficient c")
    axp.set_ylabel("next-token probability")
    axp.set_title("tokens in the top 3 at some coefficient", fontsize=9, loc="left")
    axp.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if n_text:
        axt = fig.add_subplot(grid[1, :])
        axt.axis("off")
        rows = [f"{coef_label(c['coef']):>8}  " + textwrap.shorten(repr(c["text"]), 120, placeholder="…'") for c in cols]
        axt.text(0, 1, "\n".join(rows), family="monospace", fontsize=8, va="top", transform=axt.transAxes)
    fig.suptitle(f"{header(data)}\nprompt: {data['prompt'][-90:]!r}", fontsize=9)
    fig.tight_layout()
    return fig


def save_vector_png(data: dict, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    from mechscope.io import atomic_path

    path = Path(path)
    fig = vector_figure(data)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
