"""Interventions bound to a model: the runtime half of an intervention.

:func:`bind` checks a spec against its hook once (selection kinds and ranges, vector sizes), resolves its
tensor fields once (numbers, lists, tensors, :class:`~mechscope.model.interventions.TensorRef`) onto the
model's device and dtype, and precomputes the head / last-axis masks. ``HookedModel.hooks`` binds each
spec once per run; a patching sweep can :meth:`HookedModel.bind` a list itself and pass the bound
objects to thousands of forwards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mechscope.errors import InterventionError, OutOfRangeError
from mechscope.model.hookpoints import Dims, HookSpec
from mechscope.model.interventions import Intervention, TensorRef


class BoundIntervention:
    """One intervention resolved for one hook: call it on the hook's canonical activation."""

    def __init__(self, iv: Intervention, spec: HookSpec, values: dict[str, Any], fixed_mask: Tensor | None):
        self.iv, self.spec, self.values = iv, spec, values
        self.fixed_mask = fixed_mask
        """Head and last-axis selection, broadcastable to the activation (None = all)."""
        self._pos_masks: dict[tuple[int, int | None], Tensor] = {}

    @property
    def hook(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return f"BoundIntervention({self.iv.kind} at {self.spec.name})"

    def _position_mask(self, size: int, offset: int | None, device) -> Tensor:
        """Positions edited in a forward of ``size`` positions; ``offset`` is the absolute position of its
        first token while generating (then positions outside this step are skipped, not rejected)."""
        key = (size, offset)
        mask = self._pos_masks.get(key)
        if mask is None:
            keep = torch.zeros(size, dtype=torch.bool)
            for i in self.iv.positions:
                j = size + i if i < 0 else i - (offset or 0)
                if 0 <= j < size:
                    keep[j] = True
                elif offset is None:
                    raise OutOfRangeError(f"position {i} out of range for {self.spec.name} "
                                          f"(size {size}, valid {-size}..{size - 1})")  # fmt: skip
            shape = [1] * len(self.spec.shape)
            shape[self.spec.pos_axis] = size
            mask = keep.view(shape).to(device)
            if len(self._pos_masks) < 64:
                self._pos_masks[key] = mask
        return mask

    def __call__(self, act: Tensor, offset: int | None = None) -> Tensor:
        values = self.values
        if values and any(isinstance(v, Tensor) and v.dtype != act.dtype for v in values.values()):
            values = {k: v.to(act.dtype) if isinstance(v, Tensor) else v for k, v in values.items()}
        new = self.iv.edit(act, self.spec, values)
        if new.shape != act.shape:
            new = new.expand_as(act)
        new = new.to(act.dtype)
        mask = self.fixed_mask
        if self.iv.positions is not None:
            pos = self._position_mask(act.shape[self.spec.pos_axis], offset, act.device)
            mask = pos if mask is None else mask & pos
        return new if mask is None else torch.where(mask, new, act)


def bind(iv: Intervention, spec: HookSpec, dims: Dims, *, device: torch.device, dtype: torch.dtype,
         tensors: Mapping[str, Tensor] | None = None) -> BoundIntervention:  # fmt: skip
    """Check ``iv`` against ``spec`` and resolve its tensors once. Raises one-line errors."""
    if not isinstance(iv, Intervention):
        raise InterventionError(f"expected an Intervention, got {type(iv).__name__}")
    _check_selection(iv, spec, dims)
    sizes = vars(dims)
    last_size = sizes.get(spec.last_dim)
    values: dict[str, Any] = {}
    for name in iv.tensor_fields:
        raw = getattr(iv, name)
        if raw is None:
            continue
        t = _resolve(raw, iv, name, tensors).to(device=device, dtype=dtype)
        if name != "source" and t.ndim > 0 and last_size is not None and t.shape[-1] != last_size:
            raise InterventionError(f"{iv.kind} on {spec.name}: {name} has {t.shape[-1]} entries but {spec.last_dim} "
                                    f"is {last_size}")  # fmt: skip
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise InterventionError(f"{iv.kind} on {spec.name}: {name} holds NaN or infinite values")
        values[name] = t
    return BoundIntervention(iv, spec, values, _fixed_mask(iv, spec, dims, device))


def bind_all(ivs: Sequence[Intervention | BoundIntervention], specs: Mapping[str, HookSpec], lookup, dims: Dims, *,
             device, dtype, tensors: Mapping[str, Tensor] | None = None) -> list[BoundIntervention]:  # fmt: skip
    """Bind a list (already-bound entries pass through); ``lookup(name)`` resolves a hook name or raises."""
    out = []
    for iv in ivs:
        if isinstance(iv, BoundIntervention):
            if specs.get(iv.spec.name) is not iv.spec:
                raise InterventionError(f"{iv!r} was bound to another model: bind it with this model's bind()")
            out.append(iv)
        else:
            if not isinstance(iv, Intervention):
                raise InterventionError(f"expected an Intervention, got {type(iv).__name__}")
            out.append(bind(iv, lookup(iv.hook), dims, device=device, dtype=dtype, tensors=tensors))
    return out


def _resolve(raw, iv: Intervention, name: str, tensors: Mapping[str, Tensor] | None) -> Tensor:
    if isinstance(raw, Tensor):
        return raw.detach()
    if isinstance(raw, TensorRef):
        return _load_ref(raw, f"{iv.kind} {name}", tensors)
    return torch.as_tensor(raw, dtype=torch.float32)


def _load_ref(ref: TensorRef, what: str, tensors: Mapping[str, Tensor] | None) -> Tensor:
    if ref.name is not None:
        if tensors is None or ref.name not in tensors:
            known = ", ".join(sorted(tensors)) if tensors else "none were given"
            raise InterventionError(f"{what} refers to tensor {ref.name!r}, which was not passed (tensors: {known})")
        return tensors[ref.name].detach()
    from safetensors import SafetensorError, safe_open

    path = Path(ref.file)
    if not path.is_file():
        raise InterventionError(f"{what}: tensor file {ref.file} does not exist (or is not a file)")
    try:
        with safe_open(str(path), framework="pt") as f:
            if ref.key not in f.keys():
                raise InterventionError(f"{what}: {ref.file} has no tensor {ref.key!r} (it has {', '.join(sorted(f.keys())) or 'none'})")
            return f.get_tensor(ref.key)
    except (SafetensorError, OSError, ValueError) as exc:
        raise InterventionError(f"{what}: {ref.file} is not a readable safetensors file ({str(exc).splitlines()[0]})") from None


def _check_selection(iv: Intervention, spec: HookSpec, dims: Dims) -> None:
    is_mlp = spec.last_dim == "d_mlp"
    if iv.neurons is not None and not is_mlp:
        raise InterventionError(f"neurons= applies to mlp.hook_pre / mlp.hook_post; {spec.name} is not MLP neurons (use dims=)")
    if iv.dims is not None and is_mlp:
        raise InterventionError(f"{spec.name} holds MLP neurons: select them with neurons=, not dims=")
    if iv.dims is not None and spec.kind == "pattern":
        raise InterventionError("a pattern has no dims: select query positions with positions= and heads with heads=")
    if iv.heads is not None and spec.head_axis is None:
        raise InterventionError(f"heads= needs a per-head hook (attn.hook_q/k/v/z/pattern); {spec.name} has no head axis")
    sizes = vars(dims)
    if iv.heads is not None:
        _check_range(iv.heads, sizes["n_kv_heads"] if "n_kv_heads" in spec.shape else sizes["n_heads"], "head", spec.name)
    last = iv.dims if iv.dims is not None else iv.neurons
    if last is not None:
        _check_range(last, sizes[spec.last_dim], "neuron" if iv.neurons is not None else "dim", spec.name)


def _check_range(idx: Sequence[int], size: int, what: str, name: str) -> None:
    for i in idx:
        if not -size <= i < size:
            raise OutOfRangeError(f"{what} {i} out of range for {name}: valid 0..{size - 1}")


def _fixed_mask(iv: Intervention, spec: HookSpec, dims: Dims, device) -> Tensor | None:
    sizes = vars(dims)
    ndim = len(spec.shape)
    mask = None
    axes = []
    if iv.heads is not None:
        axes.append((spec.head_axis, iv.heads, sizes["n_kv_heads"] if "n_kv_heads" in spec.shape else sizes["n_heads"]))
    last = iv.dims if iv.dims is not None else iv.neurons
    if last is not None:
        axes.append((ndim - 1, last, sizes[spec.last_dim]))
    for axis, idx, size in axes:
        keep = torch.zeros(size, dtype=torch.bool)
        keep[list(idx)] = True
        shape = [1] * ndim
        shape[axis] = size
        m = keep.view(shape)
        mask = m if mask is None else mask & m
    return mask.to(device) if mask is not None else None
