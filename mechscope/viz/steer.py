"""Steering dose sweeps, as a terminal table and a PNG (``mechscope steer``).

Input is :meth:`mechscope.steer.feature.SteerResult.to_dict`'s schema; no torch here, matplotlib
imported on use (Agg backend). The table puts the unsteered next-token top-k and each dose's side by
side, then each dose's greedy continuation; the picture draws the followed tokens' probabilities
across doses (the dose-response curves), the KL from the unsteered run, and the texts.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

from mechscope.viz.tokens import clip, visible

COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")


def dose_label(value: float) -> str:
    return f"V={value:g}"


def header(data: dict) -> str:
    where = data["target"] if data["target"] == data["hook"] else f"{data['hook']} -> {data['target']}"
    what = "add V·W_dec[N]" if data["mode"] == "add" else "clamp f_N := V (error term kept)"
    return f"latent {data['latent']} of {data['sae']} at {where} · {what} · {data['positions']}"


def activation_line(data: dict) -> str:
    """The latent's unsteered activation after BOS (BOS is not steered, and SAEs are trained without it)."""
    acts, toks = data["activations"], data["tokens"]
    if len(acts) < 2:
        return ""
    i = max(range(1, len(acts)), key=acts.__getitem__)
    active = sum(a > 0 for a in acts[1:])
    return (f"unsteered activation of latent {data['latent']} after BOS: max {acts[i]:.4g} at position {i} "
            f"({visible(toks[i])}), active at {active} of {len(acts) - 1} positions")  # fmt: skip


def table_lines(data: dict, width: int | None = None) -> list[str]:
    """Next-token top-k: the unsteered column and one column per dose; then a KL row."""
    width = width or shutil.get_terminal_size((120, 24)).columns
    columns = [("unsteered", data["clean"]["top"], None)]
    columns += [(dose_label(d["value"]), d["top"], d["kl"]) for d in data["doses"]]
    cell = max(14, min(24, (width - 4) // len(columns) - 1))
    tok_w = cell - 7
    lines = [("    " + " ".join(f"{clip(name, cell):<{cell}}" for name, _, _ in columns)).rstrip()]
    for r in range(max(len(top) for _, top, _ in columns)):
        cells = []
        for _, top, _ in columns:
            if r < len(top):
                t = top[r]
                cells.append(f"{clip(visible(t['token']), tok_w):<{tok_w}}{t['prob']:6.1%} ")
            else:
                cells.append(" " * cell)
        lines.append(f"{r + 1:>3} " + " ".join(cells).rstrip())
    kl = [" " * cell if k is None else f"{'KL ' + format(k, '.3g'):<{cell}}" for _, _, k in columns]
    lines.append("    " + " ".join(kl).rstrip())
    return lines


def continuation_lines(generate: int, labels: list[str], texts: list[str], width: int | None = None) -> list[str]:
    """The greedy continuations, one per dose or coefficient, under their labels ([] when none was generated)."""
    if not generate:
        return []
    width = width or shutil.get_terminal_size((120, 24)).columns
    pad = max(len(lab) for lab in labels) + 2
    out = [f"greedy continuations ({generate} tokens):"]
    for lab, text in zip(labels, texts):
        out.append(f"{lab:<{pad}}{clip(repr(text), max(20, width - pad))}")
    return out


def text_lines(data: dict, width: int | None = None) -> list[str]:
    doses = data["doses"]
    return continuation_lines(data["generate"], [dose_label(d["value"]) for d in doses], [d["text"] for d in doses], width)


def render(data: dict, width: int | None = None) -> str:
    """What ``mechscope steer`` prints."""
    prompt = " ".join(visible(t) for t in data["tokens"])
    lines = [header(data), f"prompt: {prompt}", activation_line(data), "",
             f"next token after the prompt (top {len(data['clean']['top'])}):", *table_lines(data, width)]  # fmt: skip
    texts = text_lines(data, width)
    return "\n".join(lines + ([""] + texts if texts else []))


def steer_figure(data: dict):
    """Followed tokens' probability per dose, KL per dose, and the continuations."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    doses = data["doses"]
    labels = [f"{d['value']:g}" for d in doses]
    x = list(range(len(doses)))
    n_text = len(doses) if data["generate"] else 0
    fig = plt.figure(figsize=(11, 4.4 + 0.2 * n_text), dpi=110)
    grid = fig.add_gridspec(2, 2, width_ratios=[2.3, 1], height_ratios=[4.0, 0.1 + 0.2 * n_text])
    ax, axk = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    top = max([t["clean"] for t in data["tracked"]] + [p for t in data["tracked"] for p in t["probs"]], default=0.0)
    for i, t in enumerate(data["tracked"]):
        color = COLORS[i % len(COLORS)]
        ax.plot(x, t["probs"], marker="o", color=color, label=clip(repr(t["token"]), 18))
        ax.axhline(t["clean"], color=color, linewidth=0.6, linestyle=":")
    ax.set_xticks(x, labels)
    ax.set_xlabel(f"dose V ({data['mode']})")
    ax.set_ylabel("next-token probability")
    ax.set_ylim(0, min(1.0, max(0.02, 1.1 * top)))
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("next token after the prompt (dotted: unsteered)", fontsize=9, loc="left")
    axk.bar(x, [d["kl"] for d in doses], color="#7570b3")
    axk.set_xticks(x, labels)
    axk.set_xlabel("dose V")
    axk.set_ylabel("KL(unsteered ‖ steered), nats")
    axk.set_title("distance from the unsteered run", fontsize=9, loc="left")
    if n_text:
        axt = fig.add_subplot(grid[1, :])
        axt.axis("off")
        rows = [f"{dose_label(d['value']):>10}  " + textwrap.shorten(repr(d["text"]), 120, placeholder="…'")
                for d in doses]  # fmt: skip
        axt.text(0, 1, "\n".join(rows), family="monospace", fontsize=8, va="top", transform=axt.transAxes)
    prompt = "".join(data["tokens"])
    fig.suptitle(f"{header(data)}\nprompt: {prompt[-90:]!r}", fontsize=9)
    fig.tight_layout()
    return fig


def save_steer_png(data: dict, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    from mechscope.io import atomic_path

    path = Path(path)
    fig = steer_figure(data)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
