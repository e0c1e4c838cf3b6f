"""A BatchTopK crosscoder over two models' activations at one layer (Lindsey et al. 2024, "Sparse
Crosscoders"; Minder et al. 2025 on why BatchTopK rather than L1).

One shared encoder reads the concatenated pair ``[x_base, x_tuned]`` (``2·d_model``); each latent has one
decoder direction per model (``W_dec`` viewed as ``[width, 2, d_model]``: index 0 base, 1 tuned); the
reconstruction of both models is trained together (the FVU of the concatenated pair: squared errors
summed over both models over their summed variance)::

    pre   = ([x_base, x_tuned] − b_dec) @ W_enc + b_enc           # [batch, width]
    f     = batch_topk(pre · s) / s,  s_j = ‖d_j^base‖ + ‖d_j^tuned‖
    y_hat = f @ W_dec + b_dec                                       # [batch, 2·d_model] = both models

The batch keeps its ``k · batch`` largest *decoder-norm-weighted* pre-activations (``pre · s``, as
Minder et al.'s BatchTopK crosscoder does, the analogue of the L1 crosscoder's norm-weighted penalty).
Decoder rows are kept at unit norm over both halves (the SAE trainer's constraint), so the split of
a latent's norm between the two models is free and ``s`` lies in ``[1, √2]``. At inference the latent
fires where ``pre · s`` exceeds one learned threshold (the running mean of the smallest kept value),
like the BatchTopK SAE.

The module is a :class:`~mechscope.sae.batchtopk.BatchTopKSAE` with ``d_in = 2·d_model``: the SAE
trainer (:func:`mechscope.sae.train.train_saes`, its optimiser recipe, AuxK and checkpoints) trains it
through its ``build`` hook. It is saved in its own layout (:func:`save_crosscoder`, kind
:data:`KIND`): ``crosscoder.safetensors`` with ``W_dec`` as ``[width, 2, d_model]`` and ``b_dec`` as
``[2, d_model]``, plus ``config.json`` naming both models (name and fingerprint) and the layer.

**Relative decoder norm** ``r_j = ‖d_j^tuned‖ / (‖d_j^base‖ + ‖d_j^tuned‖)``: classes
``base_only`` (r < 0.1), ``shared`` (0.3 ≤ r ≤ 0.7), ``tuned_only`` (r > 0.9) as in Lindsey et al.;
the bands between are ``other``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from mechscope.errors import ArtifactError, ConfigError
from mechscope.sae import sparse
from mechscope.sae.batchtopk import THRESHOLD_MOMENTUM, BatchTopKSAE
from mechscope.sae.config import SAEConfig, SAETrainConfig
from mechscope.sae.topk import TopKSAE

KIND = "crosscoder"
WEIGHTS_FILE = "crosscoder.safetensors"
CONFIG_FILE = "config.json"
BASE_ONLY, SHARED, TUNED_ONLY = 0.1, (0.3, 0.7), 0.9
"""Relative-norm class bounds (Lindsey et al. 2024's bands)."""


@dataclass(frozen=True)
class CrosscoderConfig:
    """The shape of one crosscoder."""

    d_model: int = 640
    """Width of each model's activation (both models share it)."""
    width: int = 4096
    """Number of latents."""
    k: int = 32
    """Average active latents per token pair (BatchTopK over the batch)."""

    def __post_init__(self):
        for name in ("d_model", "width", "k"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"crosscoder {name} must be a positive integer, got {v!r}")
        if self.k > self.width:
            raise ConfigError(f"k ({self.k}) cannot exceed the width ({self.width}): lower --k or raise --width")

    def sae_config(self) -> SAEConfig:
        """The equivalent SAE shape: BatchTopK over the concatenated pair."""
        return SAEConfig(arch="batchtopk", d_in=2 * self.d_model, width=self.width, k=self.k)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CrosscoderConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


class Crosscoder(BatchTopKSAE):
    """BatchTopK crosscoder (see the module docstring); ``x`` is ``[..., 2·d_model]`` = base then tuned."""

    arch = "batchtopk"

    def __init__(self, cfg: SAEConfig, info: dict | None = None):
        if cfg.d_in % 2 or cfg.transcoder:
            raise ConfigError("a crosscoder reads a concatenated pair: d_in must be 2·d_model and no transcoder")
        super().__init__(cfg, info)
        self.d_model = cfg.d_in // 2

    # ------------------------------------------------------------ geometry
    @property
    def decoders(self) -> Float[Tensor, "d_sae 2 d_model"]:
        """``W_dec`` per model: ``[:, 0]`` base, ``[:, 1]`` tuned."""
        return self.W_dec.view(self.cfg.width, 2, self.d_model)

    def decoder_norms(self) -> Float[Tensor, "d_sae 2"]:
        return self.decoders.detach().norm(dim=-1)

    def norm_sum(self) -> Float[Tensor, " d_sae"]:
        return self.decoder_norms().sum(-1)

    def rel_norm(self) -> Float[Tensor, " d_sae"]:
        """``‖d_tuned‖ / (‖d_base‖ + ‖d_tuned‖)`` per latent."""
        n = self.decoder_norms()
        return n[:, 1] / n.sum(-1).clamp_min(1e-12)

    # ------------------------------------------------------------ inference
    def activation(self, pre: Tensor) -> Tensor:
        return pre * (pre * self.norm_sum() > self.threshold)

    def split(self, y: Float[Tensor, "... two_d"]) -> tuple[Tensor, Tensor]:
        """``(base, tuned)`` halves of a concatenated activation or reconstruction."""
        return y[..., :self.d_model], y[..., self.d_model:]

    # ------------------------------------------------------------- training
    def select(self, pre: Tensor, n_tokens: int) -> tuple[Tensor, Tensor]:
        return sparse.batch_topk_select(pre * self.norm_sum().to(pre.dtype), self.cfg.k * n_tokens)

    def train_step(self, x: Tensor, y: Tensor, tc: SAETrainConfig, dead: Tensor | None,
                   select_dtype: torch.dtype | None = None):  # fmt: skip
        out = TopKSAE.train_step(self, x, y, tc, dead, select_dtype)
        if out.kept is not None and out.kept.numel():
            with torch.no_grad():  # the threshold lives in the scaled space the selection ranks in
                kept = (out.kept * self.norm_sum()[out.fired]).min()
                if int(self.threshold_steps):
                    kept = THRESHOLD_MOMENTUM * self.threshold[0] + (1 - THRESHOLD_MOMENTUM) * kept
                self.threshold.fill_(float(kept))
                self.threshold_steps += 1
        return out

    def __repr__(self) -> str:
        return f"<Crosscoder width={self.cfg.width} k={self.cfg.k} d_model={self.d_model}>"


def build(cfg: SAEConfig, info: dict | None = None) -> Crosscoder:
    """The trainer's ``build`` hook (:func:`mechscope.sae.train.train_saes`)."""
    return Crosscoder(cfg, info)


def classes(rel: Float[Tensor, " d_sae"]) -> dict[str, Tensor]:
    """Boolean masks ``base_only`` / ``shared`` / ``tuned_only`` / ``other`` from relative norms."""
    base = rel < BASE_ONLY
    shared = (rel >= SHARED[0]) & (rel <= SHARED[1])
    tuned = rel > TUNED_ONLY
    return {"base_only": base, "shared": shared, "tuned_only": tuned, "other": ~(base | shared | tuned)}


# ------------------------------------------------------------------------------------------ artifact
def save_crosscoder(cc: Crosscoder, directory: str | Path, *, force: bool = False) -> Path:
    """Write ``cc`` (raw-activation weights) as safetensors + ``config.json`` through :mod:`mechscope.io`."""
    from mechscope.io import dumps, write_artifact
    from mechscope.sae.base import folded

    if cc.info.get("scale_in", 1.0) != 1.0:
        cc = folded(cc, cc.info["scale_in"], cc.info["scale_out"])
    w, d = cc.cfg.width, cc.d_model
    tensors = {"W_enc": cc.W_enc, "b_enc": cc.b_enc, "W_dec": cc.W_dec.view(w, 2, d), "b_dec": cc.b_dec.view(2, d),
               "threshold": cc.threshold}  # fmt: skip
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in tensors.items()}
    info = {k: v for k, v in cc.info.items() if k not in ("scale_in", "scale_out")}
    config = {"format": 1, "crosscoder": CrosscoderConfig(d, w, cc.cfg.k).to_dict(), "info": info}
    fp = "+".join(str(info.get(f"{m}_fingerprint", "")) for m in ("base", "tuned"))
    return write_artifact(directory, tensors, None, kind=KIND, fingerprint=fp, tensors_file=WEIGHTS_FILE,
                          files={CONFIG_FILE: dumps(config) + "\n"}, force=force)  # fmt: skip


def load_crosscoder(directory: str | Path, base=None, tuned=None) -> Crosscoder:
    """Read a saved crosscoder; with ``base``/``tuned``, refuse one made for other models (one line)."""
    from mechscope.io import read_artifact

    directory = Path(directory).expanduser()
    fix = "point at a folder that `mechscope diff --crosscoder --save DIR` wrote"
    tensors, _ = read_artifact(directory, KIND, None, tensors_file=WEIGHTS_FILE, meta_file=CONFIG_FILE, fix=fix)
    try:
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        ccfg = CrosscoderConfig.from_dict(config["crosscoder"])
        info = dict(config.get("info") or {})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"the crosscoder at {directory} has an unreadable {CONFIG_FILE} ({exc}): {fix}") from None
    for role, model in (("base", base), ("tuned", tuned)):
        have = info.get(f"{role}_fingerprint")
        if model is not None and have and have != model.fingerprint:
            raise ArtifactError(f"the crosscoder at {directory} was trained with another {role} model (fingerprint "
                                f"{have}; {model.name} is {model.fingerprint}): load the models it was made for")  # fmt: skip
    cc = Crosscoder(ccfg.sae_config(), info)
    w, d = ccfg.width, ccfg.d_model
    want = {"W_enc": (2 * d, w), "b_enc": (w,), "W_dec": (w, 2, d), "b_dec": (2, d), "threshold": (w,)}
    for k, shape in want.items():
        if k not in tensors or tuple(tensors[k].shape) != shape:
            raise ArtifactError(f"the crosscoder at {directory} lacks {k} of shape {shape}: {fix}")
        if not torch.isfinite(tensors[k]).all():
            raise ArtifactError(f"the crosscoder at {directory} has non-finite values in {k}: retrain it")
    with torch.no_grad():
        cc.W_enc.copy_(tensors["W_enc"])
        cc.b_enc.copy_(tensors["b_enc"])
        cc.W_dec.copy_(tensors["W_dec"].reshape(w, 2 * d))
        cc.b_dec.copy_(tensors["b_dec"].reshape(2 * d))
        cc.threshold.copy_(tensors["threshold"])
    return cc.eval().requires_grad_(False)
