"""How good an SAE (or transcoder) is, on held-out text: sparsity, reconstruction, and the model's loss
with the SAE spliced in.

Every metric covers the same positions: all but BOS of packed held-out contexts (each starts with
BOS; :mod:`mechscope.data.packing`). With ``x`` the activation at ``sae.hook``, ``y`` the one at
``sae.target`` (the same hook for an SAE), ``f = sae.encode(x)`` and ``ŷ = sae(x)``, over the ``N``
evaluated positions:

- ``l0``: mean number of active latents (``f ≠ 0``) per position;
- ``fvu``: ``Σ |y - ŷ|² / Σ |y - ȳ|²`` (``ȳ`` the mean of ``y`` over the N positions), from running
  sums in float64 (one streamed pass);
- ``dead_fraction``: latents never active on the N positions; ``dense_fraction``: latents active on
  more than ``dense_threshold`` of them;
- ``ce_clean`` / ``ce_spliced`` / ``ce_zero``: mean next-token cross-entropy (nats) of the logits at
  the same positions that have a next token (position ``p`` predicts token ``p + 1``), clean, with
  ``y`` replaced by ``ŷ`` at every non-BOS position, and with ``y`` set to zero there;
- ``loss_recovered``: ``(ce_zero - ce_spliced) / (ce_zero - ce_clean)`` (1 = as good as clean).

For a transcoder the input hook fires before the target in the same forward, so the spliced forward
reads ``x`` at ``sae.hook`` and writes ``ŷ`` at ``sae.target``. Several SAEs are evaluated on one pass
(:func:`evaluate_many`): the clean and zero-ablated forwards are shared.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor

from mechscope.errors import ConfigError
from mechscope.sae.config import SAEEvalConfig  # noqa: F401  (re-exported)

POSITIONS = "all but BOS"


@dataclass
class SAEEval:
    """The evaluation of one SAE (see the module docstring for the definitions)."""

    label: str
    hook: str
    target: str
    l0: float
    fvu: float
    dead_fraction: float
    dense_fraction: float
    ce_clean: float
    ce_spliced: float
    ce_zero: float
    tokens: int
    """Positions the activation metrics cover (contexts · (seq_len - 1))."""
    predicted: int
    """Positions the cross-entropies cover (those with a next token)."""
    contexts: int
    seconds: float
    density: Tensor = field(repr=False)
    """Per latent, the fraction of the evaluated positions where it is active ``[d_sae]``."""
    dense_threshold: float = 0.1

    @property
    def loss_recovered(self) -> float:
        gap = self.ce_zero - self.ce_clean
        return (self.ce_zero - self.ce_spliced) / gap if gap != 0 else math.nan

    @property
    def width(self) -> int:
        return int(self.density.shape[0])

    def density_histogram(self, lo: float | None = None, bins_per_decade: int = 2) -> dict:
        """Counts of live latents per log10(density) bin from ``lo`` (default: the decade below
        1 / tokens, the least a live latent can have) to 0, plus the dead count."""
        if lo is None:
            lo = -float(math.ceil(math.log10(max(2, self.tokens))))
        d = self.density.double()
        live = d[d > 0]
        edges = [lo + i / bins_per_decade for i in range(int(-lo * bins_per_decade) + 1)]
        counts = torch.histc(live.log10().clamp(lo, 0.0), bins=len(edges) - 1, min=lo, max=0.0) if live.numel() else \
            torch.zeros(len(edges) - 1)  # fmt: skip
        return {"log10_edges": edges, "counts": [int(c) for c in counts.tolist()], "dead": int((d == 0).sum())}

    def to_dict(self) -> dict:
        return {"label": self.label, "hook": self.hook, "target": self.target, "width": self.width,
                "l0": self.l0, "fvu": self.fvu, "dead_fraction": self.dead_fraction,
                "dense_fraction": self.dense_fraction, "dense_threshold": self.dense_threshold,
                "ce_clean": self.ce_clean, "ce_spliced": self.ce_spliced, "ce_zero": self.ce_zero,
                "ce_delta": self.ce_spliced - self.ce_clean, "loss_recovered": self.loss_recovered,
                "tokens": self.tokens, "predicted_tokens": self.predicted, "contexts": self.contexts,
                "positions": POSITIONS, "seconds": round(self.seconds, 2),
                "density_histogram": self.density_histogram()}  # fmt: skip

    def table(self) -> str:
        rows = [("L0 (active latents / token)", f"{self.l0:.2f}"), ("FVU", f"{self.fvu:.4f}"),
                ("dead latents", f"{self.dead_fraction:.1%} of {self.width:,}"),
                (f"dense latents (> {self.dense_threshold:.0%} of tokens)", f"{self.dense_fraction:.1%}"),
                ("CE clean", f"{self.ce_clean:.4f}"), ("CE with SAE spliced in", f"{self.ce_spliced:.4f}"),
                ("CE target zero-ablated", f"{self.ce_zero:.4f}"), ("loss recovered", f"{self.loss_recovered:.1%}")]  # fmt: skip
        head = f"{self.label} at {self.hook}" + (f" -> {self.target}" if self.target != self.hook else "")
        lines = [head] + [f"  {k:<36} {v}" for k, v in rows]
        lines.append(f"  ({self.tokens:,} held-out positions, {POSITIONS}; {self.contexts} contexts, {self.seconds:.1f} s)")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------ running sums
class RunningStats:
    """Streamed sparsity and reconstruction statistics of one SAE (float64 sums)."""

    def __init__(self, width: int, d_out: int):
        self.n = 0
        self.active = 0.0
        self.sse = 0.0
        self.fired = torch.zeros(width, dtype=torch.float64)
        self.shift: Tensor | None = None  # the first batch's mean: sums of (y - shift) avoid cancellation
        self.sum = torch.zeros(d_out, dtype=torch.float64)
        self.sumsq = 0.0

    def update(self, f: Float[Tensor, "n d_sae"], y: Float[Tensor, "n d_out"], recon: Float[Tensor, "n d_out"]) -> None:
        y64 = y.double()
        if self.shift is None:
            self.shift = y64.mean(0).cpu()
        c = y64 - self.shift.to(y64.device)
        active = f != 0
        self.n += y.shape[0]
        self.active += float(active.sum())
        self.fired += active.sum(0).double().cpu()
        self.sse += float((y64 - recon.double()).pow(2).sum())
        self.sum += c.sum(0).cpu()
        self.sumsq += float(c.pow(2).sum())

    @property
    def fvu(self) -> float:
        if self.n == 0:
            return math.nan
        var = self.sumsq - float(self.sum.pow(2).sum()) / self.n  # Σ|y - ȳ|²
        return self.sse / var if var > 0 else math.nan

    @property
    def l0(self) -> float:
        return self.active / self.n if self.n else math.nan

    @property
    def density(self) -> Tensor:
        return (self.fired / max(1, self.n)).float()


def next_token_ce(logits: Float[Tensor, "batch pos d_vocab"], ids: Int[Tensor, "batch pos"], first: int) -> tuple[float, int]:
    """Summed next-token cross-entropy (nats) of the logits at positions ``first .. pos-2`` and its count."""
    lg = logits[:, first:-1].float()  # [batch, pos - first - 1, vocab]
    tgt = ids[:, first + 1:].to(lg.device).long()
    ce = torch.logsumexp(lg, -1) - lg.gather(-1, tgt[..., None]).squeeze(-1)  # no [.., vocab] log-softmax copy
    return float(ce.double().sum()), tgt.numel()


# -------------------------------------------------------------------------------------- evaluation
def check_sae_hooks(model, sae) -> None:
    """One-line errors when ``sae`` cannot be spliced into ``model`` (other model, hook, width, shape)."""
    from mechscope.sae.artifact import check_for_model

    check_for_model(sae, model, where=repr(sae))
    for name in (sae.hook, sae.target):
        shape = model.spec(name).shape
        if len(shape) != 3 or shape[:2] != ("batch", "pos"):
            raise ConfigError(f"{name} has shape {shape}: an SAE is evaluated on a [batch, pos, d] hook")
    order = {n: i for i, n in enumerate(model.hook_names)}
    hook, target = model.spec(sae.hook).name, model.spec(sae.target).name
    if order[hook] > order[target]:
        raise ConfigError(f"the transcoder reads {hook}, which fires after its target {target}: it cannot be spliced in")


def heldout_contexts(model, cfg: SAEEvalConfig, progress: bool = True) -> Int[Tensor, "context seq"]:
    """The held-out packed contexts of ``cfg`` (``cfg.tokens`` rounded up to whole contexts)."""
    from mechscope.data.corpus import corpus_batches

    if cfg.corpus.seq_len > model.cfg.n_ctx:
        raise ConfigError(f"seq_len {cfg.corpus.seq_len} exceeds the model's context window {model.cfg.n_ctx}")
    if cfg.corpus.seq_len < 3:
        raise ConfigError("evaluating an SAE needs seq_len ≥ 3 (BOS, a position, and the token it predicts)")
    n_ctx = math.ceil(cfg.tokens / cfg.corpus.seq_len)
    chunks = list(corpus_batches(model.tokenizer, cfg.corpus, "heldout", 256, n_ctx * cfg.corpus.seq_len, progress=progress))
    if not chunks:
        raise ConfigError(f"the held-out split of {', '.join(cfg.corpus.sources)} is shorter than one "
                          f"{cfg.corpus.seq_len}-token context: give more text or a shorter --seq-len")  # fmt: skip
    return torch.cat(chunks)[:n_ctx]


def zero_hooks(target: str, first: int) -> list:
    """A hook function setting ``target`` to zero at positions ``first:``."""

    def zero(act: Tensor, spec) -> Tensor:
        out = act.clone()
        out[:, first:] = 0
        return out

    return [(target, zero)]


def splice_hooks(sae, stats: RunningStats | None, first: int) -> list:
    """Hook functions replacing ``sae.target`` at positions ``first:`` by the SAE's reconstruction of
    ``sae.hook`` (read earlier in the same forward for a transcoder); ``stats`` is updated on the way."""
    hold: dict[str, Tensor] = {}

    def read(act: Tensor, spec) -> None:
        hold["x"] = act[:, first:]

    def write(act: Tensor, spec) -> Tensor:
        x = hold.pop("x") if sae.hook != sae.target else act[:, first:]
        x2 = x.reshape(-1, x.shape[-1]).float()  # [batch · positions, d_in]
        y2 = act[:, first:].reshape(-1, act.shape[-1]).float()  # [batch · positions, d_out]
        f = sae.encode(x2)
        recon = sae.decode(f, x2)
        if stats is not None:
            stats.update(f, y2, recon)
        out = act.clone()
        out[:, first:] = recon.view(act.shape[0], -1, act.shape[-1]).to(act.dtype)
        return out

    return [(sae.target, write)] if sae.hook == sae.target else [(sae.hook, read), (sae.target, write)]


@torch.no_grad()
def evaluate_many(model, saes: list, cfg: SAEEvalConfig = SAEEvalConfig(), *,
                  contexts: Int[Tensor, "context seq"] | None = None, progress: bool = True) -> list[SAEEval]:  # fmt: skip
    """Evaluate each SAE of ``saes`` on the same held-out contexts (``contexts`` overrides the corpus);
    the clean forward runs once, the zero-ablated one once per distinct target hook."""
    from tqdm.auto import tqdm

    if not saes:
        raise ConfigError("evaluate needs at least one SAE")
    for sae in saes:
        check_sae_hooks(model, sae)
    start = time.perf_counter()
    ids_all = heldout_contexts(model, cfg, progress) if contexts is None else contexts
    if ids_all.ndim != 2 or ids_all.shape[1] < 3 or ids_all.shape[0] == 0:
        raise ConfigError(f"contexts must be [context, seq ≥ 3], got shape {tuple(ids_all.shape)}")
    bos = model.tokenizer.bos_token_id
    first = 1 if bos is not None and bool((ids_all[:, 0] == bos).all()) else 0
    saes = [s.to(model.device).eval() for s in saes]
    stats = [RunningStats(s.cfg.width, s.cfg.out_dim) for s in saes]
    targets = list(dict.fromkeys(s.target for s in saes))
    ce_clean, ce_spliced, ce_zero = 0.0, [0.0] * len(saes), {t: 0.0 for t in targets}
    n_pred = 0
    bar = tqdm(total=ids_all.numel(), desc=f"mechscope: evaluate {len(saes)} SAE{'s' * (len(saes) > 1)}", unit="tok",
               unit_scale=True, disable=not progress)  # fmt: skip
    for s0 in range(0, ids_all.shape[0], cfg.batch_contexts):
        ids = ids_all[s0:s0 + cfg.batch_contexts]
        ce, n = next_token_ce(model.forward(ids, prepend_bos=False), ids, first)
        ce_clean += ce
        n_pred += n
        for t in targets:
            logits = model.forward(ids, prepend_bos=False, fwd_hooks=zero_hooks(t, first))
            ce_zero[t] += next_token_ce(logits, ids, first)[0]
        for i, sae in enumerate(saes):
            logits = model.forward(ids, prepend_bos=False, fwd_hooks=splice_hooks(sae, stats[i], first))
            ce_spliced[i] += next_token_ce(logits, ids, first)[0]
        bar.update(ids.numel())
    bar.close()
    seconds = time.perf_counter() - start
    out = []
    for sae, st, ce_s in zip(saes, stats, ce_spliced):
        dens = st.density
        out.append(SAEEval(label=sae.cfg.label(), hook=sae.hook, target=sae.target, l0=st.l0, fvu=st.fvu,
                           dead_fraction=float((dens == 0).float().mean()),
                           dense_fraction=float((dens > cfg.dense_threshold).float().mean()),
                           ce_clean=ce_clean / n_pred, ce_spliced=ce_s / n_pred, ce_zero=ce_zero[sae.target] / n_pred,
                           tokens=st.n, predicted=n_pred, contexts=int(ids_all.shape[0]), seconds=seconds,
                           density=dens, dense_threshold=cfg.dense_threshold))  # fmt: skip
    return out


def evaluate(model, sae, cfg: SAEEvalConfig = SAEEvalConfig(), *, contexts: Int[Tensor, "context seq"] | None = None,
             progress: bool = True) -> SAEEval:  # fmt: skip
    """Evaluate one SAE on held-out text (see the module docstring for the metrics)."""
    return evaluate_many(model, [sae], cfg, contexts=contexts, progress=progress)[0]

