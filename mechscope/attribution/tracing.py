"""ROME-style causal tracing (Meng et al. 2022): where does the model recall a fact about a subject?

1. Clean run of the prompt; P(answer) at the last position.
2. Corrupted runs: Gaussian noise of ``noise``·σ added to the subject tokens' embeddings (``hook_embed``,
   after any embedding scale), σ the standard deviation of the embedding matrix *with that scale* (Gemma
   multiplies by √d_model). ``samples`` noise draws, fixed by ``seed``.
3. Restored runs: a corrupted run in which one state at one (layer, position) is put back to its clean
   value; the *indirect effect* is ``P(answer | restored) − P(answer | corrupted)``, averaged over the
   noise draws. Three kinds of state:

   - ``resid``: the output of block ``l`` (``blocks.l.hook_resid_post``);
   - ``mlp``: the MLP outputs of a window of ``window`` layers centred on ``l`` (clipped at the ends);
   - ``attn``: the attention outputs of the same window.

Every (kind, layer, position, noise draw) is one row of a batched forward; rows share the corrupted
prompt and differ in the hook values they restore. The forward ends at the final norm; only the last
position is unembedded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from mechscope.attribution.common import subject_positions
from mechscope.attribution.config import TraceConfig
from mechscope.errors import ConfigError, PromptError

KINDS = ("resid", "mlp", "attn")
FINAL = "ln_final.hook_normalized"
HOOK = {"resid": "hook_resid_post", "mlp": "hook_mlp_out", "attn": "hook_attn_out"}


@dataclass
class TraceResult:
    tokens: list[str]
    subject_positions: list[int]
    answer: str
    clean_prob: float
    corrupted_prob: float
    effects: dict[str, Float[Tensor, "layer pos"]]
    """Indirect effect of restoring each state; NaN where not computed (``positions=``)."""
    config: TraceConfig
    sigma: float
    seconds: float = 0.0
    forwards: int = 0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"tokens": self.tokens, "subject_positions": self.subject_positions, "answer": self.answer,
                "clean_prob": self.clean_prob, "corrupted_prob": self.corrupted_prob,
                "effects": {k: v.tolist() for k, v in self.effects.items()},
                "samples": self.config.samples, "window": self.config.window, "noise": self.config.noise,
                "sigma": self.sigma, "seed": self.config.seed, "seconds": round(self.seconds, 3),
                "forwards": self.forwards}  # fmt: skip


def window_layers(layer: int, window: int, n_layers: int) -> range:
    """ROME's window: ``window`` layers centred on ``layer``, clipped to the model."""
    return range(max(0, layer - window // 2), min(n_layers, layer - (-window // 2)))


def embedding_sigma(model, embed_row: Tensor, token_id: int) -> float:
    """σ of the embedding matrix as ``hook_embed`` sees it: the stored matrix's std times the embedding
    scale, read off one token (``hook_embed`` ÷ its stored row), so no architecture table is needed."""
    W = model.W_E.detach()
    scale = float(embed_row.float().norm() / W[token_id].float().norm())
    return float(W.float().std()) * scale


def _answer_prob(model, normed: Tensor, answer_id: int) -> Tensor:
    logits = model.unembed.logits(normed).float()  # [rows, d_vocab]
    return logits.softmax(-1)[:, answer_id]


@torch.no_grad()
def causal_trace(model, prompt: str, subject: str, answer: str, config: TraceConfig | None = None, *,
                 kinds: Sequence[str] = KINDS, positions: Sequence[int] | None = None,
                 progress: bool = False, on_progress=None) -> TraceResult:  # fmt: skip
    """Indirect effect of every (kind, layer, position) on P(answer); see the module docstring.
    ``on_progress(done, total)`` is called after every batched forward (see ``activation_patching``)."""
    cfg = config or TraceConfig()
    t0 = time.perf_counter()
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ConfigError(f"kinds must be among {', '.join(KINDS)}, got {list(kinds)!r}")
    subj = subject_positions(model, prompt, subject)
    answer_id = model.token_id(answer)
    ids = model.to_tokens(prompt).input_ids[0]
    L, P = model.cfg.n_layers, len(ids)
    pos_list = list(range(P)) if positions is None else sorted({p % P for p in positions})
    names = sorted({f"blocks.{l}.{HOOK[k]}" for k in kinds for l in range(L)} | {"hook_embed", FINAL},
                   key=model.hook_names.index)  # fmt: skip
    clean = model.collect(ids[None], names)
    clean_prob = float(_answer_prob(model, clean[FINAL][:, -1], answer_id)[0])
    sigma = embedding_sigma(model, clean["hook_embed"][0, -1], int(ids[-1]))
    gen = torch.Generator().manual_seed(cfg.seed)
    noise = (torch.randn(cfg.samples, len(subj), model.cfg.d_model, generator=gen) * cfg.noise * sigma)
    noise = noise.to(model.device, model.dtype)
    subj_t = torch.tensor(subj, device=model.device)

    # rows: (kind, layer, position) jobs × noise draws; row r uses draw r % samples
    jobs = [(k, l, p) for k in kinds for l in range(L) for p in pos_list]
    rows = [(None, -1, -1)] + jobs  # the first job is the corrupted run itself
    n_rows = len(rows) * cfg.samples
    probs = torch.empty(n_rows)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_rows, desc="mechscope: tracing", unit="run", leave=False)
    forwards = 1
    for start in range(0, n_rows, cfg.batch_size):
        idx = list(range(start, min(n_rows, start + cfg.batch_size)))
        hooks = _trace_hooks(model, [rows[i // cfg.samples] for i in idx], [i % cfg.samples for i in idx], noise,
                             subj_t, clean, cfg.window)  # fmt: skip
        batch = ids[None].expand(len(idx), -1)
        normed = model.collect(batch, [FINAL], positions=[-1], fwd_hooks=hooks)[FINAL][:, 0]
        probs[idx[0] : idx[-1] + 1] = _answer_prob(model, normed, answer_id).cpu()
        forwards += 1
        if bar is not None:
            bar.update(len(idx))
        if on_progress is not None:
            on_progress(idx[-1] + 1, n_rows)
    if bar is not None:
        bar.close()
    means = probs.view(len(rows), cfg.samples).mean(1)
    corrupted = float(means[0])
    effects = {k: torch.full((L, P), float("nan")) for k in kinds}
    for (k, l, p), m in zip(jobs, means[1:].tolist()):
        effects[k][l, p] = m - corrupted
    return TraceResult(model.to_str_tokens(ids), subj, answer, clean_prob, corrupted, effects, cfg, sigma,
                       time.perf_counter() - t0, forwards)  # fmt: skip


def _trace_hooks(model, jobs, draws, noise, subj, clean, window):
    """Noise on the subject embeddings of every row; each row's restored states written back."""
    draws_t = torch.tensor(draws, device=noise.device)
    L = model.cfg.n_layers
    restore: dict[str, list[tuple[int, int]]] = {}
    for row, (kind, layer, pos) in enumerate(jobs):
        if kind is None:
            continue
        layers = [layer] if kind == "resid" else window_layers(layer, window, L)
        for l in layers:
            restore.setdefault(f"blocks.{l}.{HOOK[kind]}", []).append((row, pos))

    def add_noise(act, spec):
        act = act.clone()
        act[:, subj] += noise[draws_t]
        return act

    def put_back(name, items):
        rows = torch.tensor([r for r, _ in items], device=noise.device)
        ps = torch.tensor([p for _, p in items], device=noise.device)
        src = clean[name][0]

        def fn(act, spec):
            act = act.clone()
            act[rows, ps] = src[ps].to(act.dtype)
            return act

        return fn

    return [("hook_embed", add_noise)] + [(name, put_back(name, items)) for name, items in restore.items()]


def trace_facts(model, facts=None, config: TraceConfig | None = None, *, kinds: Sequence[str] = KINDS,
                progress: bool = False) -> dict:  # fmt: skip
    """Meng et al.'s averaged picture: indirect effect per layer at the last subject token and at the last
    token, averaged over ``facts`` (default: the built-in set), for each kind of state."""
    from mechscope.attribution.facts import FACTS

    cfg = config or TraceConfig()
    facts = FACTS if facts is None else facts
    if not facts:
        raise PromptError("no facts to trace")
    t0 = time.perf_counter()
    sums = {k: {"last_subject": torch.zeros(model.cfg.n_layers), "last": torch.zeros(model.cfg.n_layers)} for k in kinds}
    clean, corrupted = [], []
    it = facts
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(facts, desc="mechscope: tracing facts", unit="fact", leave=False)
    for fact in it:
        subj = subject_positions(model, fact.prompt, fact.subject)
        res = causal_trace(model, fact.prompt, fact.subject, fact.answer, cfg, kinds=kinds, positions=[subj[-1], -1])
        for k in kinds:
            sums[k]["last_subject"] += res.effects[k][:, subj[-1]]
            sums[k]["last"] += res.effects[k][:, -1]
        clean.append(res.clean_prob)
        corrupted.append(res.corrupted_prob)
    n = len(facts)
    return {"n_facts": n, "samples": cfg.samples, "window": cfg.window, "noise": cfg.noise,
            "clean_prob": sum(clean) / n, "corrupted_prob": sum(corrupted) / n,
            "average": {k: {w: (v / n).tolist() for w, v in d.items()} for k, d in sums.items()},
            "seconds": round(time.perf_counter() - t0, 3)}  # fmt: skip
