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
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor, nn

from mechscope.errors import HookNameError, InterventionError, OutOfRangeError, PromptError, suggest
from mechscope.model import hookpoints, tokens
from mechscope.model.activation_cache import ActivationCache
from mechscope.model.adapters import Adapter, adapter_for
from mechscope.model.attention import patterns_enabled
from mechscope.model.interventions import Intervention

Input = str | Sequence[str] | Tensor | Sequence[int] | tokens.Batch
HookFn = Callable[[Tensor, hookpoints.HookSpec], Tensor | None]
Names = None | str | Sequence[str] | Callable[[str], bool]


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
        self._final_norm = hf_model.get_submodule(self.adapter.final_norm)
        self._unembed = hf_model.get_submodule(self.adapter.unembed)
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
        return self._unembed.weight.T

    @property
    def fingerprint(self) -> str:
        """A short hash of config and weights; saved lenses/SAEs record it and refuse another model."""
        if self._fingerprint is None:
            h = hashlib.sha256(self.hf.config.to_json_string(use_diff=False).encode())
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
                      visible: bool = True) -> list[str]:  # fmt: skip
        """One prompt as its string tokens (spaces drawn as ␣ when ``visible``)."""
        ids = input.flatten().tolist() if isinstance(input, Tensor) else input
        if isinstance(ids, str):
            ids = tokens.encode(self.tokenizer, ids, prepend_bos)
        return tokens.str_tokens(self.tokenizer, list(ids), visible)

    def token_id(self, text: str) -> int:
        """The id of ``text`` if it is exactly one token (e.g. ``" Paris"``); else a one-line error."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            shown = self.to_str_tokens(ids) if ids else []
            raise PromptError(f"{text!r} is not a single token for this model (it is {len(ids)}: {shown})")
        return ids[0]

    # --- forward --------------------------------------------------------------------------------------
    def _forward(self, batch: tokens.Batch) -> Float[Tensor, "batch pos d_vocab"]:
        batch = batch.to(self.device)
        out = self.hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                      position_ids=batch.position_ids, use_cache=False)  # fmt: skip
        return out.logits

    def forward(self, input: Input, *, prepend_bos: bool = True, padding_side: Literal["left", "right"] = "right",
                fwd_hooks: Iterable[tuple[str, HookFn]] = (), interventions: Sequence[Intervention] = (),
                grad: bool = False) -> Float[Tensor, "batch pos d_vocab"]:  # fmt: skip
        """Logits for ``input``; hooks and interventions apply only to this call."""
        batch = self.to_tokens(input, prepend_bos, padding_side)
        with torch.set_grad_enabled(grad), self.hooks(fwd_hooks, interventions):
            return self._forward(batch)

    __call__ = forward

    def run_with_cache(self, input: Input, names: Names = None, positions: int | Sequence[int] | slice | None = None,
                       device: str | torch.device | None = None, *, prepend_bos: bool = True,
                       padding_side: Literal["left", "right"] = "right", fwd_hooks: Iterable[tuple[str, HookFn]] = (),
                       interventions: Sequence[Intervention] = (),
                       grad: bool = False) -> tuple[Float[Tensor, "batch pos d_vocab"], ActivationCache]:  # fmt: skip
        """Run and record activations.

        names: None (every hook), a list of names, a glob such as ``"*hook_resid_*"``, or a predicate.
        positions: keep only these positions (query positions for patterns). device: move cached tensors.
        Cached values are what flows downstream, i.e. after any interventions.
        """
        batch = self.to_tokens(input, prepend_bos, padding_side)
        selected = self.resolve_names(names)
        store: dict[str, Tensor] = {}
        n_pos = batch.input_ids.shape[1]
        index = _position_index(positions, n_pos)

        def cache_fn(name: str) -> HookFn:
            def fn(act: Tensor, spec: hookpoints.HookSpec) -> None:
                t = act if grad else act.detach()
                if index is not None:
                    t = t.index_select(spec.pos_axis, index.to(t.device))
                store[name] = t.to(device) if device is not None else t

            return fn

        hooks = [*fwd_hooks, *((n, cache_fn(n)) for n in selected)]
        with torch.set_grad_enabled(grad), self.hooks(hooks, interventions):
            logits = self._forward(batch)
        return logits, ActivationCache(store, self.cfg, batch)

    def resolve_names(self, names: Names) -> list[str]:
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
            self._spec(n)
        return list(dict.fromkeys(names))

    def _spec(self, name: str) -> hookpoints.HookSpec:
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
        raise HookNameError(f"unknown hook name {name!r}{suggest(name, self._specs)}; `mechscope info` lists them all")

    # --- hooks ----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def hooks(self, fwd_hooks: Iterable[tuple[str, HookFn]] = (), interventions: Sequence[Intervention] = (),
              *, generating: bool = False) -> Iterator[HookedModel]:  # fmt: skip
        """Attach hook functions ``fn(activation, hook) -> activation | None`` and interventions for the
        duration of the block (forward calls and ``generate``). Removed in ``finally``, always."""
        per_spec: dict[str, list[HookFn]] = {}
        state: dict = {"offset": 0}
        for iv in interventions:
            spec = self._spec(iv.hook)
            self._check_intervention(iv, spec)
            per_spec.setdefault(spec.name, []).append(_intervention_fn(iv, state, generating))
        for name, fn in fwd_hooks:
            per_spec.setdefault(self._spec(name).name, []).append(fn)
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

    def intervene(self, interventions: Sequence[Intervention]) -> contextlib.AbstractContextManager:
        """``with model.intervene([...]):`` applies the interventions to every forward and ``generate``."""
        return self.hooks((), interventions, generating=True)

    def _check_intervention(self, iv: Intervention, spec: hookpoints.HookSpec) -> None:
        if not isinstance(iv, Intervention):
            raise InterventionError(f"expected an Intervention, got {type(iv).__name__}")
        is_mlp = spec.last_dim == "d_mlp"
        if iv.neurons is not None and not is_mlp:
            raise InterventionError(
                f"neurons= applies to mlp.hook_pre / mlp.hook_post; {spec.name} is not MLP neurons (use dims=)"
            )
        if iv.dims is not None and is_mlp:
            raise InterventionError(f"{spec.name} holds MLP neurons: select them with neurons=, not dims=")
        if iv.dims is not None and spec.kind == "pattern":
            raise InterventionError("a pattern has no dims: select query positions with positions= and heads with heads=")
        if iv.heads is not None and spec.head_axis is None:
            raise InterventionError(f"heads= needs a per-head hook (attn.hook_q/k/v/z/pattern); {spec.name} has no head axis")
        sizes = {k: v for k, v in vars(self.cfg.dims).items()}
        if iv.heads is not None:
            n = sizes["n_kv_heads"] if "n_kv_heads" in spec.shape else sizes["n_heads"]
            _check_range(iv.heads, n, "head", spec.name)
        last = iv.dims if iv.dims is not None else iv.neurons
        if last is not None:
            _check_range(last, sizes[spec.last_dim], "neuron" if iv.neurons is not None else "dim", spec.name)
        for field in ("vector", "value", "mean"):
            vec = getattr(iv, field, None)
            if isinstance(vec, tuple) and spec.last_dim in sizes and len(vec) != sizes[spec.last_dim]:
                raise InterventionError(
                    f"{iv.kind} on {spec.name}: {field} has {len(vec)} entries but {spec.last_dim} is {sizes[spec.last_dim]}"
                )

    # --- generation -----------------------------------------------------------------------------------
    def generate(self, input: Input, max_new_tokens: int = 20, *, interventions: Sequence[Intervention] = (),
                 do_sample: bool = False, temperature: float = 1.0, top_p: float | None = None,
                 seed: int | None = None, prepend_bos: bool = True) -> str | list[str]:  # fmt: skip
        """Continue prompts (greedy by default) with interventions active; returns only the new text."""
        single = isinstance(input, str)
        batch = self.to_tokens(input, prepend_bos, padding_side="left").to(self.device)
        if seed is not None:
            torch.manual_seed(seed)
        kwargs = dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                      pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0)  # fmt: skip
        if do_sample:
            kwargs.update(temperature=temperature, top_p=top_p)
        with torch.no_grad(), self.hooks((), interventions, generating=True):
            out = self.hf.generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **kwargs)
        texts = self.tokenizer.batch_decode(out[:, batch.input_ids.shape[1] :], skip_special_tokens=True)
        return texts[0] if single else texts

    # --- the model's own output head ------------------------------------------------------------------
    def apply_final_norm(self, resid: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        """The model's final norm, exactly as its forward applies it."""
        return self._final_norm(resid)

    def unembed(self, normed: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_vocab"]:
        """Unembedding plus any final-logit softcap, exactly as the model's forward computes logits."""
        logits = self._unembed(normed)
        cap = self.cfg.logit_softcap
        if cap is not None:
            logits = logits / cap
            logits = torch.tanh(logits)
            logits = logits * cap
        return logits


def _check_range(idx: Sequence[int], size: int, what: str, name: str) -> None:
    for i in idx:
        if not -size <= i < size:
            raise OutOfRangeError(f"{what} {i} out of range for {name}: valid {0}..{size - 1}")


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


def _intervention_fn(iv: Intervention, state: dict, generating: bool) -> HookFn:
    def fn(act: Tensor, spec: hookpoints.HookSpec) -> Tensor:
        return iv.apply(act, spec, state["offset"] if generating else None)

    return fn


def _capture(state: dict, layer: int) -> HookFn:
    def fn(act: Tensor, spec: hookpoints.HookSpec) -> None:
        state[("resid_pre", layer)] = act

    return fn
