"""Errors a user can trigger. Each carries one line: what was wrong and how to fix it.

The CLI prints ``mechscope: error: <message>`` and exits with code 2 for any of these.
docs/errors.md has one entry per class (symptom, cause, fix).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MechscopeError(Exception):
    """Base class: a user-facing problem with a one-line explanation."""


class ModelSpecError(MechscopeError):
    """The model spec names nothing mechscope can load."""


class OfflineError(MechscopeError):
    """A hub id was requested while the hub is unreachable or HF_HUB_OFFLINE is set."""


class UnsupportedArchitectureError(MechscopeError):
    """The model's architecture has no adapter table."""


class AdapterError(MechscopeError):
    """An adapter names a module path the loaded model does not have."""


class HookNameError(MechscopeError):
    """A hook name is not one the model exposes."""


class OutOfRangeError(MechscopeError):
    """A layer, position, head, dimension or neuron index is out of range."""


class PromptError(MechscopeError):
    """A prompt is empty, or longer than the model's context window."""


class InterventionError(MechscopeError):
    """An intervention is malformed (wrong vector size, bad selection, bad JSON)."""


class CacheError(MechscopeError):
    """A converted-model cache is unusable and could not be rebuilt."""


class RunError(MechscopeError):
    """A run directory (checkpoints, lenses, SAEs) is missing or corrupted."""


class ConfigError(MechscopeError):
    """A configuration value is outside its allowed range."""


class LensMismatchError(RunError):
    """A saved tuned lens belongs to another model, or lacks translators for the rows asked for."""


class CheckpointMismatchError(RunError):
    """A training checkpoint belongs to another model, config or training text, or is unreadable."""


class CorpusError(MechscopeError):
    """A corpus source is missing, empty, unreadable, or needs an optional package that is not installed."""


class ArtifactError(RunError):
    """An artifact directory is missing, corrupted, of another kind, or made for another model."""


class TrainingError(RunError):
    """Training met non-finite activations or diverged (loss NaN/inf); it stops at the offending step."""


class OutputPathError(MechscopeError):
    """An output path cannot be written without losing something (a user's folder, a file) or at all."""


class AccessError(MechscopeError):
    """A path given to the web workbench lies outside its ``--runs`` roots (or is a link out of them)."""


class AttributionError(MechscopeError):
    """A component decomposition is not available for this model (e.g. a norm of an unknown kind)."""


def suggest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ' (did you mean a, b?)' for the closest choices, or '' if none are close."""
    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    return f" (did you mean {', '.join(close)}?)" if close else ""
