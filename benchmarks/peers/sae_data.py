"""Inputs for the SAE-training peers, from mechscope's corpus (runs in the product venv, ``.venv``).

    python benchmarks/peers/sae_data.py --out /tmp/sae_bench --tokens 65536 --acts-tokens 32768

writes ``OUT/tokens.safetensors`` (``tokens`` int64 ``[n_ctx, seq_len]``: the first contexts of the
corpus's train split; ``heldout`` int64 ``[eval_ctx, seq_len]``: the first contexts of its held-out split;
BOS at position 0 of every context) and, with ``--acts-tokens``, ``OUT/acts.safetensors`` (``acts`` float32
``[n, d_model]``: the layer's output, ``model.model.layers[L]`` = ``blocks.L.hook_resid_post``, of the first
training contexts with position 0 dropped), computed with a plain fp32 Hugging Face forward.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--model-dir", default=os.path.expanduser("~/.cache/mechscope/models/gemma-3-270m-q4_k_m"))
    ap.add_argument("--tokens", type=int, default=65536, help="training tokens (BOS included)")
    ap.add_argument("--eval-contexts", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--acts-tokens", type=int, default=0, help="rows of acts.safetensors (0: none)")
    ap.add_argument("--layer", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    from mechscope.data.corpus import CorpusConfig, corpus_contexts

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(args.model_dir)
    cfg = CorpusConfig(seq_len=args.seq_len)
    train = corpus_contexts(tok, cfg, "train", max_tokens=args.tokens + 64 * args.seq_len, progress=False)
    held = corpus_contexts(tok, cfg, "heldout", max_tokens=args.eval_contexts * args.seq_len, progress=False)
    save_file({"tokens": train.contiguous(), "heldout": held.contiguous()}, str(out / "tokens.safetensors"))
    print(f"tokens {tuple(train.shape)} heldout {tuple(held.shape)} -> {out / 'tokens.safetensors'}", file=sys.stderr)
    if args.acts_tokens:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32).eval()
        rows, have = [], 0

        class Stop(Exception):
            pass

        def hook(_m, _i, o):
            h = o[0] if isinstance(o, tuple) else o
            rows.append(h[:, 1:].reshape(-1, h.shape[-1]).float().clone())
            raise Stop

        handle = model.model.layers[args.layer].register_forward_hook(hook)
        with torch.no_grad():
            for i in range(0, len(train), 16):
                if have >= args.acts_tokens:
                    break
                try:
                    model(train[i : i + 16])
                except Stop:
                    have += rows[-1].shape[0]
        handle.remove()
        acts = torch.cat(rows)[: args.acts_tokens].contiguous()
        save_file({"acts": acts}, str(out / "acts.safetensors"))
        print(f"acts {tuple(acts.shape)} -> {out / 'acts.safetensors'}", file=sys.stderr)


if __name__ == "__main__":
    main()
