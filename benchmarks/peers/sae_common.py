"""Shared by the SAE-training peer scripts (``sae_saelens.py``, ``sae_sparsify.py``), which run in their
own venvs (``benchmarks/envs/sae``, ``benchmarks/envs/sparsify``): arguments, token contexts, the held-out
evaluation and the JSON line. Imports only torch / safetensors / transformers (present in every peer env).

Inputs shared with mechscope's own trainer, so all train on the same token ids:

* ``--tokens-file``: safetensors, key ``tokens`` int64 ``[n_ctx, seq_len]`` (packed contexts, BOS at
  position 0), optional key ``heldout`` int64 ``[n_ctx', seq_len]``. Training uses the first
  ``--tokens // seq_len`` contexts of ``tokens``; evaluation uses ``heldout`` (or, without it, the last
  ``--eval-contexts`` contexts of ``tokens``, which training then never reaches).
  ``benchmarks/peers/sae_data.py`` (product venv) writes one from mechscope's corpus.
* ``--acts-file``: safetensors, key ``acts`` float32 ``[n_tokens, 640]``: layer-6 resid_post rows replayed
  for the SAE-step-only throughput.

Without ``--tokens-file`` the contexts are packed here from the source text of this interpreter's own
standard library (BOS + seq_len - 1 tokens, EOS between files): runnable, but not mechscope's corpus.

Token counts: ``tokens`` = contexts x seq_len run through the LM (BOS included, mechscope's convention);
``sae_tokens`` = activations the SAE trained on (BOS positions excluded unless ``--train-bos``).
FVU on held-out activations (BOS position 0 excluded) = sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over all
evaluated tokens; dead fraction = latents that never fire on those tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import machine  # noqa: E402


def parser(doc: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default=os.path.expanduser("~/.cache/mechscope/models/gemma-3-270m-q4_k_m"))
    ap.add_argument("--layer", type=int, default=6)
    ap.add_argument("--width", type=int, default=4096)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--contexts-per-batch", type=int, default=16, help="contexts per LM batch = per SAE step")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--tokens", type=int, default=16384, help="LM tokens to train on (BOS included)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens-file", help="safetensors: tokens int64 [n_ctx, seq_len] (+ optional heldout)")
    ap.add_argument("--acts-file", help="safetensors: acts float32 [n, d_model], for the SAE-step-only rate")
    ap.add_argument("--sae-step-tokens", type=int, default=0, help="rows of --acts-file to replay (0: all)")
    ap.add_argument("--eval-contexts", type=int, default=64, help="held-out contexts for FVU / dead fraction")
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--train-bos", action="store_true", help="also train on the BOS position (default: excluded)")
    ap.add_argument("--lr", type=float, default=None, help="override the peer's default learning rate")
    ap.add_argument("--seed", type=int, default=0)
    return ap


class Data:
    """Train and held-out contexts (int64 tensors)."""

    def __init__(self, train, heldout, source: str, bos: int):
        self.train, self.heldout, self.source, self.bos = train, heldout, source, bos


def load_data(args, tokenizer) -> Data:
    import torch

    bos = tokenizer.bos_token_id
    if args.tokens_file:
        from safetensors.torch import load_file

        f = load_file(args.tokens_file)
        toks = f["tokens"].long()
        if toks.shape[1] < args.seq_len:
            raise SystemExit(f"{args.tokens_file}: contexts of {toks.shape[1]} tokens, need {args.seq_len}")
        toks = toks[:, : args.seq_len]
        held = f["heldout"].long()[:, : args.seq_len] if "heldout" in f else None
        source = os.path.abspath(args.tokens_file)
    else:
        n = args.tokens // args.seq_len + args.eval_contexts + 64
        toks, held, source = _stdlib_contexts(tokenizer, args.seq_len, n), None, "stdlib-text"
    if held is None:
        held, toks = toks[-args.eval_contexts :], toks[: -args.eval_contexts]
    n_ctx = args.tokens // args.seq_len
    if n_ctx < 1 or n_ctx > len(toks):
        raise SystemExit(f"--tokens {args.tokens} needs {n_ctx} contexts; the training part holds {len(toks)}")
    return Data(toks, held[: args.eval_contexts], source, bos)


def _stdlib_contexts(tokenizer, seq_len: int, n_ctx: int):
    """BOS + (seq_len - 1) tokens of the standard library's source text, EOS between files."""
    import sysconfig

    import torch

    root = Path(sysconfig.get_paths()["stdlib"])
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    rows, buf = [], []
    for p in sorted(root.glob("*.py")):
        ids = tokenizer(p.read_text(errors="replace"), add_special_tokens=False)["input_ids"]
        buf += [i for i in ids if i != bos] + [eos]
        while len(buf) >= seq_len - 1 and len(rows) < n_ctx:
            rows.append([bos] + buf[: seq_len - 1])
            buf = buf[seq_len - 1 :]
        if len(rows) >= n_ctx:
            break
    return torch.tensor(rows, dtype=torch.long)


def load_acts(args):
    """The replay rows of --acts-file (float32), cut to whole SAE batches."""
    from safetensors.torch import load_file

    acts = load_file(args.acts_file)["acts"].float()
    n = args.sae_step_tokens or len(acts)
    batch = args.contexts_per_batch * args.seq_len
    n = (min(n, len(acts)) // batch) * batch
    if n == 0:
        raise SystemExit(f"{args.acts_file}: fewer than one batch of {batch} rows")
    return acts[:n].contiguous()


def heldout_acts(layer_module, run_model, contexts, batch: int = 16):
    """Activations of ``layer_module``'s output on the held-out contexts, BOS position 0 dropped:
    ``run_model(ids)`` must run a forward that reaches the layer (it is stopped right after it)."""
    import torch

    out = []

    class _Stop(Exception):
        pass

    def hook(_m, _i, o):
        h = o[0] if isinstance(o, tuple) else o
        out.append(h[:, 1:].detach().float().reshape(-1, h.shape[-1]))
        raise _Stop

    h = layer_module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            for i in range(0, len(contexts), batch):
                try:
                    run_model(contexts[i : i + batch])
                except _Stop:
                    pass
    finally:
        h.remove()
    return torch.cat(out)


def evaluate(x, encode_decode, width: int, chunk: int = 2048) -> dict:
    """FVU, dead fraction and mean L0 of ``encode_decode(x) -> (feats [n, width] or (vals, idx), recon)``."""
    import torch

    sse, fired, l0 = 0.0, torch.zeros(width, dtype=torch.bool), 0.0
    mean = x.double().mean(0)
    sst = float((x.double() - mean).pow(2).sum())
    with torch.no_grad():
        for i in range(0, len(x), chunk):
            xb = x[i : i + chunk]
            feats, recon = encode_decode(xb)
            sse += float((xb.double() - recon.double()).pow(2).sum())
            if isinstance(feats, tuple):  # (values, indices)
                vals, idx = feats
                active = vals > 0
                fired[idx[active]] = True
                l0 += float(active.sum())
            else:
                active = feats != 0
                fired |= active.any(0)
                l0 += float(active.sum())
    return {"heldout_tokens": len(x), "fvu": round(sse / sst, 5), "dead_fraction": round(1 - float(fired.float().mean()), 5),
            "l0": round(l0 / len(x), 2), "excludes": "BOS position 0 of every context"}  # fmt: skip


class Timer:
    """Accumulates seconds between start() and stop() calls."""

    def __init__(self):
        self.total, self._t = 0.0, None

    def start(self):
        self._t = time.perf_counter()

    def stop(self):
        if self._t is not None:
            self.total += time.perf_counter() - self._t
            self._t = None


def emit(**fields) -> None:
    """The single JSON line on stdout."""
    line = {"date": time.strftime("%Y-%m-%d"), **fields, "machine": machine()}
    sys.__stdout__.write(json.dumps(line) + "\n")
    sys.__stdout__.flush()


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)
