"""Built-in contrastive prompt sets: steering vectors that need no files (``mechscope vector make --builtin``).

Each set is a module here holding ``PAIRS``: ``(pos, neg)`` statements, pair ``i`` on the same topic.
"""

from __future__ import annotations

import importlib

from mechscope.errors import ConfigError

NAMES: tuple[str, ...] = ("doubt",)
"""The built-in sets: ``doubt`` (doubtful vs confident statements, 60 pairs)."""


def builtin_set(name: str) -> tuple[list[str], list[str]]:
    """The ``(pos, neg)`` prompts of the built-in set ``name``; one line for an unknown name."""
    if name not in NAMES:
        raise ConfigError(f"unknown built-in prompt set {name!r:.40}: use {', '.join(NAMES)}")
    pairs = importlib.import_module(f"mechscope.steer.builtin.{name}").PAIRS
    return [p for p, _ in pairs], [n for _, n in pairs]
