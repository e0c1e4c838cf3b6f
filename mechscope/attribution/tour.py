"""The causal-tracing step of ``mechscope tour``: where does Gemma recall that Michael Jordan plays
basketball? (3Blue1Brown's "How might LLMs store facts"; Meng et al. 2022.)

``mechscope/cli/tour.py`` calls :func:`tour` and prints the lines it returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from mechscope.model.hooked import HookedModel

PROMPT = "Michael Jordan plays the sport of"
SUBJECT = "Michael Jordan"
ANSWER = " basketball"
PNG_NAME = "trace_michael_jordan.png"
SAMPLES = 4
"""Noise draws: 4 keeps this step near 20 s on 2 CPU cores (``mechscope trace`` defaults to 10)."""


def tour(model: HookedModel, out_dir: Path) -> list[str]:
    """Lines of the walkthrough; writes ``trace_michael_jordan.png`` into ``out_dir``."""
    from mechscope.attribution.tracing import TraceConfig, causal_trace
    from mechscope.viz.patching import save_trace_png

    res = causal_trace(model, PROMPT, SUBJECT, ANSWER, TraceConfig(samples=SAMPLES))
    s = res.subject_positions[-1]
    mlp, attn = res.effects["mlp"], res.effects["attn"]
    mlp_layer = int(mlp[:, s].argmax())
    attn_layer = int(attn[:, -1].argmax())
    png = save_trace_png(res.to_dict(), Path(out_dir) / PNG_NAME)
    return [
        "\n=== Where facts live: causal tracing " + "=" * 34,
        f"prompt: {PROMPT!r} → {ANSWER!r}: P = {res.clean_prob:.2f}; with noise on {SUBJECT!r}'s embeddings "
        f"P = {res.corrupted_prob:.2f} ({SAMPLES} noise samples).",
        f"Restoring the MLP outputs at the last subject token ({res.tokens[s]!r}) around layer {mlp_layer} brings "
        f"P back by {float(mlp[mlp_layer, s]):.2f}; restoring attention at the last token around layer {attn_layer} "
        f"by {float(attn[attn_layer, -1]):.2f}.",
        "The picture shows the fact being looked up by early-to-middle MLPs at the subject's last token and then "
        "moved by late attention to the last position, where it is read out (Meng et al. 2022).",
        f"wrote {png}",
    ]
