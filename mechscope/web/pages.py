"""The page registry: what the nav lists and which routes each page brings.

A page is a JavaScript module ``static/pages/<id>.js`` (exporting ``render(root, ctx)``) plus, when it
needs its own API, a routes module ``mechscope/web/routes/<id>.py`` exposing ``router`` (a FastAPI
``APIRouter``). Adding a page is one line here plus those two files (docs/web.md, "Adding a page").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Page:
    """One page of the workbench."""

    id: str
    """URL fragment (``#/lens``), the JS module name (``static/pages/lens.js``) and the routes module name."""
    title: str
    """Nav label."""
    summary: str
    """One line for the home page."""
    routes: str | None = None
    """Module under ``mechscope.web.routes`` exposing ``router`` (None: the page uses other pages' routes)."""

    def to_dict(self) -> dict:
        return asdict(self)


PAGES: tuple[Page, ...] = (
    Page("home", "Home", "The loaded model and the pages.", None),
    Page("lens", "Lens", "Logit / tuned lens: every row × position of a prompt, top-10 per cell.", "lens"),
    Page("intervene", "Intervene", "Edit a hook (set, clamp, add, ablate): top-10 and continuations before and after.",
         "intervene"),
    Page("features", "Neurons & features", "An SAE latent or MLP neuron: density, top contexts, ± logits, similar "
         "latents, your own text.", "features"),
    Page("steer", "Steering", "Steer with an SAE latent (dose slider) or a steering vector (coefficient sweep).", "steer"),
    Page("circuits", "Circuits", "Activation patching and causal tracing heatmaps, DLA bars; click a cell for its top-10.",
         "circuits"),
    Page("grokking", "Grokking", "Curves, Fourier spectrum, probe circle and surfaces over a run's checkpoints; train one.",
         "grok"),
    Page("superposition", "Superposition", "Toy models of superposition, near-orthogonal vectors, the AND-neuron memory.",
         "superposition"),
    Page("diff", "Diffing", "The loaded model against a fine-tune: diff norms, promoted tokens, steering, crosscoder.",
         "diff"),
)
"""In nav order. Core routes (info, hooks, jobs, runs) live in ``routes/core.py`` and always load."""
