"""EleutherAI sparsify 1.3.3's on-disk SAE layout, written and read by sparsify itself (runs in
``benchmarks/envs/sparsify``), for mechscope's format tests.

    # a random TopK SAE saved with sparsify's own SparseCoder.save_to_disk (cfg.json + sae.safetensors)
    benchmarks/envs/sparsify/bin/python benchmarks/peers/sae_formats_sparsify.py --save DIR --d-in 64 --width 256 --k 8 --seed 0
    # load DIR with Sae.load_from_disk (or, with --hookpoint H, Sae.load_many(DIR, local=True, layers=[H])
    # for a trainer checkpoint / hub-style folder DIR/H/...) and write encode / decode of the input rows
    benchmarks/envs/sparsify/bin/python benchmarks/peers/sae_formats_sparsify.py --load DIR --input acts.safetensors --out out.safetensors

Weights are random (encoder bias and b_dec too; decoder rows unit norm, as sparsify keeps them).
``--input``: a safetensors file whose ``acts`` key (or only tensor) is float32 ``[n, d_in]``; ``--out``
gets ``feats`` float32 ``[n, num_latents]`` (``sae.encode``'s top-k values scattered at their indices)
and ``recon`` float32 ``[n, d_in]`` (``sae.decode(top_acts, top_indices)``). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys


def save(args) -> dict:
    import torch
    from sparsify import Sae, SaeConfig

    torch.manual_seed(args.seed)
    sae = Sae(args.d_in, SaeConfig(num_latents=args.width, k=args.k, activation=args.arch))
    with torch.no_grad():
        sae.encoder.bias.copy_(0.1 * torch.randn_like(sae.encoder.bias))
        sae.b_dec.copy_(0.1 * torch.randn_like(sae.b_dec))
    sae.save_to_disk(args.save)
    return {"saved": args.save, "files": ["cfg.json", "sae.safetensors"], "arch": args.arch}


def load(args) -> dict:
    import torch
    from safetensors.torch import load_file, save_file
    from sparsify import Sae

    sae = Sae.load_many(args.load, local=True, layers=[args.hookpoint])[args.hookpoint] if args.hookpoint \
        else Sae.load_from_disk(args.load)  # fmt: skip
    f = load_file(args.input)
    x = (f["acts"] if "acts" in f else next(iter(f.values()))).float()
    with torch.no_grad():
        top = sae.encode(x)
        recon = sae.decode(top.top_acts, top.top_indices)
        feats = torch.zeros(len(x), sae.num_latents).scatter_(1, top.top_indices, top.top_acts)
    save_file({"feats": feats.contiguous(), "recon": recon.contiguous()}, args.out)
    return {"loaded": args.load, "n": len(x), "d_in": sae.d_in, "num_latents": sae.num_latents,
            "k": sae.cfg.k, "activation": sae.cfg.activation, "out": args.out}  # fmt: skip


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--save", metavar="DIR")
    mode.add_argument("--load", metavar="DIR")
    ap.add_argument("--input")
    ap.add_argument("--out")
    ap.add_argument("--hookpoint", help="with --load: DIR holds one sub-folder per hookpoint (trainer checkpoint)")
    ap.add_argument("--arch", choices=("topk", "groupmax"), default="topk")
    ap.add_argument("--d-in", type=int, default=64)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.load and not (args.input and args.out):
        ap.error("--load needs --input and --out")
    with contextlib.redirect_stdout(sys.stderr):  # sparsify prints a Triton notice on import
        res = save(args) if args.save else load(args)
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
