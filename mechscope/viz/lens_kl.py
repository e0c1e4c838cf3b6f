"""Held-out KL per lens row, logit lens vs tuned lens, as a PNG (``mechscope lens eval-tuned --png``).

Input is :meth:`mechscope.lens.evaluate.LensEvaluation.to_dict`'s schema (``rows``: label, logit_kl,
tuned_kl). Two lines over the rows (embedding → last block before the output) on a log scale, since the
logit lens's KL spans orders of magnitude; matplotlib is imported here only (Agg backend).
"""

from __future__ import annotations

from pathlib import Path

LOGIT_COLOR = "#d95f02"
TUNED_COLOR = "#1b9e77"


def kl_figure(data: dict, title: str | None = None):
    """A matplotlib Figure: mean KL(final ‖ row) per row for both lenses, with the tuned/logit ratio."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = data["rows"]
    labels = [r["label"] for r in rows]
    logit = [max(r["logit_kl"], 1e-6) for r in rows]
    tuned = [max(r["tuned_kl"], 1e-6) for r in rows]
    x = list(range(len(rows)))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.42 * len(rows) + 2), 4.2), dpi=110)
    ax.plot(x, logit, "o-", color=LOGIT_COLOR, label="logit lens", linewidth=1.8, markersize=4)
    ax.plot(x, tuned, "o-", color=TUNED_COLOR, label="tuned lens", linewidth=1.8, markersize=4)
    ax.set_yscale("log")
    ax.set_xticks(x, labels, rotation=60 if len(rows) > 24 else 0, fontsize=8)
    ax.set_xlabel("lens row (the output row, KL 0 for both, is not shown)")
    ax.set_ylabel("mean KL(final ‖ row), nats")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper right", frameon=False)
    n_better = sum(t < lo for t, lo in zip(tuned, logit))
    sub = f"{data.get('tokens', 0):,} held-out positions · tuned below logit at {n_better}/{len(rows)} rows"
    ax.set_title((title + "\n" if title else "") + sub, fontsize=10, loc="left")
    fig.tight_layout()
    return fig


def save_kl_png(data: dict, path: str | Path, title: str | None = None) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    fig = kl_figure(data, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
