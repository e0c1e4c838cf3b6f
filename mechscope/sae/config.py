"""What an SAE is (:class:`SAEConfig`) and how it is trained (:class:`SAETrainConfig`).

Both are small frozen dataclasses: the Python API, the saved ``config.json`` and the CLI flags at once
(:mod:`mechscope.cli.config_args`). Torch-free, so ``--help`` stays instant.

An SAE reads the activation ``x`` of one hook (``hook``) and reconstructs the activation ``y`` of
``target`` (the same hook for an SAE; another for a **transcoder**, e.g. ``blocks.6.ln2.hook_normalized``
→ ``blocks.6.hook_mlp_out``)::

    pre   = (x - b_dec) @ W_enc + b_enc          # b_dec is subtracted only when target == hook
    f     = activation(pre)                      # relu / top-k / batch top-k / jump-relu
    y_hat = f @ W_dec + b_dec (+ x @ W_skip)     # W_dec rows are latents' output directions
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Literal

from mechscope.data.corpus import BUILTIN, CorpusConfig
from mechscope.errors import ConfigError

Arch = Literal["relu", "topk", "batchtopk", "jumprelu"]
ARCHS: tuple[str, ...] = ("relu", "topk", "batchtopk", "jumprelu")
SPARSE_BY_K = ("topk", "batchtopk")
"""Architectures whose sparsity is set by ``k`` (the others by a penalty coefficient)."""


@dataclass(frozen=True)
class SAEConfig:
    """The shape and kind of one sparse autoencoder (or transcoder)."""

    arch: Arch = "topk"
    """relu (decoder-norm-weighted L1), topk (with AuxK), batchtopk, or jumprelu (L0 with straight-through)."""
    d_in: int = 640
    """Width of the input activation (d_model for residual hooks)."""
    width: int = 4096
    """Number of latents (d_sae)."""
    k: int = 32
    """Active latents per token (topk; the batch average for batchtopk); jumprelu: the L0 its thresholds start at."""
    d_out: int | None = None
    """Width of the reconstructed activation; None = d_in. Differs from d_in only for transcoders."""
    transcoder: bool = False
    """Reconstruct another hook's activation (no b_dec subtracted from the input)."""
    skip: bool = False
    """Add a learned linear skip connection x @ W_skip (transcoders)."""
    bandwidth: float = 0.05
    """JumpReLU: width of the rectangle kernel of the straight-through threshold gradient (training units: inputs scaled to E|x|^2 = d_in)."""
    threshold_init: float = 0.01
    """JumpReLU: smallest initial threshold (thresholds start where each latent fires on k/width of the first batch)."""

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown SAE architecture {self.arch!r}: choose one of {', '.join(ARCHS)}")
        if not isinstance(self.d_in, int) or self.d_in <= 0:
            raise ConfigError(f"d_in must be a positive integer, got {self.d_in!r}")
        if not isinstance(self.width, int) or self.width <= 0:
            raise ConfigError(f"the SAE width must be a positive integer, got {self.width!r}")
        if self.d_out is not None and (not isinstance(self.d_out, int) or self.d_out <= 0):
            raise ConfigError(f"d_out must be a positive integer, got {self.d_out!r}")
        if self.arch in SPARSE_BY_K:
            if not isinstance(self.k, int) or self.k <= 0:
                raise ConfigError(f"k must be a positive integer, got {self.k!r}")
            if self.k > self.width:
                raise ConfigError(f"k ({self.k}) cannot exceed the width ({self.width}): lower --k or raise --width")
        if self.skip and not self.transcoder:
            raise ConfigError("a skip connection is for transcoders: add --transcoder (and a --target hook)")
        if self.d_out is not None and self.d_out != self.d_in and not self.transcoder:
            raise ConfigError(f"d_out ({self.d_out}) differs from d_in ({self.d_in}): that is a transcoder")
        if not self.bandwidth > 0 or not self.threshold_init > 0:
            raise ConfigError("JumpReLU bandwidth and threshold_init must be positive")

    @property
    def out_dim(self) -> int:
        return self.d_out if self.d_out is not None else self.d_in

    @property
    def unit_decoder(self) -> bool:
        """Decoder rows kept at unit norm (all but relu, whose L1 is weighted by the norms instead)."""
        return self.arch != "relu"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SAEConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def label(self) -> str:
        """Short name for tables and folder names: ``topk-4096-k32``."""
        sparsity = f"-k{self.k}" if self.arch in SPARSE_BY_K else ""
        return f"{self.arch}-{self.width}{sparsity}"


@dataclass(frozen=True)
class SAETrainConfig:
    """How SAEs are trained (one config for every SAE of a pass)."""

    tokens: int = 200_000
    """Training tokens (BOS positions excluded by default)."""
    batch_tokens: int = 2048
    """Tokens per optimiser step and rank (under torchrun the global batch is this times the ranks)."""
    lr: float | None = None
    """Adam learning rate of the decoder; None = 1.5e-2 * sqrt(4096 / width)."""
    enc_lr_scale: float = 0.2
    """W_enc learns at lr times this: latents that fire early otherwise crowd the rest out (44 % dead -> 2-3 %)."""
    bias_lr_scale: float = 0.1
    """b_enc and b_dec learn at lr times this (fewer very dense latents)."""
    adam_beta1: float = 0.5
    """Adam's first-moment decay (0.5 converged faster than 0.9 on Gemma, 30 steps)."""
    warmup_steps: int = 10
    """Linear learning-rate warm-up."""
    decay_fraction: float = 0.8
    """The last fraction of steps decays the learning rate linearly to zero."""
    l1_coeff: float = 2.0
    """relu: weight of the decoder-norm-weighted L1 penalty (relative to the FVU loss)."""
    l0_coeff: float = 0.002
    """jumprelu: weight of the L0 penalty (per active latent, relative to the FVU loss)."""
    aux_k: int | None = None
    """topk/batchtopk: latents of the AuxK loss among dead ones; None = d_in // 2."""
    aux_coeff: float = 1 / 32
    """topk/batchtopk: weight of the AuxK loss."""
    dead_tokens: int | None = None
    """A latent that has not fired for this many tokens counts as dead (AuxK, stats); None = 256·width/k (≥ 10k)."""
    b_dec_init: Literal["median", "mean", "zeros"] = "median"
    """b_dec starts at the geometric median (or mean) of the first batch's targets."""
    seed: int = 0
    """Initialisation and shuffling seed."""
    skip_bos: bool = True
    """Leave BOS positions out (Gemma's residual at BOS is ~17x larger than elsewhere)."""
    checkpoint_every: int = 200
    """Steps between atomic checkpoints (0 = only at the end)."""
    log_every: int = 10
    """Steps between logged metrics (progress bar and history)."""
    matmul_dtype: Literal["float32", "bfloat16", "auto"] = "auto"
    """Encoder matmul precision for choosing latents: bfloat16 (fp32 accumulation; gradients stay fp32); auto = bf16 where the hardware has it (AMX / AVX-512-BF16, CUDA)."""

    def __post_init__(self):
        for name in ("tokens", "batch_tokens"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.decay_fraction < 1:
            raise ConfigError(f"decay_fraction must be in [0, 1), got {self.decay_fraction}")
        if self.warmup_steps < 0 or self.checkpoint_every < 0 or self.log_every <= 0:
            raise ConfigError("warmup_steps and checkpoint_every must be ≥ 0 and log_every > 0")
        if self.aux_k is not None and self.aux_k <= 0:
            raise ConfigError(f"aux_k must be positive, got {self.aux_k}")
        if self.dead_tokens is not None and self.dead_tokens <= 0:
            raise ConfigError(f"dead_tokens must be positive, got {self.dead_tokens}")
        if not (self.enc_lr_scale > 0 and self.bias_lr_scale >= 0 and 0 <= self.adam_beta1 < 1):
            raise ConfigError("enc_lr_scale must be > 0, bias_lr_scale ≥ 0 and adam_beta1 in [0, 1)")
        if self.l1_coeff < 0 or self.l0_coeff < 0 or self.aux_coeff < 0:
            raise ConfigError("loss coefficients must be ≥ 0")

    @property
    def steps(self) -> int:
        return self.steps_for(1)

    def steps_for(self, world: int) -> int:
        """Optimiser steps when ``world`` ranks each take ``batch_tokens`` per step."""
        return max(1, self.tokens // (self.batch_tokens * world))

    def lr_for(self, cfg: SAEConfig) -> float:
        return self.lr if self.lr is not None else 1.5e-2 * (4096 / cfg.width) ** 0.5

    def dead_after(self, cfg: SAEConfig) -> int:
        if self.dead_tokens is not None:
            return self.dead_tokens
        k = cfg.k if cfg.arch in SPARSE_BY_K else 32
        return max(10_000, 256 * cfg.width // k)

    def lr_factor(self, step: int, steps: int | None = None) -> float:
        """Multiplier of the learning rate at optimiser step ``step`` (0-based) of ``steps``."""
        steps = self.steps if steps is None else steps
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        decay_start = int(steps * (1 - self.decay_fraction))
        if self.decay_fraction and step >= decay_start:
            return warm * max(0.0, (steps - step) / max(1, steps - decay_start))
        return warm

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SAETrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


DTYPE_NAMES = ("float32", "bfloat16")


@dataclass(frozen=True)
class HarvestConfig:
    """Which activations a store holds."""

    hooks: tuple[str, ...] = ("blocks.6.hook_resid_post",)
    """Hook names to record (all from one forward, cut after the last of them)."""
    tokens: int = 200_000
    """Corpus tokens to run (rounded up to whole contexts; BOS included)."""
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    split: Literal["train", "heldout", "all"] = "train"
    """Which documents of the corpus (split by document hash)."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Storage dtype of the activations (training always computes in float32)."""
    forward_dtype: Literal["float32", "bfloat16"] = "float32"
    """Matmul precision of the model's forward: bfloat16 autocast is faster on AMX / AVX-512-BF16 CPUs and CUDA."""
    skip_bos: bool = True
    """Leave position 0 (BOS) out of the stored activations."""
    shard_contexts: int = 256
    """Contexts per shard file (256 x 127 positions x 640 floats = 83 MB at float32)."""
    batch_contexts: int = 16
    """Contexts per model forward."""

    def __post_init__(self):
        if isinstance(self.hooks, str):
            object.__setattr__(self, "hooks", (self.hooks,))
        object.__setattr__(self, "hooks", tuple(dict.fromkeys(self.hooks)))
        if not self.hooks:
            raise ConfigError("a store needs at least one --hook")
        for name in ("tokens", "shard_contexts", "batch_contexts"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.dtype not in DTYPE_NAMES:
            raise ConfigError(f"dtype must be float32 or bfloat16, got {self.dtype!r}")

    @property
    def contexts(self) -> int:
        return math.ceil(self.tokens / self.corpus.seq_len)

    @property
    def n_shards(self) -> int:
        return math.ceil(self.contexts / self.shard_contexts)

    @property
    def first_position(self) -> int:
        return 1 if self.skip_bos else 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hooks"] = list(self.hooks)
        d["corpus"] = self.corpus.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> HarvestConfig:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if isinstance(kw.get("corpus"), dict):
            c = dict(kw["corpus"])
            c["sources"] = tuple(c.get("sources", (BUILTIN,)))
            kw["corpus"] = CorpusConfig(**c)
        kw["hooks"] = tuple(kw.get("hooks", ()))
        return cls(**kw)


@dataclass(frozen=True)
class SAEEvalConfig:
    """Which held-out text an SAE is evaluated on."""

    tokens: int = 8192
    """Held-out corpus tokens to run (rounded up to whole contexts; BOS included)."""
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    batch_contexts: int = 4
    """Contexts per model forward (the logits of a batch are batch · seq_len · d_vocab floats)."""
    dense_threshold: float = 0.1
    """A latent active on more than this fraction of positions counts as dense."""

    def __post_init__(self):
        for name in ("tokens", "batch_contexts"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if not 0 < self.dense_threshold < 1:
            raise ConfigError(f"dense_threshold must be in (0, 1), got {self.dense_threshold}")

    def to_dict(self) -> dict:
        return {**asdict(self), "corpus": self.corpus.to_dict()}
