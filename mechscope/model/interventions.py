"""Interventions: plain, JSON-serialisable specs of an edit at a hook point.

Every intervention names one hook and optionally restricts itself to ``positions`` (the position axis;
the query axis of a pattern), ``heads`` (per-head hooks and patterns), and the last axis: ``dims`` for
residual-stream / head vectors, ``neurons`` for ``mlp.hook_pre``/``mlp.hook_post``. Be precise about
what an edit touches: a coordinate of ``hook_mlp_out`` is a residual-stream dimension, not a neuron.

Kinds: :class:`Set`, :class:`Clamp`, :class:`Add`, :class:`Scale`, :class:`Zero`, :class:`MeanAblate`,
:class:`ResampleAblate`. A list of interventions composes in order; they stay active during
``generate`` (positions are absolute token positions; negative positions count from the end of the
current forward's input).

The dataclass is only the spec. :func:`mechscope.model.bound.bind` turns it into the runtime object
once per run (tensors built on the model's device, selections checked against the hook), so a sweep of
thousands of patched forwards pays for that once. A tensor-valued field (``value``, ``vector``,
``mean``, ``source``) holds a number, a list, a :class:`torch.Tensor` (kept as it is, never copied to a
list), or a :class:`TensorRef` to a safetensors file or to a tensor passed at bind time, so a big
vector need not be inlined in JSON.

    >>> from mechscope.interventions import Clamp
    >>> edit = Clamp("blocks.6.hook_mlp_out", dims=[1393], min=40.0, max=40.0)   # doctest: +SKIP
    >>> with model.intervene([edit]):                                             # doctest: +SKIP
    ...     model.generate("The reliability of Wikipedia is very")
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch
from torch import Tensor

from mechscope.errors import InterventionError

_KINDS: dict[str, type[Intervention]] = {}
MAX_INDICES = 1 << 20
"""Most entries in one selection list (positions, heads, dims, neurons)."""
MAX_VALUES = 1 << 26
"""Most numbers inlined in one tensor-valued field (use a TensorRef to a file beyond that)."""
MAX_DEPTH = 6
"""Deepest list nesting accepted in a tensor-valued field."""


@dataclass(frozen=True)
class TensorRef:
    """A tensor kept outside the spec: ``key`` in the safetensors ``file``, or ``name`` in the mapping
    passed at bind time (``model.intervene(ivs, tensors={"clean": cache["blocks.3.hook_resid_pre"]})``).
    JSON: ``{"file": "steer.safetensors", "key": "vector"}`` or ``{"tensor": "clean"}``."""

    file: str | None = None
    key: str | None = None
    name: str | None = None

    def __post_init__(self):
        by_file = self.file is not None
        if by_file == (self.name is not None):
            raise InterventionError("a tensor reference names either a file (with a key) or a tensor, not both")
        for what in ("file", "key", "name"):
            v = getattr(self, what)
            if v is not None and (not isinstance(v, str) or not v):
                raise InterventionError(f"tensor reference {what} must be a non-empty string, got {v!r}")
        if by_file and self.key is None:
            raise InterventionError(f"tensor reference to {self.file} needs a key (the tensor's name in the file)")

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "key": self.key} if self.file is not None else {"tensor": self.name}

    @staticmethod
    def from_dict(d: Mapping[str, Any], what: str) -> TensorRef:
        extra = set(d) - {"file", "key", "tensor"}
        if extra:
            raise InterventionError(f"{what}: a tensor reference has keys file+key or tensor; unknown {sorted(extra)}")
        return TensorRef(file=d.get("file"), key=d.get("key"), name=d.get("tensor"))


# --- field validation (the schema: every JSON value passes through here) -------------------------------
def _int(v, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and math.isfinite(v) and v == int(v):
            return int(v)
        raise InterventionError(f"{what} must be whole numbers, got {v!r}")
    return v


def _ints(value, what: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, Tensor):
        value = value.flatten().tolist()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (int, float, Sequence)):
        raise InterventionError(f"{what} must be an int or a list of ints, got {type(value).__name__} {value!r:.40}")
    if not isinstance(value, Sequence):
        return (_int(value, what),)
    if len(value) > MAX_INDICES:
        raise InterventionError(f"{what} lists {len(value)} entries; at most {MAX_INDICES}")
    return tuple(_int(v, what) for v in value)


def _number(v, what: str, *, allow_none: bool = False) -> float | None:
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InterventionError(f"{what} must be a number, got {type(v).__name__} {v!r:.40}")
    if not math.isfinite(v):
        raise InterventionError(f"{what} must be finite, got {v}")
    return float(v)


def _nested(v, what: str, depth: int, count: list[int]):
    if isinstance(v, (list, tuple)):
        if depth >= MAX_DEPTH:
            raise InterventionError(f"{what} is nested more than {MAX_DEPTH} levels deep")
        return [_nested(x, what, depth + 1, count) for x in v]
    count[0] += 1
    if count[0] > MAX_VALUES:
        raise InterventionError(f"{what} inlines more than {MAX_VALUES} numbers: save it to a safetensors file and "
                                "reference it as {\"file\": ..., \"key\": ...}")  # fmt: skip
    return _number(v, what)


def _values(value, what: str, *, nested: bool = False):
    """A tensor-valued field: float, tuple of floats (or nested lists with ``nested``), Tensor or TensorRef."""
    if isinstance(value, (TensorRef, Tensor)):
        if isinstance(value, Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise InterventionError(f"{what} holds NaN or infinite values")
        return value
    if isinstance(value, Mapping):
        return TensorRef.from_dict(value, what)
    if isinstance(value, (list, tuple)):
        flat = _nested(value, what, 0, [0])
        if nested and any(isinstance(x, list) for x in flat):
            return torch.tensor(flat, dtype=torch.float32)
        if any(isinstance(x, list) for x in flat):
            raise InterventionError(f"{what} must be a flat list of numbers (one entry per index of the hook's last axis)")
        return tuple(flat)
    return _number(value, what)


def _plain(value):
    if isinstance(value, TensorRef):
        return value.to_dict()
    if isinstance(value, Tensor):
        return value.detach().cpu().tolist()
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True, eq=False)
class Intervention:
    """Base: where an edit applies. Subclasses say what it does in :meth:`edit`."""

    hook: str
    positions: Sequence[int] | None = None
    heads: Sequence[int] | None = None
    dims: Sequence[int] | None = None
    neurons: Sequence[int] | None = None
    kind: ClassVar[str] = "intervention"
    tensor_fields: ClassVar[tuple[str, ...]] = ()
    """Fields holding numbers or tensors that :func:`~mechscope.model.bound.bind` resolves once."""

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        _KINDS[cls.kind] = cls

    def __post_init__(self):
        if not isinstance(self.hook, str) or not self.hook:
            raise InterventionError(f"{self.kind}: hook must be a hook name (a string), got {self.hook!r:.40}")
        for name in ("positions", "heads", "dims", "neurons"):
            object.__setattr__(self, name, _ints(getattr(self, name), f"{self.kind} {name}"))
        if self.dims is not None and self.neurons is not None:
            raise InterventionError("give either dims (residual/head coordinates) or neurons (MLP), not both")

    # --- identity and serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None:
                d[f.name] = _plain(v)
        return d

    def _key(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @staticmethod
    def from_dict(d: Any) -> Intervention:
        if not isinstance(d, Mapping):
            raise InterventionError(f"each intervention must be a JSON object, got {type(d).__name__} {d!r:.40}")
        d = dict(d)
        kind = d.pop("kind", None)
        if not isinstance(kind, str) or kind not in _KINDS or kind == "intervention":
            raise InterventionError(f"unknown intervention kind {kind!r:.40}; use one of {', '.join(k for k in _KINDS if k != 'intervention')}")
        cls = _KINDS[kind]
        allowed = {f.name for f in fields(cls)}
        extra = set(d) - allowed
        if extra:
            raise InterventionError(f"{kind} intervention has unknown field(s) {sorted(map(str, extra))}; allowed: {sorted(allowed)}")
        if "hook" not in d:
            raise InterventionError(f"{kind} intervention needs a hook, e.g. \"hook\": \"blocks.6.hook_resid_post\"")
        return cls(**d)

    # --- what the edit does (on the selected entries; bound.py applies the selection) -----------------
    def edit(self, act: Tensor, spec, values: dict[str, Any]) -> Tensor:  # pragma: no cover - abstract
        """The edited activation (``values``: this intervention's tensor fields, resolved by bind)."""
        raise NotImplementedError(f"{type(self).__name__} does not define edit()")


@dataclass(frozen=True, eq=False)
class Set(Intervention):
    """Set the selected entries to ``value`` (a number, or a vector along the hook's last axis)."""

    value: float | Sequence[float] | Tensor | TensorRef = 0.0
    kind: ClassVar[str] = "set"
    tensor_fields: ClassVar[tuple[str, ...]] = ("value",)

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "value", _values(self.value, "set value"))

    def edit(self, act, spec, values):
        return values["value"].expand_as(act)


@dataclass(frozen=True, eq=False)
class Clamp(Intervention):
    """Clamp the selected entries into ``[min, max]`` (either bound may be None)."""

    min: float | None = None
    max: float | None = None
    kind: ClassVar[str] = "clamp"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "min", _number(self.min, "clamp min", allow_none=True))
        object.__setattr__(self, "max", _number(self.max, "clamp max", allow_none=True))
        if self.min is None and self.max is None:
            raise InterventionError("clamp needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise InterventionError(f"clamp min {self.min} is above max {self.max}")

    def edit(self, act, spec, values):
        return act.clamp(min=self.min, max=self.max)


@dataclass(frozen=True, eq=False)
class Add(Intervention):
    """Add ``scale * vector`` along the hook's last axis (a steering vector for residual hooks)."""

    vector: Sequence[float] | Tensor | TensorRef = field(default_factory=tuple)
    scale: float = 1.0
    kind: ClassVar[str] = "add"
    tensor_fields: ClassVar[tuple[str, ...]] = ("vector",)

    def __post_init__(self):
        super().__post_init__()
        vec = _values(self.vector, "add vector")
        if isinstance(vec, float) or (isinstance(vec, tuple) and len(vec) == 0):
            raise InterventionError("add needs a non-empty vector (a list of floats, a tensor or a tensor reference)")
        object.__setattr__(self, "vector", vec)
        object.__setattr__(self, "scale", _number(self.scale, "add scale"))

    def edit(self, act, spec, values):
        return act + self.scale * values["vector"]


@dataclass(frozen=True, eq=False)
class Scale(Intervention):
    """Multiply the selected entries by ``factor``."""

    factor: float = 1.0
    kind: ClassVar[str] = "scale"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "factor", _number(self.factor, "scale factor"))

    def edit(self, act, spec, values):
        return act * self.factor


@dataclass(frozen=True, eq=False)
class Zero(Intervention):
    """Zero ablation: set the selected entries to 0."""

    kind: ClassVar[str] = "zero"

    def edit(self, act, spec, values):
        return torch.zeros_like(act)


@dataclass(frozen=True, eq=False)
class MeanAblate(Intervention):
    """Replace the selected entries by a mean: ``mean`` (a vector along the last axis, e.g. averaged
    over a dataset) or, when None, the mean over batch and positions of the current forward."""

    mean: Sequence[float] | Tensor | TensorRef | None = None
    kind: ClassVar[str] = "mean"
    tensor_fields: ClassVar[tuple[str, ...]] = ("mean",)

    def __post_init__(self):
        super().__post_init__()
        if self.mean is not None:
            object.__setattr__(self, "mean", _values(self.mean, "mean ablation mean"))

    def edit(self, act, spec, values):
        if values.get("mean") is not None:
            return values["mean"].expand_as(act)
        if spec.kind == "pattern":
            return act.mean(dim=0, keepdim=True).expand_as(act)
        return act.mean(dim=(0, 1), keepdim=True).expand_as(act)


@dataclass(frozen=True, eq=False)
class ResampleAblate(Intervention):
    """Replace the selected entries by the same entries from another input: ``source`` (an activation
    of the hook's shape, e.g. from ``run_with_cache`` on a corrupted prompt; a tensor is kept as it is),
    or, when None, another batch element chosen by a seeded cyclic shift (never a prompt itself)."""

    source: Any = None
    seed: int = 0
    kind: ClassVar[str] = "resample"
    tensor_fields: ClassVar[tuple[str, ...]] = ("source",)

    def __post_init__(self):
        super().__post_init__()
        if self.source is not None:
            object.__setattr__(self, "source", _values(self.source, "resample source", nested=True))
        object.__setattr__(self, "seed", _int(self.seed, "resample seed"))

    def edit(self, act, spec, values):
        src = values.get("source")
        if src is not None:
            if src.shape == act.shape:
                return src
            try:
                return src.expand_as(act)
            except RuntimeError:
                raise InterventionError(
                    f"resample source for {spec.name} has shape {tuple(src.shape)}, activation has {tuple(act.shape)}"
                ) from None
        b = act.shape[0]
        if b < 2:
            raise InterventionError("resample ablation without a source needs a batch of at least 2 prompts")
        gen = torch.Generator().manual_seed(self.seed)
        shift = int(torch.randint(1, b, (1,), generator=gen))
        perm = (torch.arange(b) + shift) % b  # a cyclic shift: never maps a prompt to itself
        return act[perm.to(act.device)]


def to_json(interventions: Sequence[Intervention]) -> str:
    return json.dumps([iv.to_dict() for iv in interventions])


def from_json(text: str) -> list[Intervention]:
    """Parse and validate interventions (one object or a list); every problem is one line naming the field."""
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InterventionError(f"interventions are not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise InterventionError("interventions JSON is nested too deeply") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise InterventionError("interventions JSON must be an object or a list of objects")
    return [Intervention.from_dict(d) for d in data]


def _reject_constant(name: str):
    raise InterventionError(f"interventions JSON holds {name}: numbers must be finite")
