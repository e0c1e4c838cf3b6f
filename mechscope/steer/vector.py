"""Steering vectors: a direction in one hook's activations, made by contrasting two prompt sets.

Contrastive activation addition (Rimsky et al. 2024; Turner et al. 2023): run the ``pos`` prompts
("doubtful") and the ``neg`` prompts ("confident") to ``hook`` (a ``[batch, pos, d_model]`` hook such as
``blocks.9.hook_resid_post``; :meth:`HookedModel.collect` stops there, no logits), reduce each prompt to
one activation, and take

- ``method="mean"``: the difference of means, ``v = mean(pos) - mean(neg)``;
- ``method="pca"``: the first principal direction ``u`` of the **paired** differences
  ``d_i = pos_i - neg_i`` (``pos`` and ``neg`` must then have equal counts, pair ``i`` = line ``i``),
  found as the top right-singular vector of the un-centred ``[pairs, d_model]`` matrix (centring would
  subtract the very shift looked for; un-centred it equals PCA with each pair's order flipped at random,
  as representation engineering does). ``u`` is turned to point along the mean difference ``m`` and
  scaled to ``m``'s projection on it: ``v = (m·u) u``. So ``v`` has the size of the mean difference
  along ``u``, ``|v| ≤ |m|``, and the same coefficient means the same thing for both methods.

``position`` says how a prompt becomes one activation: ``"mean"`` (the mean over its positions but
BOS), ``"last"`` (its last token), or ``"all"`` (every position kept: the vector is ``[pos, d_model]``,
row ``i`` for absolute position ``i``; every prompt must then have the same token count).

The vector is kept as made: applying it with coefficient ``c`` adds ``c·v`` (c = 1 is the raw difference
of means, no normalisation). :mod:`mechscope.steer.apply` applies it.

    >>> v = make_vector(model, ["I doubt it will rain."], ["I know it will rain."], "blocks.9.hook_resid_post")  # doctest: +SKIP
    >>> v.save("doubt-l9")                                                                                      # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from mechscope.errors import ConfigError

KIND = "steering-vector"
"""The artifact kind of a saved vector (``mechscope.json``)."""
VECTOR_KEY = "vector"
"""The tensor's name in ``tensors.safetensors``."""
METHODS: tuple[str, ...] = ("mean", "pca")
"""Makers of :func:`make_vector`; a :class:`SteeringVector` may record others (``"diff"``: a model difference)."""
POSITIONS: tuple[str, ...] = ("mean", "last", "all")
BATCH = 16
"""Prompts per forward while collecting."""


@dataclass
class SteeringVector:
    """A direction at ``hook`` of one model, and how it was made."""

    vector: Float[Tensor, " d_model"] | Float[Tensor, "pos d_model"]
    """The direction as made (float32, CPU); ``[pos, d_model]`` for a per-position vector."""
    hook: str
    """The hook it is added at (canonical name, e.g. ``blocks.9.hook_resid_post``)."""
    model: str
    """The model's name when it was made (for messages)."""
    fingerprint: str
    """The model's content fingerprint (:attr:`HookedModel.fingerprint`): another model's vector is refused."""
    method: str = "mean"
    """How it was made: ``mean`` | ``pca`` (``make_vector``), or another maker's name (``diff``)."""
    meta: dict = field(default_factory=dict)
    """Provenance: prompt counts, position mode, norms, PCA explained variance, ..."""

    def __post_init__(self):
        if not isinstance(self.vector, Tensor) or self.vector.ndim not in (1, 2) or self.vector.numel() == 0:
            shape = tuple(self.vector.shape) if isinstance(self.vector, Tensor) else type(self.vector).__name__
            raise ConfigError(f"a steering vector is a [d_model] or [pos, d_model] tensor, got {shape}")
        if not self.vector.is_floating_point() or not bool(torch.isfinite(self.vector).all()):
            raise ConfigError("a steering vector must hold finite floating-point numbers")
        self.vector = self.vector.detach().to("cpu", torch.float32)
        for name in ("hook", "model", "method"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"a steering vector's {name} must be a non-empty string, got {getattr(self, name)!r:.40}")
        if not isinstance(self.fingerprint, str):
            raise ConfigError(f"a steering vector's fingerprint must be a string, got {self.fingerprint!r:.40}")
        if not isinstance(self.meta, dict):
            raise ConfigError("a steering vector's meta must be a dict")

    @property
    def per_position(self) -> bool:
        """True for a ``[pos, d_model]`` vector (row ``i`` for absolute position ``i``)."""
        return self.vector.ndim == 2

    @property
    def d_model(self) -> int:
        return self.vector.shape[-1]

    @property
    def norm(self) -> float:
        """The L2 norm (of the non-BOS rows' mean, for a per-position vector)."""
        return float(self.tail.norm())

    @property
    def tail(self) -> Float[Tensor, " d_model"]:
        """The one-row form: the vector itself, or for a per-position vector the mean of its rows but
        BOS (row 0), which is what positions past its length receive."""
        if not self.per_position:
            return self.vector
        rows = self.vector[1:] if self.vector.shape[0] > 1 else self.vector
        return rows.mean(0)

    def to_dict(self) -> dict:
        """Everything but the tensor (its shape and norm instead): the saved ``meta.json``."""
        return {"hook": self.hook, "model": self.model, "fingerprint": self.fingerprint, "method": self.method,
                "shape": list(self.vector.shape), "norm": self.norm, "meta": self.meta}  # fmt: skip

    def save(self, directory: str | Path, *, force: bool = False) -> Path:
        """Write ``directory`` (safetensors + JSON, atomically, through :func:`mechscope.io.write_artifact`)."""
        from mechscope.io import write_artifact

        return write_artifact(directory, {VECTOR_KEY: self.vector}, self.to_dict(), kind=KIND,
                              fingerprint=self.fingerprint or None, force=force)  # fmt: skip

    def check_for(self, model, hook: str | None = None) -> str:
        """One-line :class:`ConfigError` unless this vector fits ``model`` (same fingerprint, a
        ``[batch, pos, d_model]`` hook of the right width) and, when given, ``hook``. Returns the hook."""
        if self.fingerprint and model.fingerprint != self.fingerprint:
            raise ConfigError(f"this steering vector was made for another model ({self.model}, fingerprint "
                              f"{self.fingerprint}); {model.name} is {model.fingerprint}: make it again with this model")  # fmt: skip
        if hook is not None and model.spec(hook).name != model.spec(self.hook).name:
            raise ConfigError(f"this steering vector was made at {self.hook}, not {hook}: make one at {hook}")
        name = check_hook(model, self.hook)
        if self.d_model != model.cfg.d_model:
            raise ConfigError(f"this steering vector has {self.d_model} entries but {model.name}'s d_model is "
                              f"{model.cfg.d_model}")  # fmt: skip
        return name


def load_vector(directory: str | Path, model=None, hook: str | None = None) -> SteeringVector:
    """The vector saved at ``directory``; with ``model`` (and ``hook``) it must fit them (one line if not)."""
    from mechscope.errors import ArtifactError
    from mechscope.io import read_artifact

    fix = "make it with `mechscope vector make`"
    tensors, meta = read_artifact(directory, KIND, fix=fix)
    vec = tensors.get(VECTOR_KEY)
    try:
        out = SteeringVector(vec, meta["hook"], meta["model"], meta["fingerprint"], meta["method"], meta.get("meta", {}))
    except (KeyError, TypeError, ConfigError) as exc:
        raise ArtifactError(f"the {KIND} at {directory} is corrupted ({type(exc).__name__}: {exc}): {fix}") from None
    if model is not None:
        out.check_for(model, hook)
    elif hook is not None and hook != out.hook:
        raise ConfigError(f"this steering vector was made at {out.hook}, not {hook}: make one at {hook}")
    return out


def check_hook(model, hook: str) -> str:
    """``hook``'s canonical name if it holds ``[batch, pos, d_model]`` activations, else one line."""
    spec = model.spec(hook)
    if spec.kind == "pattern" or spec.shape != ("batch", "pos", "d_model"):
        raise ConfigError(f"steering vectors live in [batch, pos, d_model] hooks; {spec.name} has shape "
                          f"[{', '.join(spec.shape)}] (use e.g. blocks.{spec.layer or 0}.hook_resid_post)")  # fmt: skip
    return spec.name


def check_prompts(prompts: Sequence[str], what: str) -> list[str]:
    """A non-empty list of non-empty prompt strings, else one line naming ``what``."""
    if isinstance(prompts, str) or not isinstance(prompts, Sequence):
        raise ConfigError(f"the {what} prompts must be a list of strings, got {type(prompts).__name__}")
    if not prompts:
        raise ConfigError(f"no {what} prompts: give at least one")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise ConfigError(f"{what} prompt {i + 1} is empty or not a string: every prompt needs some text")
    return list(prompts)


# --- reductions: prompts -> one activation each ------------------------------------------------------
@torch.no_grad()
def prompt_activations(model, prompts: Sequence[str], hook: str, position: str, *,
                       progress: Callable[[int], None] | None = None) -> Float[Tensor, "prompt ..."]:  # fmt: skip
    """Each prompt's activation at ``hook``, reduced by ``position`` (float64, CPU): ``[prompt, d_model]``
    for ``mean``/``last``, ``[prompt, pos, d_model]`` for ``all``. ``progress(n)`` after each batch."""
    out = []
    for start in range(0, len(prompts), BATCH):
        chunk = list(prompts[start : start + BATCH])
        cache = model.collect(chunk, [hook], stop_at=hook)
        acts = cache[hook].double().cpu()  # [b, p, d] (right-padded)
        lengths = cache.batch.attention_mask.sum(1).tolist() if cache.batch is not None else [acts.shape[1]] * len(chunk)
        for row, n in enumerate(lengths):
            a = acts[row, : int(n)]  # [n, d]
            if position == "mean":
                out.append(a[1:].mean(0) if n > 1 else a[0])
            elif position == "last":
                out.append(a[-1])
            else:
                out.append(a)
        if progress is not None:
            progress(len(chunk))
    if position == "all":
        sizes = sorted({a.shape[0] for a in out})
        if len(sizes) > 1:
            raise ConfigError(f"--position all needs prompts of one token length; these have {sizes[0]} to "
                              f"{sizes[-1]} tokens (BOS included): use --position mean or last, or even them out")  # fmt: skip
    return torch.stack(out)


def mean_difference(pos: Float[Tensor, "n_pos ..."], neg: Float[Tensor, "n_neg ..."]) -> Tensor:
    """``mean(pos) - mean(neg)`` over the prompt axis."""
    return pos.mean(0) - neg.mean(0)


def pca_difference(pos: Float[Tensor, "pair d_model"], neg: Float[Tensor, "pair d_model"]) -> tuple[Tensor, float]:
    """The paired differences' first principal direction, sign-aligned with and scaled to the mean
    difference's projection on it (see the module docstring); and the share of the differences'
    (un-centred) squared norm it explains."""
    diffs = pos - neg  # [pair, d]
    mean = diffs.mean(0)  # [d]
    _, s, vh = torch.linalg.svd(diffs, full_matrices=False)
    u = vh[0]  # [d], unit
    proj = float(mean @ u)
    if proj < 0:
        u, proj = -u, -proj
    total = float((s**2).sum())
    return proj * u, (float(s[0] ** 2) / total if total > 0 else 0.0)


@torch.no_grad()
def make_vector(model, pos: Sequence[str], neg: Sequence[str], hook: str, *, method: str = "mean",
                position: str = "mean", progress: Callable[[int, int], None] | None = None) -> SteeringVector:  # fmt: skip
    """A steering vector at ``hook`` pointing from the ``neg`` prompts to the ``pos`` prompts.

    method: ``mean`` (difference of means) or ``pca`` (paired differences; equal counts). position:
    ``mean`` (over each prompt's positions but BOS), ``last`` or ``all`` (per position; equal token
    lengths). ``progress(done, total)`` is called after each batch of prompts.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown vector method {method!r}: use {' or '.join(METHODS)}")
    if position not in POSITIONS:
        raise ConfigError(f"unknown position mode {position!r}: use {', '.join(POSITIONS)}")
    pos, neg = check_prompts(pos, "positive"), check_prompts(neg, "negative")
    if method == "pca" and len(pos) != len(neg):
        raise ConfigError(f"--method pca pairs the prompts line by line, but there are {len(pos)} positive and "
                          f"{len(neg)} negative prompts: give equal counts")  # fmt: skip
    if method == "pca" and len(pos) < 2:
        raise ConfigError("--method pca needs at least 2 prompt pairs")
    hook = check_hook(model, hook)
    total, done = len(pos) + len(neg), [0]

    def step(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], total)

    a_pos = prompt_activations(model, pos, hook, position, progress=step)
    a_neg = prompt_activations(model, neg, hook, position, progress=step)
    if position == "all" and a_pos.shape[1] != a_neg.shape[1]:
        raise ConfigError(f"--position all needs prompts of one token length; the positive prompts have "
                          f"{a_pos.shape[1]} tokens and the negative {a_neg.shape[1]} (BOS included)")  # fmt: skip
    mean = mean_difference(a_pos, a_neg)
    meta: dict = {"n_pos": len(pos), "n_neg": len(neg), "position": position,
                  "prompts_sha256": _digest(pos, neg), "mean_diff_norm": _norm(mean)}  # fmt: skip
    if method == "mean":
        vec = mean
    elif position == "all":
        rows = [pca_difference(a_pos[:, i], a_neg[:, i]) for i in range(a_pos.shape[1])]
        vec = torch.stack([r[0] for r in rows])
        meta["explained_variance"] = [r[1] for r in rows]
    else:
        vec, meta["explained_variance"] = pca_difference(a_pos, a_neg)
        meta["cosine_with_mean"] = float(vec @ mean / (vec.norm() * mean.norm()).clamp_min(1e-30))
    keep = slice(1, None) if position == "all" else slice(None)
    meta["pos_norm"] = float(a_pos[:, keep].norm(dim=-1).mean()) if position == "all" else float(a_pos.norm(dim=-1).mean())
    meta["neg_norm"] = float(a_neg[:, keep].norm(dim=-1).mean()) if position == "all" else float(a_neg.norm(dim=-1).mean())
    if position == "all":
        meta["tokens"] = int(a_pos.shape[1])
    out = SteeringVector(vec.float(), hook, model.name, model.fingerprint, method, meta)
    out.meta["norm"] = out.norm
    return out


def _norm(t: Tensor) -> float:
    return float(t.norm(dim=-1).mean()) if t.ndim == 2 else float(t.norm())


def _digest(pos: Sequence[str], neg: Sequence[str]) -> str:
    h = hashlib.sha256()
    for side in (pos, neg):
        h.update(b"\x00".join(p.encode() for p in side) + b"\x01")
    return h.hexdigest()[:16]
