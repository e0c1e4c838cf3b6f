"""The Dark Matter walkthrough for ``mechscope tour``: read "The reliability of Wikipedia is very" layer
by layer and find where a word of doubt first reaches the top-10.

``mechscope/cli/tour.py`` calls :func:`tour` and prints the lines it returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from mechscope.lens.result import LensResult
    from mechscope.model.hooked import HookedModel

PROMPT = "The reliability of Wikipedia is very"
DOUBT_WORDS = frozenset({
    "questionable", "debatable", "controversial", "dubious", "doubtful", "disputed", "contested", "uncertain",
    "unclear", "suspect", "unreliable", "problematic", "contentious", "arguable", "shaky", "iffy", "dodgy",
    "unverifiable", "inconsistent", "sketchy",
})  # fmt: skip
"""Words that voice doubt about a claim's reliability (matched on the token's text, case-insensitively)."""
NAMED = ("questionable", "debatable", "controversial", "dubious")
"""The words the walkthrough names; each gets its own line when it reaches a top-10."""
PNG_NAME = "lens_wikipedia.png"


def first_doubt(res: LensResult, position: int = -1,
                words: frozenset[str] | set[str] = DOUBT_WORDS) -> tuple[int, str, int, float] | None:  # fmt: skip
    """(row, word, rank, prob) of the first row whose top-k at ``position`` holds one of ``words``, else None."""
    for r in range(res.n_rows):
        for rank, (token, _, prob) in enumerate(res.top(r, position), 1):
            if token.strip().lower() in words:
                return r, token.strip(), rank, prob
    return None


def tour(model: HookedModel, out_dir: Path) -> list[str]:
    """Lines of the walkthrough; writes ``lens_wikipedia.png`` into ``out_dir``."""
    from mechscope.lens.logit import logit_lens
    from mechscope.viz.terminal import topk_lines

    res = logit_lens(model, PROMPT, top_k=10)
    data = res.to_dict()
    last = res.n_pos - 1
    lines = [
        "\n=== 3. The logit lens: what each layer would predict " + "=" * 18,
        f"prompt: {PROMPT!r}  ({model.name}); each row reads the last position's residual stream through the model's",
        "own final norm and unembedding (embed = before any block, L17 = the model's output). Top-10 per row:",
        *topk_lines(data, last),
    ]
    found = first_doubt(res, last)
    out_rank = {tok.strip().lower(): (rank, prob) for rank, (tok, _, prob) in enumerate(res.top(-1, last), 1)}
    if found is None:
        lines.append("\nno word of doubt reaches the top-10 at any layer on this model")
    else:
        r, word, rank, prob = found
        row = res.rows[r]
        lines.append(f"\na word of doubt first enters the top-10 at {row.label} (after block {row.layer}, "
                     f"{row.hook}): {word!r}, rank {rank}, {prob:.1%}")  # fmt: skip
        for named in NAMED:
            hit = first_doubt(res, last, {named})
            if hit is not None and hit[1].lower() != word.lower():
                lines.append(f"{named!r} enters the top-10 at {res.rows[hit[0]].label} (rank {hit[2]}, {hit[3]:.1%})")
        for w in dict.fromkeys([word.lower(), *NAMED]):
            if w in out_rank:
                lines.append(f"in the model's output {w!r} is rank {out_rank[w][0]} ({out_rank[w][1]:.1%})")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = res.save_png(out_dir / PNG_NAME, last)
        lines.append(f"picture: {path}  (every row × position; `mechscope lens \"...\" --html lens.html` to explore)")
    except OSError as exc:
        lines.append(f"(could not write the picture into {out_dir}: {exc.strerror or exc})")
    return lines
