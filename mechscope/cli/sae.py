"""``mechscope sae``: sparse autoencoders, from activations to features.

Each action lives in its own module ``mechscope/cli/sae_<action>.py`` exposing ``register(actions)``
(adds its parser, sets ``func``); this module only collects them, in :data:`ACTIONS` order.
"""

from __future__ import annotations

import importlib

from mechscope.cli.common import add_parser

ACTIONS = ("harvest", "train", "eval", "sweep", "features", "top", "convert")
EXAMPLES = """\
  mechscope sae harvest --hook blocks.6.hook_resid_post --tokens 200000 --out runs/acts-l6     # ~2 min
  mechscope sae train --store runs/acts-l6 --arch topk --width 4096 --k 32 --out runs/sae-l6
  mechscope sae train --hook blocks.6.hook_resid_post --tokens 100000 --out runs/sae-l6       # straight from the model
  mechscope sae eval runs/sae-l6 --json
  mechscope sae top "The reliability of Wikipedia is very" --sae runs/sae-l6
  mechscope sae features runs/sae-l6 --latent 7 --store runs/acts-l6 --png latent7.png
Actions: harvest, train, eval, sweep, features, top, convert; `mechscope sae ACTION --help` for each."""


def register(subparsers) -> None:
    p = add_parser(subparsers, "sae",
                   "Sparse autoencoders and transcoders: harvest activations, train (TopK, BatchTopK, JumpReLU, ReLU), "
                   "evaluate (L0, FVU, loss recovered), inspect features, convert between layouts.",
                   EXAMPLES)  # fmt: skip
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for name in ACTIONS:
        module_name = f"mechscope.cli.sae_{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        module.register(actions)
