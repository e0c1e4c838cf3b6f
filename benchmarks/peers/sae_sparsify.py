"""EleutherAI sparsify 1.3.3: TopK SAE training on Gemma 3 270M's layer-6 residual stream, through its
Python API (``Trainer(TrainConfig(SaeConfig(...)), dataset, model).fit()``; its CLI hard-codes CUDA).
Runs in ``benchmarks/envs/sparsify``; prints one JSON line (see ``sae_common.py`` for the inputs and the
token / FVU conventions).

    benchmarks/envs/sparsify/bin/python benchmarks/peers/sae_sparsify.py --tokens 61440 \\
        --tokens-file /tmp/sae_bench/tokens.safetensors --acts-file /tmp/sae_bench/acts.safetensors

What the peer does, as its CLI would with ``loss_fn=fvu``: the model is ``AutoModel`` (the base
``Gemma3TextModel``, no LM head) in fp32; the hook is ``layers.6`` of the base model (its output is
mechscope's ``blocks.6.hook_resid_post``); every batch runs the **whole** 18-layer model (sparsify has no
early stop; ``--truncate`` cuts the model after the hooked layer, which is not what sparsify does by
itself); optimizer: its default, schedule-free Signum, lr ``5e-3 / sqrt(width / 2**14)``; b_dec
initialised to the first batch's mean; decoder rows kept at unit norm; no AuxK (``auxk_alpha=0``).
BOS is excluded with ``exclude_tokens=[bos]``. The trained SAE is the checkpoint ``fit()`` writes
(schedule-free's averaged weights), loaded back with ``Sae.load_from_disk``.

LM-forward time: the model's forward up to the hooked layer's output plus from the next layer's start to
the model's end (hooks around sparsify's own hook, which runs the SAE step inside the forward).

SAE step alone: the same ``Trainer.fit`` over a stand-in ``PreTrainedModel`` whose only "layer" returns
rows of ``--acts-file`` (an embedding lookup), so the SAE step, optimizer and bookkeeping are sparsify's
own code and the "LM forward" costs a gather.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sae_common import Timer, emit, evaluate, heldout_acts, load_acts, load_data, log, parser  # noqa: E402


def _config(args, hookpoint: str, save_dir: str, exclude: list[int]):
    from sparsify import SaeConfig, TrainConfig

    return TrainConfig(SaeConfig(num_latents=args.width, k=args.k), batch_size=args.contexts_per_batch,
                       hookpoints=[hookpoint], exclude_tokens=exclude, lr=args.lr, init_seeds=[args.seed],
                       save_every=10**9, log_to_wandb=False, save_dir=save_dir, run_name="bench")  # fmt: skip


def _dataset(ids):
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": ids.tolist()}).with_format("torch")


def end_to_end(args, data, model) -> tuple[dict, object]:
    from sparsify import Sae, Trainer

    n_ctx = args.tokens // args.seq_len
    ids = data.train[:n_ctx]
    layers = model.layers
    lm = Timer()
    hooks = [model.register_forward_pre_hook(lambda *_: lm.start()),
             layers[args.layer].register_forward_hook(lambda *_: lm.stop())]  # fmt: skip
    if args.layer + 1 < len(layers):
        hooks += [layers[args.layer + 1].register_forward_pre_hook(lambda *_: lm.start()),
                  model.register_forward_hook(lambda *_: lm.stop())]  # fmt: skip
    exclude = [] if args.train_bos else [data.bos]
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(_config(args, f"layers.{args.layer}", tmp, exclude), _dataset(ids), model)
        lm.total = 0.0  # Trainer() ran one dummy forward to find the width
        t = time.perf_counter()
        trainer.fit()
        wall = time.perf_counter() - t
        for h in hooks:
            h.remove()
        sae = Sae.load_from_disk(Path(tmp) / "bench" / f"layers.{args.layer}")
    sae_tokens = int((ids != data.bos).sum()) if exclude else ids.numel()
    res = {"tokens": ids.numel(), "sae_tokens": sae_tokens, "steps": n_ctx // args.contexts_per_batch,
           "seconds": round(wall, 2), "tokens_per_s": round(ids.numel() / wall, 1),
           "sae_tokens_per_s": round(sae_tokens / wall, 1), "lm_forward_s": round(lm.total, 2),
           "lm_forward_fraction": round(lm.total / wall, 3),
           "lm_layers_run": len(layers), "lr": trainer.optimizers[0].param_groups[0]["lr"]}  # fmt: skip
    return res, sae


def sae_step_only(args) -> dict:
    import torch
    from sparsify import Trainer
    from torch import nn
    from transformers import PretrainedConfig, PreTrainedModel

    acts = load_acts(args)

    class ReplayConfig(PretrainedConfig):
        model_type = "sae_replay"

        def __init__(self, hidden_size: int = 640, **kw):
            super().__init__(**kw)
            self.hidden_size, self.num_hidden_layers = hidden_size, 1

    class Replay(PreTrainedModel):
        config_class = ReplayConfig
        base_model_prefix = "replay"  # absent attribute: base_model is the model itself

        def __init__(self, config, rows):
            super().__init__(config)
            self.rows = nn.Embedding.from_pretrained(rows, freeze=True)
            self.layers = nn.ModuleList([nn.Identity()])

        def forward(self, input_ids, **_):
            h = self.rows(input_ids)
            for layer in self.layers:
                h = layer(h)
            return h

    model = Replay(ReplayConfig(hidden_size=acts.shape[1]), acts)
    ids = torch.arange(len(acts)).view(-1, args.seq_len)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(_config(args, "layers.0", tmp, []), _dataset(ids), model)
        t = time.perf_counter()
        trainer.fit()
        wall = time.perf_counter() - t
    return {"tokens": len(acts), "steps": len(ids) // args.contexts_per_batch, "seconds": round(wall, 2),
            "tokens_per_s": round(len(acts) / wall, 1), "batch_tokens": args.contexts_per_batch * args.seq_len,
            "how": "sparsify Trainer.fit over a stand-in model replaying --acts-file rows (includes its final save)"}  # fmt: skip


def main(argv=None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--truncate", action="store_true", help="cut the model after the hooked layer (not sparsify's default)")
    args = ap.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):  # sparsify prints progress on stdout; the JSON line is all it gets
        run(args)


def run(args) -> None:
    import torch
    from importlib.metadata import version

    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tok = AutoTokenizer.from_pretrained(args.model_dir)
    data = load_data(args, tok)
    t = time.perf_counter()
    model = AutoModel.from_pretrained(args.model_dir, dtype=torch.float32).eval()
    load_s = time.perf_counter() - t
    if args.truncate:
        model.layers = model.layers[: args.layer + 1]
    log(f"sparsify: {type(model).__name__} fp32, {len(model.layers)} layers, {args.tokens // args.seq_len} contexts")
    e2e, sae = end_to_end(args, data, model)
    log(f"end to end: {e2e}")
    ev = None
    if not args.no_eval:
        x = heldout_acts(model.layers[args.layer], lambda ids: model(ids), data.heldout)

        def enc_dec(xb):
            top = sae.encode(xb)
            return (top.top_acts, top.top_indices), sae.decode(top.top_acts, top.top_indices)

        ev = evaluate(x, enc_dec, args.width)
        log(f"eval: {ev}")
    step = sae_step_only(args) if args.acts_file else None
    if step:
        log(f"sae step: {step}")
    emit(peer="sparsify", version=version("eai-sparsify"),
         versions={d: version(d) for d in ("eai-sparsify", "torch", "transformers")},
         config={"layer": args.layer, "hook": f"model.layers.{args.layer} (base model: layers.{args.layer})",
                 "width": args.width, "k": args.k, "contexts_per_batch": args.contexts_per_batch,
                 "seq_len": args.seq_len, "threads": args.threads, "train_bos": args.train_bos,
                 "optimizer": "signum (schedule-free)", "truncate": args.truncate, "tokens_source": data.source},
         model_load_s=round(load_s, 2), end_to_end=e2e, sae_step=step, eval=ev)  # fmt: skip


if __name__ == "__main__":
    main()
