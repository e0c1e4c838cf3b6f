"""What every grokking picture shares: an Agg-canvas figure, an atomic PNG save, the phase shading and
the colours of the curves.

``figures.py``, ``figures_neurons.py`` and ``animation.py`` import from here and this module imports
none of them, so the figure modules form no import cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

if TYPE_CHECKING:
    from mechscope.labs.grokking.analyze import Analysis

PHASE_COLOURS = (("memorisation", "#f6c89f"), ("circuit formation", "#b9d7f0"), ("cleanup", "#c3e6b4"))
TRAIN, TEST, RESTRICTED, EXCLUDED = "#1f77b4", "#d62728", "#2ca02c", "#9467bd"


def new_figure(width: float, height: float, layout: str | None = "constrained", dpi: int = 110) -> Figure:
    """A figure on its own Agg canvas (no pyplot, no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=(width, height), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: Path) -> Path:
    """Save atomically (``mechscope.io.atomic_path``; the format follows the suffix)."""
    from mechscope.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    return Path(path)


def shade_phases(ax, analysis: Analysis, label: bool = True, start: int = 1) -> None:
    """Colour the three phases behind a plot whose x axis is epochs (log scale: ``start`` = 1)."""
    ph = analysis.summary["phases"]
    ends = [ph["memorisation_end"], ph["circuit_formation_end"], ph["cleanup_end"]]
    bounds = [start, max(ends[0], start), ends[1], ends[2]]
    for (name, colour), lo, hi, first, last in zip(PHASE_COLOURS, bounds[:-1], bounds[1:], [0, *ends[:2]], ends):
        if hi > lo:
            text = f"{name} ({first:,}–{last:,})" if label else None
            ax.axvspan(lo, hi, color=colour, alpha=0.55, lw=0, label=text, zorder=0)
