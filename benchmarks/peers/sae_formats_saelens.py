"""SAELens 6.x's on-disk SAE layout, written and read by SAELens itself (runs in ``benchmarks/envs/sae``),
for mechscope's format tests.

    # a random SAE saved with SAELens' own SAE.save_model (cfg.json + sae_weights.safetensors)
    benchmarks/envs/sae/bin/python benchmarks/peers/sae_formats_saelens.py --save DIR --d-in 64 --width 256 --k 8 --seed 0 --arch topk
    # load DIR with SAE.load_from_disk and write encode / decode of the input rows
    benchmarks/envs/sae/bin/python benchmarks/peers/sae_formats_saelens.py --load DIR --input acts.safetensors --out out.safetensors

``--arch``: ``topk`` (default), ``standard`` (ReLU) or ``jumprelu``. Weights are random (biases and the
JumpReLU threshold too, so every tensor matters); ``--rescale-acts-by-decoder-norm`` sets that TopK flag
and leaves decoder rows at random norms. ``--input``: a safetensors file whose ``acts`` key (or only
tensor) is float32 ``[n, d_in]``; ``--out`` gets ``feats`` float32 ``[n, d_sae]`` (``sae.encode``, dense) and
``recon`` float32 ``[n, d_in]`` (``sae.decode(feats)``). Prints one JSON line (what it did).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys


def save(args) -> dict:
    import torch
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig, StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig

    torch.manual_seed(args.seed)
    meta = {"model_name": args.model_name, "hook_name": args.hook_name}
    if args.arch == "topk":
        cfg = TopKSAEConfig(d_in=args.d_in, d_sae=args.width, k=args.k,
                            rescale_acts_by_decoder_norm=args.rescale_acts_by_decoder_norm)  # fmt: skip
        sae = TopKSAE(cfg)
    elif args.arch == "standard":
        sae = StandardSAE(StandardSAEConfig(d_in=args.d_in, d_sae=args.width))
    else:
        sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=args.d_in, d_sae=args.width))
    for k, v in meta.items():
        setattr(sae.cfg.metadata, k, v)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn_like(sae.W_enc) / args.d_in**0.5)
        w = torch.randn_like(sae.W_dec)
        if not (args.arch == "topk" and args.rescale_acts_by_decoder_norm):
            w = w / w.norm(dim=1, keepdim=True)
        sae.W_dec.copy_(w)
        sae.b_enc.copy_(0.1 * torch.randn_like(sae.b_enc))
        sae.b_dec.copy_(0.1 * torch.randn_like(sae.b_dec))
        if args.arch == "jumprelu":
            sae.threshold.copy_(0.2 * torch.rand_like(sae.threshold))
    weights, cfg_path = sae.save_model(args.save)
    return {"saved": args.save, "files": [str(weights), str(cfg_path)], "arch": args.arch}


def load(args) -> dict:
    import torch
    from safetensors.torch import load_file, save_file
    from sae_lens import SAE

    sae = SAE.load_from_disk(args.load, device="cpu")
    f = load_file(args.input)
    x = (f["acts"] if "acts" in f else next(iter(f.values()))).float()
    with torch.no_grad():
        feats = sae.encode(x)
        recon = sae.decode(feats)
    save_file({"feats": feats.contiguous(), "recon": recon.contiguous()}, args.out)
    return {"loaded": args.load, "class": type(sae).__name__, "architecture": sae.cfg.architecture(),
            "n": len(x), "d_in": sae.cfg.d_in, "d_sae": sae.cfg.d_sae, "out": args.out}  # fmt: skip


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--save", metavar="DIR")
    mode.add_argument("--load", metavar="DIR")
    ap.add_argument("--input")
    ap.add_argument("--out")
    ap.add_argument("--arch", choices=("topk", "standard", "jumprelu"), default="topk")
    ap.add_argument("--d-in", type=int, default=64)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rescale-acts-by-decoder-norm", action="store_true")
    ap.add_argument("--model-name", default="gemma-3-270m")
    ap.add_argument("--hook-name", default="blocks.6.hook_resid_post")
    args = ap.parse_args(argv)
    if args.load and not (args.input and args.out):
        ap.error("--load needs --input and --out")
    with contextlib.redirect_stdout(sys.stderr):
        res = save(args) if args.save else load(args)
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
