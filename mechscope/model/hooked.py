"""HookedModel: a hooked view of a Hugging Face causal LM.

It never re-implements the architecture: a forward is the HF forward, so logits equal plain HF by
construction. Hooks (caching, user functions, interventions) exist only inside :meth:`HookedModel.hooks`
and are removed in ``finally``.

    >>> model = mechscope.load("gemma-3-270m")                                   # doctest: +SKIP
    >>> logits, cache = model.run_with_cache("The capital of France is")           # doctest: +SKIP
    >>> cache["blocks.6.hook_resid_post"].shape                                    # doctest: +SKIP
    torch.Size([1, 6, 640])
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor, nn

from mechscope.errors import HookNameError, OutOfRangeError, PromptError, suggest
from mechscope.model import hookpoints, tokens
from mechscope.model.activation_cache import ActivationCache
from mechscope.model.adapters import Adapter, adapter_for
from mechscope.model.attention import patterns_enabled
from mechscope.model.bound import BoundIntervention, bind_all
from mechscope.model.interventions import Intervention
from mechscope.model.unembed import Unembed

Input = str | Sequence[str] | Tensor | Sequence[int] | tokens.Batch
HookFn = Callable[[Tensor, hookpoints.HookSpec], Tensor | None]
Edits = Sequence[Intervention | BoundIntervention]
Names = None | str | Sequence[str] | Callable[[str], bool]
_NOT_CONTENT = {"_name_or_path", "name_or_path", "transformers_version", "_commit_hash", "dtype", "torch_dtype",
                "_attn_implementation_autoset", "_attn_implementation", "_gguf_file"}  # fmt: skip
"""Config keys that say where or how a model was loaded, not what it computes: left out of the fingerprint."""


@dataclass(frozen=True)
class ModelConfig:
    """Shape facts of a loaded model (TransformerLens-style names)."""

    architecture: str
    """Adapter name (``gemma3``, ``llama`` ...)."""
    model_type: str
    """HF ``config.model_type``."""
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_mlp: int
    d_vocab: int
    n_ctx: int
    """Context window: the longest prompt accepted, in tokens."""
    logit_softcap: float | None
    """Final-logit softcap ``c`` (logits = c·tanh(x/c)), or None."""
    parallel_residual: bool
    """Attention and MLP read the same residual (GPT-NeoX); ``hook_resid_mid`` then feeds only resid_post."""

    @property
    def dims(self) -> hookpoints.Dims:
        return hookpoints.Dims(self.n_layers, self.d_model, self.n_heads, self.n_kv_heads, self.d_head, self.d_mlp,
                               self.d_vocab)  # fmt: skip


def _out_features(module: nn.Module) -> int:
    if hasattr(module, "out_features"):
        return int(module.out_features)
    return int(module.nf)  # GPT-2's Conv1D


def model_config(hf_model: nn.Module, adapter: Adapter) -> ModelConfig:
    cfg = hf_model.config
    n_heads = int(cfg.num_attention_heads)
    d_model = int(cfg.hidden_size)
    d_head = int(getattr(cfg, "head_dim", None) or d_model // n_heads)
    block0 = hf_model.get_submodule(adapter.layers)[0]
    n_ctx = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 2048
    cap = getattr(cfg, adapter.logit_softcap_attr, None) if adapter.logit_softcap_attr else None
    return ModelConfig(
        architecture=adapter.name,
        model_type=cfg.model_type,
        n_layers=int(cfg.num_hidden_layers),
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=int(getattr(cfg, "num_key_value_heads", None) or n_heads),
        d_head=d_head,
        d_mlp=_out_features(block0.get_submodule(adapter.mlp_in)),
        d_vocab=int(hf_model.get_submodule(adapter.unembed).weight.shape[0]),
        n_ctx=int(n_ctx),
        logit_softcap=float(cap) if cap else None,
        parallel_residual=bool(getattr(cfg, adapter.parallel_residual_attr, False)) if adapter.parallel_residual_attr else False,
    )


class HookedModel:
    """A Hugging Face causal LM with canonical hook points, caching and interventions."""

    def __init__(self, hf_model: nn.Module, tokenizer, *, name: str | None = None, adapter: Adapter | None = None,
                 load_seconds: float | None = None, cache_path: str | None = None):  # fmt: skip
        self.hf = hf_model.eval()
        # ``tokenizer`` may be a zero-argument callable: it is then built on first use (Gemma's 33 MB
        # tokenizer.json takes ~1 s to parse, a third of load(); analyses that only read tensors skip it).
        self._tokenizer = None if callable(tokenizer) and not hasattr(tokenizer, "encode") else tokenizer
        self._tokenizer_factory = tokenizer if self._tokenizer is None else None
        self._tokenizer_lock = threading.Lock()
        self.adapter = adapter or adapter_for(hf_model.config.model_type)
        self.cfg = model_config(hf_model, self.adapter)
        self.name = name or getattr(hf_model.config, "_name_or_path", "") or self.cfg.model_type
        self.load_seconds = load_seconds
        self.cache_path = cache_path
        self._specs = hookpoints.build_specs(hf_model, self.adapter, self.cfg.dims)
        self.unembed = Unembed(hf_model.get_submodule(self.adapter.final_norm),
                               hf_model.get_submodule(self.adapter.unembed), self.cfg.logit_softcap)  # fmt: skip
        """The output head (final norm, unembedding, softcap): ``model.unembed(resid)`` gives logits."""
        self._fingerprint: str | None = None

    @property
    def tokenizer(self):
        """The Hugging Face tokenizer (built on first use when load() deferred it)."""
        if self._tokenizer is None and self._tokenizer_factory is not None:
            with self._tokenizer_lock:
                if self._tokenizer is None and self._tokenizer_factory is not None:
                    self._tokenizer = self._tokenizer_factory()
                    self._tokenizer_factory = None
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, value) -> None:
        self._tokenizer, self._tokenizer_factory = value, None

    # --- facts ----------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.hf.parameters()).dtype

    @property
    def hook_names(self) -> list[str]:
        return list(self._specs)

    def hook_shapes(self, concrete: bool = True) -> dict[str, tuple]:
        """Each hook's shape: symbolic names, or with ``concrete`` the model's sizes (batch/pos stay symbolic)."""
        sizes = {k: v for k, v in vars(self.cfg.dims).items() if k != "n_layers"}
        out = {}
        for name, spec in self._specs.items():
            out[name] = tuple(sizes.get(d, d) for d in spec.shape) if concrete else spec.shape
        return out

    @property
    def W_E(self) -> Float[Tensor, "d_vocab d_model"]:
        return self.hf.get_submodule(self.adapter.embed).weight

    @property
    def W_U(self) -> Float[Tensor, "d_model d_vocab"]:
        return self.unembed.W_U

    @property
    def fingerprint(self) -> str:
        """A short hash of the config and the weights' content (never a path: the same weights under
        another cache folder or name have the same fingerprint); saved lenses/SAEs record it."""
        if self._fingerprint is None:
            config = {k: v for k, v in self.hf.config.to_dict().items() if k not in _NOT_CONTENT}
            h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
            for pname, p in sorted(self.hf.state_dict().items()):
                h.update(pname.encode())
                h.update(str(tuple(p.shape)).encode())
                h.update(p.detach().flatten()[:4096].float().cpu().numpy().tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def __repr__(self) -> str:
        c = self.cfg
        return (f"HookedModel({self.name!r}, arch={c.architecture}, layers={c.n_layers}, d_model={c.d_model}, "
                f"heads={c.n_heads}/{c.n_kv_heads}kv×{c.d_head}, d_mlp={c.d_mlp}, vocab={c.d_vocab}, device={self.device})")  # fmt: skip

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td><code>{k}</code></td><td>{v}</td></tr>" for k, v in vars(self.cfg).items())
        return f"<b>HookedModel</b> <code>{self.name}</code><table>{rows}</table>"

    # --- tokens ---------------------------------------------------------------------------------------
    def to_tokens(self, input: Input, prepend_bos: bool = True,
                  padding_side: Literal["left", "right"] = "right") -> tokens.Batch:  # fmt: skip
        """Tokenize prompts (or wrap ids) into a padded :class:`~mechscope.model.tokens.Batch`."""
        if isinstance(input, tokens.Batch):
            return input
        if isinstance(input, Tensor):
            ids = input.long().cpu()
            if ids.ndim == 1:
                ids = ids[None]
            if ids.ndim != 2 or ids.shape[1] == 0:
                raise PromptError(f"token ids must be [batch, pos] with pos ≥ 1, got shape {tuple(input.shape)}")
            seqs = ids.tolist()
        elif isinstance(input, str):
            seqs = [tokens.encode(self.tokenizer, input, prepend_bos)]
        elif isinstance(input, Sequence) and input and all(isinstance(x, str) for x in input):
            seqs = [tokens.encode(self.tokenizer, x, prepend_bos) for x in input]
        elif isinstance(input, Sequence) and input and all(isinstance(x, int) for x in input):
            seqs = [list(input)]
        else:
            raise PromptError("input must be a prompt string, a list of prompts, or token ids; got an empty or mixed value")
        for seq in seqs:
            if not seq:
                raise PromptError("a prompt has no tokens: give at least one character of text")
            if len(seq) > self.cfg.n_ctx:
                raise PromptError(f"a prompt has {len(seq)} tokens but the model's context window is {self.cfg.n_ctx}: shorten it")
            bad = [t for t in seq if not 0 <= t < self.cfg.d_vocab]
            if bad:
                raise PromptError(f"token id {bad[0]} is outside the vocabulary (0..{self.cfg.d_vocab - 1})")
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self.tokenizer.eos_token_id or 0
        return tokens.pad(seqs, pad_id, padding_side)

    def to_str_tokens(self, input: str | Sequence[int] | Tensor, prepend_bos: bool = True,
                      visible: bool = False) -> list[str]:  # fmt: skip
        """One prompt as its string tokens, each decoded on its own (``" very"``: the form of every
        ``--json``); ``visible`` draws whitespace for human output (``␣very``)."""
        ids = input.flatten().tolist() if isinstance(input, Tensor) else input
        if isinstance(ids, str):
            ids = tokens.encode(self.tokenizer, ids, prepend_bos)
        return tokens.str_tokens(self.tokenizer, list(ids), visible)

    def token_id(self, text: str) -> int:
        """The id of ``text`` if it is exactly one token (e.g. ``" Paris"``); else a one-line error."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            shown = self.to_str_tokens(ids, visible=True) if ids else []
            raise PromptError(f"{text!r} is not a single token for this model (it is {len(ids)}: {shown})")
        return ids[0]

    # --- forward --------------------------------------------------------------------------------------
    def _forward(self, batch: tokens.Batch) -> Float[Tensor, "batch pos d_vocab"]:
        batch = batch.to(self.device)
        out = self.hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                      position_ids=batch.position_ids, use_cache=False)  # fmt: skip
        return out.logits

    def forward(self, input: Input, *, prepend_bos: bool = True, padding_side: Literal["left", "right"] = "right",
                fwd_hooks: Iterable[tuple[str, HookFn]] = (), interventions: Edits = (),
                tensors: Mapping[str, Tensor] | None = None, grad: bool = False) -> Float[Tensor, "batch pos d_vocab"]:  # fmt: skip
        """Logits for ``input``; hooks and interventions apply only to this call."""
        batch = self.to_tokens(input, prepend_bos, padding_side)
        with torch.set_grad_enabled(grad), self.hooks(fwd_hooks, interventions, tensors=tensors):
            return self._forward(batch)

    __call__ = forward

    def run_with_cache(self, input: Input, names: Names = None, positions: int | Sequence[int] | slice | None = None,
                       device: str | torch.device | None = None, *, prepend_bos: bool = True,
                       padding_side: Literal["left", "right"] = "right", fwd_hooks: Iterable[tuple[str, HookFn]] = (),
                       interventions: Edits = (), tensors: Mapping[str, Tensor] | None = None,
                       grad: bool = False) -> tuple[Float[Tensor, "batch pos d_vocab"], ActivationCache]:  # fmt: skip
        """Run and record activations; returns the logits too (see :meth:`collect` to skip them).

        names: None (every hook), a list of names, a glob such as ``"*hook_resid_*"``, or a predicate.
        positions: keep only these positions (query positions for patterns). device: move cached tensors.
        Cached values are what flows downstream, i.e. after any interventions.
        """
        batch = self.to_tokens(input, prepend_bos, padding_side)
        selected = self.resolve_names(names)
        store: dict[str, Tensor] = {}
        hooks = [*fwd_hooks, *_cache_hooks(selected, store, batch, positions, device, grad)]
        with torch.set_grad_enabled(grad), self.hooks(hooks, interventions, tensors=tensors):
            logits = self._forward(batch)
        return logits, ActivationCache(store, self.cfg, batch)

    def collect(self, input: Input, names: Names, *, stop_at: str | int | None = None,
                positions: int | Sequence[int] | slice | None = None, device: str | torch.device | None = None,
                prepend_bos: bool = True, padding_side: Literal["left", "right"] = "right",
                fwd_hooks: Iterable[tuple[str, HookFn]] = (), interventions: Edits = (),
                tensors: Mapping[str, Tensor] | None = None, grad: bool = False) -> ActivationCache:  # fmt: skip
        """Record ``names`` and stop the forward as soon as the last of them has fired: no later blocks,
        no final norm or unembedding unless asked for. ``stop_at`` (a hook name, or a block index meaning
        that block's ``hook_resid_post``) stops later than the last name, e.g. to let hooks of your own run.

        The recorded values equal ``run_with_cache``'s (same forward, cut short). The SAE harvest, the
        tuned-lens trainer and patching read activations through this.
        """
        batch = self.to_tokens(input, prepend_bos, padding_side)
        selected = self.resolve_names(names)
        if not selected:
            raise HookNameError("collect() needs at least one hook name")
        order = {n: i for i, n in enumerate(self._specs)}
        last = max(selected, key=order.__getitem__)
        if stop_at is not None:
            stop = f"blocks.{stop_at}.hook_resid_post" if isinstance(stop_at, int) else stop_at
            stop = self.spec(stop).name
            last = max(last, stop, key=order.__getitem__)
        store: dict[str, Tensor] = {}
        hooks = [*fwd_hooks, *_cache_hooks(selected, store, batch, positions, device, grad), (last, _stop)]
        try:
            with torch.set_grad_enabled(grad), self.hooks(hooks, interventions, tensors=tensors):
                self._forward(batch)
        except _StopForward:
            pass
        return ActivationCache(store, self.cfg, batch)

    def resolve_names(self, names: Names) -> list[str]:
        """Canonical hook names for a name, a list, a glob or a predicate (None = all), in firing order
        for globs and predicates; unknown names raise one line with suggestions."""
        if names is None:
            return self.hook_names
        if callable(names):
            return [n for n in self._specs if names(n)]
        if isinstance(names, str):
            if any(ch in names for ch in "*?["):
                found = [n for n in self._specs if fnmatch.fnmatchcase(n, names)]
                if not found:
                    raise HookNameError(f"no hook name matches {names!r}{suggest(names, self._specs)}")
                return found
            names = [names]
        for n in names:
            self.spec(n)
        return list(dict.fromkeys(names))

    def spec(self, name: str) -> hookpoints.HookSpec:
        """The :class:`~mechscope.model.hookpoints.HookSpec` of a hook name: its layer, symbolic shape,
        position/head axes. Unknown names and layers out of range raise one line."""
        if not isinstance(name, str):
            raise HookNameError(f"a hook name must be a string, got {type(name).__name__} {name!r:.40}")
        spec = self._specs.get(name)
        if spec is not None:
            return spec
        parts = name.split(".")
        if len(parts) > 2 and parts[0] == "blocks" and parts[1].lstrip("-").isdigit():
            layer = int(parts[1])
            rest = ".".join(parts[2:])
            if rest in hookpoints.BLOCK_HOOKS and not 0 <= layer < self.cfg.n_layers:
                raise OutOfRangeError(
                    f"layer {layer} out of range in {name!r}: this model has {self.cfg.n_layers} layers (0..{self.cfg.n_layers - 1})"
                )
        raise HookNameError(f"unknown hook name {name!r:.80}{suggest(name, self._specs)}; `mechscope info` lists them all")

    # --- hooks ----------------------------------------------------------------------------------------
    def bind(self, interventions: Edits, tensors: Mapping[str, Tensor] | None = None) -> list[BoundIntervention]:
        """Check interventions against this model and resolve their tensors once (device, dtype, tensor
        references). Pass the result to many forwards, e.g. in a patching sweep, to skip that work."""
        return bind_all(interventions, self._specs, self.spec, self.cfg.dims, device=self.device, dtype=self.dtype,
                        tensors=tensors)  # fmt: skip

    @contextlib.contextmanager
    def hooks(self, fwd_hooks: Iterable[tuple[str, HookFn]] = (), interventions: Edits = (), *,
              tensors: Mapping[str, Tensor] | None = None, generating: bool = False) -> Iterator[HookedModel]:  # fmt: skip
        """Attach hook functions ``fn(activation, hook) -> activation | None`` and interventions for the
        duration of the block (forward calls and ``generate``). Interventions are bound once, on entry.
        Removed in ``finally``, always."""
        per_spec: dict[str, list[HookFn]] = {}
        state: dict = {"offset": 0}
        for bound in self.bind(interventions, tensors):
            per_spec.setdefault(bound.spec.name, []).append(_intervention_fn(bound, state, generating))
        for name, fn in fwd_hooks:
            per_spec.setdefault(self.spec(name).name, []).append(fn)
        for name in list(per_spec):
            spec = self._specs[name]
            if spec.layout == "resid_mid":  # it needs this layer's final resid_pre
                per_spec.setdefault(f"blocks.{spec.layer}.hook_resid_pre", []).append(_capture(state, spec.layer))
        grouped: dict[tuple[nn.Module, str], list] = {}
        for name, spec in self._specs.items():  # canonical order
            if name in per_spec:
                grouped.setdefault((spec.module, spec.kind), []).append((spec, per_spec[name]))
        handles = []
        try:
            handles.extend(hookpoints.register(grouped, state))
            if generating:
                handles.append(self.hf.register_forward_pre_hook(hookpoints.offset_hook(state), with_kwargs=True))
            uses_patterns = any(self._specs[n].kind == "pattern" for n in per_spec)
            with patterns_enabled(self.hf, uses_patterns):
                yield self
        finally:
            for h in handles:
                h.remove()

    def intervene(self, interventions: Edits, tensors: Mapping[str, Tensor] | None = None) -> contextlib.AbstractContextManager:
        """``with model.intervene([...]):`` applies the interventions to every forward and ``generate``."""
        return self.hooks((), interventions, tensors=tensors, generating=True)

    # --- generation -----------------------------------------------------------------------------------
    def generate(self, input: Input, max_new_tokens: int = 20, *, interventions: Edits = (),
                 tensors: Mapping[str, Tensor] | None = None, do_sample: bool = False, temperature: float = 1.0,
                 top_p: float | None = None, seed: int | None = None, prepend_bos: bool = True) -> str | list[str]:  # fmt: skip
        """Continue prompts (greedy by default) with interventions active; returns only the new text."""
        single = isinstance(input, str)
        batch = self.to_tokens(input, prepend_bos, padding_side="left").to(self.device)
        if seed is not None:
            torch.manual_seed(seed)
        kwargs = dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                      pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0)  # fmt: skip
        if do_sample:
            kwargs.update(temperature=temperature, top_p=top_p)
        with torch.no_grad(), self.hooks((), interventions, tensors=tensors, generating=True):
            out = self.hf.generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **kwargs)
        texts = self.tokenizer.batch_decode(out[:, batch.input_ids.shape[1] :], skip_special_tokens=True)
        return texts[0] if single else texts

    def apply_final_norm(self, resid: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        """The model's final norm, exactly as its forward applies it (shorthand for ``unembed.norm``)."""
        return self.unembed.norm(resid)


class _StopForward(Exception):
    """Raised by :meth:`HookedModel.collect`'s last hook to end the forward early (never escapes it)."""


def _stop(act: Tensor, spec: hookpoints.HookSpec) -> None:
    raise _StopForward


def _cache_hooks(names: list[str], store: dict[str, Tensor], batch: tokens.Batch, positions, device,
                 grad: bool) -> list[tuple[str, HookFn]]:  # fmt: skip
    index = _position_index(positions, batch.input_ids.shape[1])

    def cache_fn(name: str) -> HookFn:
        def fn(act: Tensor, spec: hookpoints.HookSpec) -> None:
            t = act if grad else act.detach()
            if index is not None:
                t = t.index_select(spec.pos_axis, index.to(t.device))
            store[name] = t.to(device) if device is not None else t

        return fn

    return [(n, cache_fn(n)) for n in names]


def _position_index(positions, n_pos: int) -> Tensor | None:
    if positions is None:
        return None
    if isinstance(positions, slice):
        return torch.arange(n_pos)[positions]
    idx = [positions] if isinstance(positions, int) else list(positions)
    for p in idx:
        if not -n_pos <= p < n_pos:
            raise OutOfRangeError(f"position {p} out of range: the input has {n_pos} positions ({-n_pos}..{n_pos - 1})")
    return torch.tensor([p % n_pos for p in idx], dtype=torch.long)


def _intervention_fn(bound: BoundIntervention, state: dict, generating: bool) -> HookFn:
    def fn(act: Tensor, spec: hookpoints.HookSpec) -> Tensor:
        return bound(act, state["offset"] if generating else None)

    return fn


def _capture(state: dict, layer: int) -> HookFn:
    def fn(act: Tensor, spec: hookpoints.HookSpec) -> None:
        state[("resid_pre", layer)] = act

    return fn
