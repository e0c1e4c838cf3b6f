"""The sparse autoencoder module shared by every architecture.

Parameters (SAELens' orientation, so its files map one to one):

- ``W_enc`` ``[d_in, d_sae]``, ``b_enc`` ``[d_sae]``;
- ``W_dec`` ``[d_sae, d_out]`` (row i is latent i's output direction), ``b_dec`` ``[d_out]``;
- ``W_skip`` ``[d_in, d_out]`` for transcoders with a skip connection;
- ``threshold`` ``[d_sae]`` for jumprelu and batchtopk (a buffer for batchtopk: its inference threshold).

Architectures subclass :class:`SAE` in one file each (:mod:`~mechscope.sae.relu`,
:mod:`~mechscope.sae.topk`, :mod:`~mechscope.sae.batchtopk`, :mod:`~mechscope.sae.jumprelu`) and
provide the activation (:meth:`SAE.activation`, dense, for inference) and the training step's
reconstruction and penalties (:meth:`SAE.train_step`).

``SAE.info`` records where the SAE belongs: model name and fingerprint, input ``hook`` and ``target``
hook, the positions it was trained on. :func:`mechscope.sae.load` refuses an SAE on another model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor, nn

from mechscope.sae.config import SAEConfig, SAETrainConfig


@dataclass
class StepOut:
    """What one training forward returns."""

    recon: Float[Tensor, "batch d_out"]
    loss: Tensor
    """The scalar to minimise."""
    fired: Tensor
    """Latent indices that were active in this batch (any order, repeats allowed)."""
    l0: Tensor
    """Mean active latents per token."""
    terms: dict[str, Tensor] = field(default_factory=dict)
    """Named loss terms (fvu, l1, l0_penalty, auxk) for logs."""
    kept: Tensor | None = None
    """The positive activations kept (sparse architectures; batchtopk derives its threshold from them)."""


def fvu(y: Float[Tensor, "batch d"], recon: Float[Tensor, "batch d"]) -> Tensor:
    """Fraction of variance unexplained: ``sum |y - recon|^2 / sum |y - mean(y)|^2`` over the batch."""
    return (y - recon).pow(2).sum() / (y - y.mean(0)).pow(2).sum().clamp_min(1e-30)


class SAE(nn.Module):
    """A sparse autoencoder (or transcoder); see the module docstring for the parameters."""

    arch: str = ""

    def __init__(self, cfg: SAEConfig, info: dict | None = None):
        super().__init__()
        if cfg.arch != self.arch:
            raise ValueError(f"{type(self).__name__} is arch {self.arch!r}, the config says {cfg.arch!r}")
        self.cfg = cfg
        d_in, w, d_out = cfg.d_in, cfg.width, cfg.out_dim
        self.W_enc = nn.Parameter(torch.zeros(d_in, w))
        self.b_enc = nn.Parameter(torch.zeros(w))
        self.W_dec = nn.Parameter(torch.zeros(w, d_out))
        self.b_dec = nn.Parameter(torch.zeros(d_out))
        self.W_skip = nn.Parameter(torch.zeros(d_in, d_out)) if cfg.skip else None
        self.info: dict = dict(info or {})

    # ----------------------------------------------------------------- init

    def init_weights(self, generator: torch.Generator, sample_y: Tensor | None = None, b_dec_init: str = "median",
                     sample_x: Tensor | None = None) -> None:  # fmt: skip
        """Decoder rows random unit vectors (x0.1 for relu), encoder = decoder transpose, b_enc 0, b_dec at
        the geometric median (or mean) of ``sample_y``."""
        cfg = self.cfg
        with torch.no_grad():
            d = torch.randn(cfg.width, cfg.out_dim, generator=generator)
            d /= d.norm(dim=1, keepdim=True)
            if not cfg.unit_decoder:
                d *= 0.1
            self.W_dec.copy_(d)
            enc = d.t() if cfg.d_in == cfg.out_dim else torch.randn(cfg.d_in, cfg.width, generator=generator) / cfg.d_in ** 0.5
            self.W_enc.copy_(enc)
            self.b_enc.zero_()
            if sample_y is not None and b_dec_init != "zeros":
                y = sample_y.to(self.b_dec.dtype)
                self.b_dec.copy_(geometric_median(y) if b_dec_init == "median" else y.mean(0))

    # ------------------------------------------------------------ inference

    def encoder_input(self, x: Tensor) -> Tensor:
        return x if self.cfg.transcoder else x - self.b_dec

    def pre_acts(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        return self.encoder_input(x) @ self.W_enc + self.b_enc

    def activation(self, pre: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_sae"]:
        raise NotImplementedError

    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """Latent activations (dense), as at inference."""
        return self.activation(self.pre_acts(x))

    def decode(self, f: Float[Tensor, "... d_sae"], x: Tensor | None = None) -> Float[Tensor, "... d_out"]:
        """Reconstruction from latent activations (plus the skip path of ``x`` for skip transcoders)."""
        out = f @ self.W_dec + self.b_dec
        if self.W_skip is not None:
            if x is None:
                raise ValueError("a skip transcoder's decode needs the input x too")
            out = out + x @ self.W_skip
        return out

    def forward(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_out"]:
        return self.decode(self.encode(x), x)

    # ------------------------------------------------------------- training

    def train_step(self, x: Float[Tensor, "batch d_in"], y: Float[Tensor, "batch d_out"], tc: SAETrainConfig,
                   dead: Tensor | None) -> StepOut:  # fmt: skip
        """Reconstruction and loss of one batch (``dead``: bool ``[d_sae]`` of latents counted dead)."""
        raise NotImplementedError

    def skip_out(self, x: Tensor) -> Tensor | float:
        return x @ self.W_skip if self.W_skip is not None else 0.0

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Rescale decoder rows to unit norm (architectures with ``unit_decoder``)."""
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Remove the part of W_dec's gradient that would change row norms (kept at 1)."""
        g = self.W_dec.grad
        if g is not None:
            g -= (g * self.W_dec).sum(1, keepdim=True) * self.W_dec

    # ---------------------------------------------------------------- misc

    @property
    def hook(self) -> str | None:
        return self.info.get("hook")

    @property
    def target(self) -> str | None:
        return self.info.get("target", self.info.get("hook"))

    def extra_tensors(self) -> dict[str, Tensor]:
        """Buffers saved with the weights beyond the parameters (e.g. thresholds)."""
        return {}

    def load_extra(self, tensors: dict[str, Tensor]) -> None:
        """Restore :meth:`extra_tensors`."""

    def __repr__(self) -> str:
        where = f" {self.hook}" + (f" -> {self.target}" if self.target != self.hook else "") if self.hook else ""
        return f"<SAE {self.cfg.label()}{where}>"


def geometric_median(y: Float[Tensor, "n d"], iters: int = 100, eps: float = 1e-6) -> Float[Tensor, " d"]:
    """Weiszfeld's algorithm: the point minimising the summed Euclidean distance to the rows of ``y``."""
    y = y.double()
    m = y.mean(0)
    for _ in range(iters):
        w = 1.0 / (y - m).norm(dim=1).clamp_min(eps)
        new = (w[:, None] * y).sum(0) / w.sum()
        if (new - m).norm() <= eps * m.norm().clamp_min(1.0):
            m = new
            break
        m = new
    return m.float()


def folded(sae: SAE, scale_in: float, scale_out: float) -> SAE:
    """The same SAE for unscaled activations, when it was trained on ``x · scale_in`` → ``y · scale_out``.

    Every activation here is positively homogeneous, so dividing latent activations by ``scale_out``
    keeps decoder rows (unit norm stays unit norm) and moves the scales into the encoder, biases and
    thresholds: the result maps raw ``x`` to raw ``y`` exactly as the trained one maps scaled to scaled.
    """
    import copy

    out = copy.deepcopy(sae)
    r = scale_in / scale_out
    with torch.no_grad():
        if sae.cfg.transcoder:
            out.W_enc.mul_(r)
        out.b_enc.div_(scale_out)
        out.b_dec.div_(scale_out)
        if out.W_skip is not None:
            out.W_skip.mul_(r)
        if hasattr(out, "log_threshold"):
            out.log_threshold.sub_(float(torch.log(torch.tensor(scale_out, dtype=torch.float64))))
        elif isinstance(getattr(out, "threshold", None), Tensor):
            out.threshold.div_(scale_out)
    out.info = {**sae.info, "scale_in": 1.0, "scale_out": 1.0}
    return out
