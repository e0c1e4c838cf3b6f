"""Direct logit attribution as a PNG: per-layer attention / MLP bars and a layer × head heatmap.

Input is :meth:`mechscope.attribution.dla.DLAResult.to_dict`'s schema; no torch here, matplotlib
imported on use (Agg backend).
"""

from __future__ import annotations

from pathlib import Path

ATTN_COLOR = "#1b9e77"
MLP_COLOR = "#d95f02"


def dla_figure(data: dict, title: str | None = None):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    attn, mlp = np.array(data["layers"]["attn"]), np.array(data["layers"]["mlp"])
    heads = np.array(data["heads"])
    n = len(attn)
    fig, (ax, axh) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110, gridspec_kw={"width_ratios": [2.2, 1]})
    x = np.arange(n)
    ax.bar(x - 0.2, attn, 0.4, color=ATTN_COLOR, label="attention")
    ax.bar(x + 0.2, mlp, 0.4, color=MLP_COLOR, label="MLP")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(x)
    ax.set_xlabel("layer")
    ax.set_ylabel("direct effect on the metric (logits)")
    ax.legend(frameon=False)
    ax.set_title(f"{data['metric']} = {data['total']:.2f} (embed {data['embed']:.2f}, bias {data['constant']:.2f})",
                 fontsize=9, loc="left")  # fmt: skip
    lim = float(np.abs(heads).max()) or 1.0
    im = axh.imshow(heads, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    axh.set_xlabel("head")
    axh.set_ylabel("layer")
    axh.set_xticks(range(heads.shape[1]))
    axh.set_title("per head", fontsize=9, loc="left")
    fig.colorbar(im, ax=axh, fraction=0.05)
    prompt = "".join(data["tokens"][: data["position"] + 1])
    fig.suptitle((title + "\n" if title else "") + f"DLA at position {data['position']}: {prompt[-80:]!r}", fontsize=10)
    fig.tight_layout()
    return fig


def save_dla_png(data: dict, path: str | Path, title: str | None = None) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    from mechscope.io import atomic_path

    fig = dla_figure(data, title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
