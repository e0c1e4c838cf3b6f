"""Edits of one SAE latent inside the model: the decoder-row **add** and the spliced-SAE **clamp**.

Both land on the SAE's ``target`` hook (its ``hook`` for an SAE, the reconstructed hook for a
transcoder), at the positions chosen (by default every position but 0, the BOS token: Gemma's BOS
residual is ~17x larger than the rest, and SAEs are trained without it).

- ``add``: ``y ← y + V·W_dec[N]``. Expressed as an :class:`~mechscope.model.interventions.Add` with the
  decoder row as its vector (:func:`add_intervention`), so it composes with every other intervention
  and stays active during ``generate``.
- ``clamp``: the latent is set to ``V`` inside an SAE spliced in at the hook that keeps its
  reconstruction error: ``y ← SAE(x with f_N := V) + (y − SAE(x)) = y + (V − f_N(x))·W_dec[N]``, with
  ``x`` the SAE's input (captured in the same forward; for a transcoder the input hook fires first).
  A forward hook (:class:`LatentClamp`), passed with ``model.hooks(fwd_hooks=...)``.

Neither edit touches an SAE-free path: with ``V = 0`` (add) or ``V = f_N(x)`` (clamp) the model is
unchanged bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from mechscope.errors import ConfigError, InterventionError, OutOfRangeError
from mechscope.model.interventions import Add

FIRST_POSITION = 1
"""Steering starts here by default: position 0 is BOS, left out."""


def check_latent(sae, latent: int) -> int:
    """``latent`` as an int in ``0..width-1`` (no negative indexing), else one line."""
    width = sae.cfg.width
    if isinstance(latent, bool) or not isinstance(latent, int):
        raise ConfigError(f"a latent is a whole number, got {type(latent).__name__} {latent!r:.40}")
    if not 0 <= latent < width:
        raise OutOfRangeError(f"latent {latent} out of range: the SAE has {width} latents (0..{width - 1})")
    return latent


def check_steerable(model, sae) -> None:
    """The SAE's hooks must be ``[batch, pos, d]`` activations, and a transcoder's input must fire no later
    than its target (the clamp reads the input in the same forward)."""
    target = model.spec(sae.target)
    for spec in {model.spec(sae.hook).name: model.spec(sae.hook), target.name: target}.values():
        if len(spec.shape) != 3 or spec.kind == "pattern":
            raise ConfigError(f"steering edits [batch, pos, d] activations; {spec.name} has shape {spec.shape}")
    order = model.hook_names
    if order.index(model.spec(sae.hook).name) > order.index(target.name):
        raise ConfigError(f"the SAE reads {sae.hook}, which fires after its target {sae.target}: cannot clamp its latents")


def decoder_row(sae, latent: int) -> Float[Tensor, " d_model"]:
    """Latent ``latent``'s output direction ``W_dec[latent]`` (detached)."""
    return sae.W_dec[check_latent(sae, latent)].detach()


def steered_positions(n_positions: int, positions: Sequence[int] | None = None,
                      first: int = FIRST_POSITION) -> tuple[int, ...]:  # fmt: skip
    """Absolute positions edited in a run of ``n_positions`` tokens (prompt plus generated): ``positions``
    as given (non-negative), or every position from ``first`` on."""
    if positions is None:
        return tuple(range(first, n_positions))
    out = []
    for p in positions:
        if isinstance(p, bool) or not isinstance(p, int) or p < 0:
            raise OutOfRangeError(f"steered positions are absolute (0 = BOS, ≥ 0); got {p!r:.40}")
        out.append(p)
    return tuple(out)


def add_intervention(sae, latent: int, value: float, positions: Sequence[int]) -> Add:
    """``y ← y + value·W_dec[latent]`` at ``sae.target``, at absolute ``positions`` (use it inside
    ``model.intervene`` so positions count generated tokens too)."""
    return Add(sae.target, positions=list(positions), vector=decoder_row(sae, latent), scale=float(value))


class LatentClamp:
    """Clamp latent ``latent`` to ``value`` in an SAE spliced in at its hook, keeping the error term.

    ``hooks()`` gives the forward hooks for ``model.hooks(fwd_hooks=...)`` (active during ``generate``
    too). Positions are absolute: a forward over more than one position starts at 0, a one-position
    forward (a cached decoding step) continues where the last one ended. Use a fresh object (or
    :meth:`reset`) per prompt.
    """

    def __init__(self, sae, latent: int, value: float, positions: Sequence[int] | None = None,
                 first: int = FIRST_POSITION):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InterventionError(f"a clamp value must be a finite number, got {value!r:.40}")
        self.sae, self.latent, self.value = sae, check_latent(sae, latent), float(value)
        self.positions = None if positions is None else frozenset(steered_positions(0, positions))
        self.first = first
        self.row = decoder_row(sae, latent)  # [d_out]
        self.reset()

    def reset(self) -> None:
        self._seen = 0
        self._x: Tensor | None = None

    def _capture(self, act: Tensor, spec) -> None:
        self._x = act

    def _mask(self, n: int, device) -> Tensor:
        offset = 0 if n > 1 else self._seen
        self._seen = offset + n
        pos = torch.arange(offset, offset + n)
        keep = pos >= self.first if self.positions is None else torch.tensor([int(p) in self.positions for p in pos])
        return keep.to(device)

    def _edit(self, act: Float[Tensor, "batch pos d_out"], spec) -> Tensor:
        x = act if self.sae.hook == self.sae.target else self._x
        if x is None or x.shape[:2] != act.shape[:2]:
            raise InterventionError(f"the clamp at {spec.name} did not see its input {self.sae.hook} in this forward")
        w = self.sae.W_enc
        with torch.no_grad():
            f = self.sae.encode(x.to(device=w.device, dtype=w.dtype))[..., self.latent]  # [b, p]
            delta = (self.value - f) * self._mask(act.shape[1], f.device)  # [b, p], 0 where not steered
            edit = delta[..., None] * self.row.to(device=f.device, dtype=f.dtype)  # [b, p, d_out]
        self._x = None
        return act + edit.to(device=act.device, dtype=act.dtype)

    def hooks(self) -> list[tuple[str, object]]:
        fns = [] if self.sae.hook == self.sae.target else [(self.sae.hook, self._capture)]
        return [*fns, (self.sae.target, self._edit)]
