"""``mechscope check``: hooked numerics against plain Hugging Face, and padded batches against one-by-one."""

from __future__ import annotations

from mechscope.cli.common import add_json_arg, add_model_arg, add_parser, emit_json, load_model

PROMPTS = (
    "The capital of France is",
    "The reliability of Wikipedia is very",
    "In 1969, Neil Armstrong became the first person to walk on the",
    "Hi",
)
TOLERANCE = 1e-4


def register(subparsers) -> None:
    p = add_parser(subparsers, "check",
                   "Compare the hooked model (every hook cached) with a plain HF forward, and padded batches "
                   f"(left and right) with one-by-one runs. ok when both max |Δlogit| ≤ {TOLERANCE:g}.",
                   "  mechscope check\n  mechscope check --json\n  mechscope check --model ./my-hf-dir --json")  # fmt: skip
    add_model_arg(p)
    add_json_arg(p)
    p.add_argument("--full", action="store_true",
                   help="first hash every cached model file in full (not only sizes and times) and rebuild the cache "
                        "if one differs")  # fmt: skip
    p.set_defaults(func=run)


def _worst(a: float, b: float) -> float:
    """max() that keeps NaN (Python's max(0.0, nan) is 0.0, which once reported a NaN model as exact)."""
    return b if b != b or b > a else a


def check(model, prompts=PROMPTS) -> dict:
    """Max |Δlogit| of the hooked vs the plain forward and of padded vs one-by-one runs; ``ok`` needs both
    within tolerance and every logit finite (a NaN anywhere is a failed check, never a silent pass)."""
    import torch

    hf_diff, finite = 0.0, True
    with torch.no_grad():
        for prompt in prompts:
            batch = model.to_tokens(prompt).to(model.device)
            plain = model.hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
            hooked, cache = model.run_with_cache(prompt)  # every hook, patterns included
            finite = finite and bool(torch.isfinite(plain).all()) and bool(torch.isfinite(hooked).all())
            hf_diff = _worst(hf_diff, (hooked - plain).abs().max().item())
        alone = [model(p)[0] for p in prompts]
        batch_diff = 0.0
        for side in ("left", "right"):
            batch = model.to_tokens(list(prompts), padding_side=side)
            logits = model(list(prompts), padding_side=side)
            for row, ref in enumerate(alone):
                real = batch.attention_mask[row].bool().to(logits.device)
                batch_diff = _worst(batch_diff, (logits[row][real] - ref).abs().max().item())
    return {"hf_max_abs_diff": hf_diff, "batch_max_abs_diff": batch_diff, "finite": finite,
            "ok": finite and hf_diff <= TOLERANCE and batch_diff <= TOLERANCE}  # fmt: skip


def run(args) -> int:
    if args.full:
        from mechscope.model.loading import resolve

        resolve(args.model, full_check=True)  # a cache whose bytes changed is rebuilt before the load
    model = load_model(args)
    result = check(model)
    if args.json:
        emit_json(result)
    else:
        print(f"model                {model.name} ({model.cfg.architecture}, {model.device})")
        print(f"hooked vs plain HF   max |Δlogit| = {result['hf_max_abs_diff']:.3g}  (every hook cached)")
        print(f"padded vs one-by-one max |Δlogit| = {result['batch_max_abs_diff']:.3g}  (left and right padding)")
        if not result["finite"]:
            print("the model produced NaN or infinite logits: its weights are damaged; "
                  f"`mechscope check --full --model {args.model}` rebuilds a converted cache")
        print(f"{'ok' if result['ok'] else 'MISMATCH'} (tolerance {TOLERANCE:g})")
    return 0 if result["ok"] else 1
