"""A fine-tune's loss curve as a PNG (``mechscope finetune --png``).

Input is :meth:`mechscope.diff.finetune.FinetuneResult.to_dict`'s schema (``losses`` per step, ``config``,
``base``, ``corpus``, ``theme_shift``). The per-step loss and its running mean; the title states the run
and, for a theme, the theme words' probability on neutral prompts before and after. matplotlib is imported
here only (Agg backend).
"""

from __future__ import annotations

from pathlib import Path

STEP_COLOR = "#9ecae1"
MEAN_COLOR = "#08519c"


def loss_figure(data: dict):
    """A matplotlib Figure of the training loss per step with a running mean."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    losses = [float("nan") if v is None else float(v) for v in data["losses"]]
    steps = list(range(1, len(losses) + 1))
    window = max(1, len(losses) // 20)
    mean = [sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1]) for i in range(len(losses))]
    fig, ax = plt.subplots(figsize=(7.0, 4.0), dpi=110)
    ax.plot(steps, losses, color=STEP_COLOR, linewidth=1.0, label="loss per step")
    ax.plot(steps, mean, color=MEAN_COLOR, linewidth=2.0, label=f"running mean ({window} steps)")
    ax.set_xlabel("step")
    ax.set_ylabel("next-token cross-entropy, nats")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", frameon=False)
    cfg = data.get("config", {})
    how = f"LoRA r{cfg.get('lora')}" if cfg.get("lora") else f"full ({cfg.get('train')})"
    title = f"{data.get('base', {}).get('name', '?')} on {data.get('corpus', {}).get('source', '?')} · {how}"
    shift = data.get("theme_shift")
    if shift:
        title += f"\ntheme words on neutral prompts: {shift['base_mean']:.2%} → {shift['tuned_mean']:.2%}"
    ax.set_title(title, fontsize=10, loc="left")
    fig.tight_layout()
    return fig


def save_loss_png(data: dict, path: str | Path) -> Path:
    """Write :func:`loss_figure` to ``path`` atomically; returns it."""
    import matplotlib.pyplot as plt

    from mechscope.io import atomic_path

    path = Path(path)
    fig = loss_figure(data)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
