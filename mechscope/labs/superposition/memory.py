"""The MLP as a fact memory: one hand-built neuron that fires for "Michael Jordan" and writes "basketball".

3Blue1Brown's picture ("How might LLMs store facts"): the residual stream at the last token of a name
holds a "first name Michael" direction and a "last name Jordan" direction. One MLP neuron reads both,

    pre  = (e_Michael + e_Jordan) · x - 1        (the bias -1 makes it an AND gate)
    post = ReLU(pre)
    out  = post · e_basketball                    (the down projection writes "basketball")

so "Michael Jordan" (x = e_Michael + e_Jordan) gives pre = 1 and adds one unit of basketball, while
"Michael Phelps" and "Alexis Jordan" give pre = 0: nothing. Without the bias the neuron would fire half
as strongly for either name alone; the bias is what makes it an AND.

:func:`gemma_basketball_neurons` is the plain probe on a real model: the neurons whose output, read
straight through the unembedding, most raises " basketball" at the last subject token. It ignores every
norm after the neuron (Gemma's post-feedforward norm, later blocks, the final norm), so it ranks
candidates; it is no attribution. The circuits issue's direct logit attribution replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

WORDS = ("Michael", "Jordan", "Phelps", "Alexis", "basketball")
"""The residual-stream directions of the toy, one orthonormal axis each (in this order)."""
PROMPTS = {"Michael Jordan": ("Michael", "Jordan"), "Michael Phelps": ("Michael", "Phelps"),
           "Alexis Jordan": ("Alexis", "Jordan")}  # fmt: skip


@dataclass(frozen=True)
class AndNeuronMLP:
    """A one-neuron MLP over a residual stream whose axes are :data:`WORDS`."""

    W_in: Tensor
    """[d_mlp=1, d_model] the neuron reads e_Michael + e_Jordan."""
    b_in: Tensor
    """[d_mlp] bias -1: the AND."""
    W_out: Tensor
    """[d_model, d_mlp] the neuron writes e_basketball."""

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x [batch, d_model] → (pre [batch, 1], post [batch, 1], out [batch, d_model])."""
        pre = x @ self.W_in.T + self.b_in
        post = torch.relu(pre)
        return pre, post, post @ self.W_out.T


def axis(word: str) -> Tensor:
    v = torch.zeros(len(WORDS))
    v[WORDS.index(word)] = 1.0
    return v


def build(bias: float = -1.0) -> AndNeuronMLP:
    """The AND neuron (``bias=0`` shows the neuron without its AND: it fires for either name)."""
    W_in = (axis("Michael") + axis("Jordan"))[None, :]
    return AndNeuronMLP(W_in, torch.tensor([bias]), axis("basketball")[:, None])


def residual(prompt: str) -> Tensor:
    """The toy residual stream at the last token of a name: the sum of its name directions."""
    return sum(axis(w) for w in PROMPTS[prompt])


def run(bias: float = -1.0) -> list[dict]:
    """Each prompt's neuron pre-activation, activation and the basketball it adds to the residual."""
    mlp = build(bias)
    rows = []
    for prompt in PROMPTS:
        pre, post, out = mlp(residual(prompt)[None, :])
        rows.append({"prompt": prompt, "pre": float(pre[0, 0]), "post": float(post[0, 0]),
                     "basketball": float(out[0, WORDS.index("basketball")])})  # fmt: skip
    return rows


def plot(path, bias: float = -1.0):
    """Bars of what the neuron adds to "basketball" per prompt, with and without the AND bias."""
    from mechscope.labs.superposition.figures import new_figure, save

    fig = new_figure(6.0, 2.8)
    ax_in, ax = fig.subplots(1, 2, width_ratios=[1, 1.4])
    mlp = build(bias)
    ax_in.imshow(torch.cat([mlp.W_in, mlp.W_out.T]).numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    ax_in.set_xticks(range(len(WORDS)), WORDS, rotation=40, fontsize=7)
    ax_in.set_yticks([0, 1], ["reads (W_in)", "writes (W_out)"], fontsize=7)
    ax_in.set_title(f"the neuron (bias {bias:g})", fontsize=8)
    with_and, without = run(bias), run(0.0)
    x = torch.arange(len(PROMPTS)).float()
    ax.bar((x - 0.2).numpy(), [r["basketball"] for r in with_and], 0.4, color="#2a788e", label=f"bias {bias:g} (AND)")
    ax.bar((x + 0.2).numpy(), [r["basketball"] for r in without], 0.4, color="#bddf26", label="bias 0 (no AND)")
    ax.set_xticks(x.numpy(), list(PROMPTS), fontsize=7)
    ax.set_ylabel("basketball added", fontsize=7)
    ax.legend(fontsize=7)
    ax.set_title("MLP as fact memory: one AND neuron", fontsize=8)
    return save(fig, path)


@dataclass
class NeuronHit:
    layer: int
    neuron: int
    activation: float
    """hook_post at the last subject token."""
    effect: float
    """Direct logit attribution of the neuron to ``target``'s logit at that token (logits; norms frozen from the run)."""


def gemma_basketball_neurons(model, prompt: str = "Michael Jordan plays the sport of", subject: str = "Michael Jordan",
                             target: str = " basketball", top: int = 10) -> list[NeuronHit]:  # fmt: skip
    """The MLP neurons whose output most raises ``target``'s logit at the last token of ``subject``, by direct
    logit attribution (:func:`mechscope.attribution.dla.direct_logit_attribution` at that position: each
    neuron's write through its post-MLP norm and the final norm, scales frozen from the run, onto the
    unembedding row). Direct effects only: what later layers do with the neuron's output is not counted."""
    from mechscope.attribution.dla import direct_logit_attribution
    from mechscope.errors import PromptError

    if not prompt.startswith(subject):
        raise PromptError(f"the prompt must start with the subject {subject!r}")
    pos = len(model.to_str_tokens(subject)) - 1  # the subject's last token (BOS included in both)
    res = direct_logit_attribution(model, prompt, target, position=pos)
    names = [f"blocks.{layer}.mlp.hook_post" for layer in range(model.cfg.n_layers)]
    cache = model.collect(prompt, names, positions=pos)
    flat = res.neurons.flatten()
    d_mlp = res.neurons.shape[1]
    vals, idx = flat.topk(min(top, flat.numel()))
    hits = []
    for v, i in zip(vals.tolist(), idx.tolist()):
        layer, neuron = divmod(i, d_mlp)
        hits.append(NeuronHit(layer, neuron, float(cache[names[layer]].reshape(-1)[neuron]), v))
    return hits
