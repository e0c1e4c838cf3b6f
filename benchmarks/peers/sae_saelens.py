"""SAELens 6.x: TopK SAE training on Gemma 3 270M's layer-6 residual stream through its public runner,
``LanguageModelSAETrainingRunner(LanguageModelSAERunnerConfig(...), override_dataset=..., override_model=...)``.
Runs in ``benchmarks/envs/sae``; prints one JSON line (see ``sae_common.py`` for the inputs and the token /
FVU conventions).

    benchmarks/envs/sae/bin/python benchmarks/peers/sae_saelens.py --tokens 61440 \\
        --tokens-file /tmp/sae_bench/tokens.safetensors --acts-file /tmp/sae_bench/acts.safetensors

Offline: the config names ``model_class_name="AutoModelForCausalLM"``, ``model_name=<local dir>``,
``hook_name="model.layers.6"`` (the HF module whose output is mechscope's ``blocks.6.hook_resid_post``),
and the model is passed already loaded (fp32) as ``override_model=HookedProxyLM(hf_model, tokenizer,
hook_names=[hook])`` -- exactly what SAELens' own ``load_model`` builds -- with the token contexts as an
in-memory ``datasets.Dataset`` (column ``tokens``), so nothing touches the hub. SAELens stops the LM after
the hooked layer (``stop_at_layer`` = 7 of 18). The SAE: ``TopKTrainingSAEConfig(d_in=640, d_sae=4096,
k=32)`` with SAELens' defaults (Adam lr 3e-4 constant, ``rescale_acts_by_decoder_norm=True``, AuxK on
dead latents, grad-norm clip 1.0, no activation normalisation); a step is ``contexts-per-batch x seq_len``
activations (2048), the LM batch is ``contexts-per-batch`` contexts; BOS is excluded with
``exclude_special_tokens=[bos]``; activations pass through SAELens' mixing buffer (20 x 128 tokens, half
kept for mixing). The run takes as many SAE steps as sparsify would on ``--tokens`` (``tokens //
(contexts x seq_len)``); the trained SAE is the one the runner saves (``save_inference_model``), loaded
back with ``SAE.load_from_disk``.

LM-forward time: the wrapped model's ``run_with_cache`` calls (the activation store's only LM calls).
On Gemma's raw layer-6 residual (mean vector norm ~3100, spread ~1000) these defaults cannot learn the
mean in a few dozen Adam steps at 3e-4 (b_dec starts at 0), so FVU stays far above 1 at ~60k tokens;
``--lr`` and ``--normalize`` (``expected_average_only_in``, norm estimated from ``--norm-batches`` LM
batches, which count in the end-to-end time) are there for a tuned variant.

SAE step alone: ``SAETrainer(cfg, sae, data_provider=<batches of --acts-file rows>).fit()``, SAELens'
own trainer fed replayed activations.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sae_common import Timer, emit, evaluate, heldout_acts, load_acts, load_data, log, parser  # noqa: E402


def _runner_config(args, training_tokens: int, exclude: list[int] | bool, output_path: str | None):
    from sae_lens import LanguageModelSAERunnerConfig, LoggingConfig, TopKTrainingSAEConfig

    extra = {"lr": args.lr} if args.lr is not None else {}
    norm = "expected_average_only_in" if args.normalize else "none"
    return LanguageModelSAERunnerConfig(
        sae=TopKTrainingSAEConfig(d_in=640, d_sae=args.width, k=args.k, dtype="float32", device="cpu",
                                  normalize_activations=norm),
        model_name=args.model_dir, model_class_name="AutoModelForCausalLM", hook_name=f"model.layers.{args.layer}",
        dataset_path="", is_dataset_tokenized=True, streaming=False, context_size=args.seq_len,
        training_tokens=training_tokens, train_batch_size_tokens=args.contexts_per_batch * args.seq_len,
        store_batch_size_prompts=args.contexts_per_batch, device="cpu", dtype="float32", seed=args.seed,
        exclude_special_tokens=exclude, logger=LoggingConfig(log_to_wandb=False), checkpoint_path=None,
        output_path=output_path, verbose=False, n_batches_for_norm_estimate=args.norm_batches, **extra,
    )  # fmt: skip


def end_to_end(args, data, proxy) -> tuple[dict, object]:
    from datasets import Dataset
    from sae_lens import SAE, LanguageModelSAETrainingRunner

    steps = args.tokens // args.seq_len // args.contexts_per_batch
    batch = args.contexts_per_batch * args.seq_len
    # the mixing buffer runs the LM ahead of the SAE: give it spare contexts rather than a second epoch
    n_ctx = min(len(data.train), steps * args.contexts_per_batch + 4 * args.contexts_per_batch)
    ds = Dataset.from_dict({"tokens": data.train[:n_ctx].tolist()})
    lm, lm_tokens = Timer(), [0]
    inner = proxy.run_with_cache

    def timed(tokens, *a, **kw):
        lm.start()
        try:
            return inner(tokens, *a, **kw)
        finally:
            lm.stop()
            lm_tokens[0] += tokens.numel()

    proxy.run_with_cache = timed
    exclude = False if args.train_bos else [data.bos]
    with tempfile.TemporaryDirectory() as tmp:
        runner = LanguageModelSAETrainingRunner(_runner_config(args, steps * batch, exclude, tmp),
                                                override_dataset=ds, override_model=proxy)  # fmt: skip
        t = time.perf_counter()
        runner.run()
        wall = time.perf_counter() - t
        proxy.run_with_cache = inner
        sae = SAE.load_from_disk(tmp, device="cpu")
    tokens = steps * batch
    res = {"tokens": tokens, "sae_tokens": steps * batch, "steps": steps, "seconds": round(wall, 2),
           "tokens_per_s": round(tokens / wall, 1), "sae_tokens_per_s": round(steps * batch / wall, 1),
           "lm_tokens": lm_tokens[0], "lm_forward_s": round(lm.total, 2), "lm_forward_fraction": round(lm.total / wall, 3),
           "lm_layers_run": args.layer + 1, "lr": runner.cfg.lr}  # fmt: skip
    return res, sae


def sae_step_only(args) -> dict:
    import torch
    from sae_lens import TopKTrainingSAE
    from sae_lens.training.sae_trainer import SAETrainer

    acts = load_acts(args)
    batch = args.contexts_per_batch * args.seq_len
    cfg = _runner_config(args, len(acts), False, None)
    torch.manual_seed(args.seed)
    sae = TopKTrainingSAE(cfg.sae)
    trainer = SAETrainer(cfg=cfg.to_sae_trainer_config(), sae=sae, data_provider=iter(acts.split(batch)))
    t = time.perf_counter()
    trainer.fit()
    wall = time.perf_counter() - t
    return {"tokens": len(acts), "steps": len(acts) // batch, "seconds": round(wall, 2),
            "tokens_per_s": round(len(acts) / wall, 1), "batch_tokens": batch,
            "how": "sae_lens SAETrainer.fit with data_provider = batches of --acts-file rows"}  # fmt: skip


def main(argv=None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--normalize", action="store_true",
                    help="normalize_activations='expected_average_only_in' (scale to norm sqrt(d_in); not the default)")
    ap.add_argument("--norm-batches", type=int, default=4, help="LM batches for that norm estimate (SAELens: 1000)")
    args = ap.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the one JSON line
        run(args)


def run(args) -> None:
    from importlib.metadata import version

    import torch
    from sae_lens.load_model import HookedProxyLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tok = AutoTokenizer.from_pretrained(args.model_dir)
    data = load_data(args, tok)
    t = time.perf_counter()
    hf = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32).eval()
    load_s = time.perf_counter() - t
    proxy = HookedProxyLM(hf, tok, hook_names=[f"model.layers.{args.layer}"])
    log(f"sae_lens: {type(hf).__name__} fp32 via HookedProxyLM, {args.tokens // args.seq_len} contexts")
    e2e, sae = end_to_end(args, data, proxy)
    log(f"end to end: {e2e}")
    ev = None
    if not args.no_eval:
        x = heldout_acts(hf.model.layers[args.layer], lambda ids: hf(ids), data.heldout)

        def enc_dec(xb):
            feats = sae.encode(xb)
            return feats, sae.decode(feats)

        ev = evaluate(x, enc_dec, args.width)
        log(f"eval: {ev}")
    step = sae_step_only(args) if args.acts_file else None
    if step:
        log(f"sae step: {step}")
    emit(peer="sae_lens", version=version("sae-lens"),
         versions={d: version(d) for d in ("sae-lens", "transformer-lens", "torch", "transformers")},
         config={"layer": args.layer, "hook": f"model.layers.{args.layer}", "width": args.width, "k": args.k,
                 "contexts_per_batch": args.contexts_per_batch, "seq_len": args.seq_len, "threads": args.threads,
                 "train_bos": args.train_bos, "optimizer": "adam (constant lr)",
                 "normalize_activations": "expected_average_only_in" if args.normalize else "none", "tokens_source": data.source},
         model_load_s=round(load_s, 2), end_to_end=e2e, sae_step=step, eval=ev)  # fmt: skip


if __name__ == "__main__":
    main()
