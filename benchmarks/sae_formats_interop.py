"""SAE layouts against the peers' own code: SAELens 6.x and EleutherAI sparsify 1.3 save and load, mechscope
reads and writes, and the outputs must agree.

Three directions per peer and architecture, all on the same random input rows ``x`` ``[n, d_in]``:

- ``peer->mechscope``: the peer saves a random SAE with its own save function
  (``peers/sae_formats_<peer>.py --save``) and encodes/decodes ``x`` with its own loader (``--load``);
  ``mechscope.sae.load`` reads the same folder and does the same;
- ``mechscope->peer``: mechscope writes a random SAE of each architecture the layout can hold
  (``mechscope.sae.formats.save_as``), the peer's loader reads it;
- ``roundtrip``: the peer's folder converted to mechscope's layout and back (``formats.convert`` twice),
  then read by the peer's loader again, against the peer's first output.

For each: max |feats difference| (dense latent activations ``[n, d_sae]``), max |recon difference|
(``decode(feats)``, ``[n, d_out]``, without a skip path, as the peers' ``decode``), and how many
(row, latent) active sets differ. Prints one JSON line.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/sae_formats_interop.py          # ~4 min on 2 shared cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/sae_formats_interop.py --keep /tmp/interop   # keep the folders
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

from _common import PEERS, emit, env_python, run_json

SAELENS_ARCHS = ("topk", "topk-rescale", "standard", "jumprelu")
MECHSCOPE_TO = {
    "saelens": ("relu", "topk", "jumprelu", "batchtopk", "relu-transcoder", "jumprelu-transcoder"),
    "sparsify": ("topk", "topk-transcoder"),
}


def peer_cmd(peer: str) -> list:
    env = {"saelens": "sae", "sparsify": "sparsify"}[peer]
    return [env_python(env), PEERS / f"sae_formats_{peer}.py"]


def peer_save(peer: str, arch: str, out: Path, a) -> None:
    cmd = peer_cmd(peer) + ["--save", out, "--d-in", a.d_in, "--width", a.width, "--k", a.k, "--seed", a.seed]
    if peer == "saelens":
        cmd += ["--arch", arch.replace("-rescale", "")] + (["--rescale-acts-by-decoder-norm"] if "rescale" in arch else [])
    run_json(cmd)


def peer_run(peer: str, folder: Path, x_file: Path, out: Path) -> dict:
    from safetensors.torch import load_file

    run_json(peer_cmd(peer) + ["--load", folder, "--input", x_file, "--out", out])
    return load_file(str(out))


def ours(folder: Path, x) -> dict:
    import torch

    from mechscope.sae import load

    sae = load(folder)
    with torch.no_grad():
        feats = sae.encode(x)
        recon = feats @ sae.W_dec + sae.b_dec  # the peers' decode: no skip path
    return {"feats": feats, "recon": recon}


def diff(peer: str, direction: str, arch: str, a: dict, b: dict) -> dict:
    fd = (a["feats"] - b["feats"]).abs().max().item()
    rd = (a["recon"] - b["recon"]).abs().max().item()
    mism = int(((a["feats"] > 0) != (b["feats"] > 0)).sum())
    scale = max(b["feats"].abs().max().item(), 1e-30)
    return {"peer": peer, "direction": direction, "arch": arch, "feats_max_abs_diff": fd, "recon_max_abs_diff": rd,
            "active_mismatches": mism, "feats_max_abs": round(scale, 4)}  # fmt: skip


def random_sae(arch: str, a, seed: int):
    import torch

    from mechscope.sae.artifact import build
    from mechscope.sae.config import SAEConfig

    kind, transcoder = arch.replace("-transcoder", ""), arch.endswith("-transcoder")
    d_out = a.d_in if kind == "topk" or not transcoder else a.d_in * 3 // 4  # sparsify: outputs as wide as inputs
    cfg = SAEConfig(arch=kind, d_in=a.d_in, width=a.width, k=a.k, transcoder=transcoder,
                    d_out=d_out if d_out != a.d_in else None)  # fmt: skip
    info = {"model": "gemma-3-270m", "fingerprint": "f" * 16, "hook": "blocks.6.ln2.hook_normalized" if transcoder
            else "blocks.6.hook_resid_post", "target": "blocks.6.hook_mlp_out" if transcoder else "blocks.6.hook_resid_post"}  # fmt: skip
    sae = build(cfg, info)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(cfg.d_in, cfg.width, generator=g) / cfg.d_in**0.5)
        w = torch.randn(cfg.width, cfg.out_dim, generator=g)
        sae.W_dec.copy_(w / w.norm(dim=1, keepdim=True))
        sae.b_enc.copy_(0.1 * torch.randn(cfg.width, generator=g))
        sae.b_dec.copy_(0.1 * torch.randn(cfg.out_dim, generator=g))
        if kind == "jumprelu":
            sae.log_threshold.copy_((0.2 * torch.rand(cfg.width, generator=g) + 0.01).log())
        if kind == "batchtopk":
            sae.threshold.copy_(0.2 * torch.rand(cfg.width, generator=g))
    return sae.eval()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=512, help="input rows")
    ap.add_argument("--d-in", type=int, default=64)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, help="write the folders here (default: a temporary folder)")
    a = ap.parse_args(argv)

    import torch
    from safetensors.torch import save_file

    from mechscope.sae import formats

    tmp = tempfile.TemporaryDirectory() if a.keep is None else None
    root = Path(tmp.name) if tmp else a.keep
    root.mkdir(parents=True, exist_ok=True)
    x = torch.randn(a.n, a.d_in, generator=torch.Generator().manual_seed(a.seed + 1))
    x_file = root / "x.safetensors"
    save_file({"acts": x}, str(x_file))
    rows = []
    peer_archs = {"saelens": SAELENS_ARCHS, "sparsify": ("topk",)}
    for peer, archs in peer_archs.items():
        for arch in archs:
            src = root / f"{peer}-{arch}"
            peer_save(peer, arch, src, a)
            first = peer_run(peer, src, x_file, root / f"{peer}-{arch}.out.safetensors")
            rows.append(diff(peer, "peer->mechscope", arch, ours(src, x), first))
            formats.convert(src, root / f"{peer}-{arch}-mechscope", "mechscope")
            formats.convert(root / f"{peer}-{arch}-mechscope", root / f"{peer}-{arch}-back", peer)
            back = peer_run(peer, root / f"{peer}-{arch}-back", x_file, root / f"{peer}-{arch}-back.out.safetensors")
            rows.append(diff(peer, "roundtrip", arch, back, first))
        for i, arch in enumerate(MECHSCOPE_TO[peer]):
            sae = random_sae(arch, a, a.seed + 10 + i)
            folder = root / f"mechscope-{arch}-as-{peer}"
            formats.save_as(sae, folder, peer)
            theirs = peer_run(peer, folder, x_file, root / f"mechscope-{arch}-as-{peer}.out.safetensors")
            with torch.no_grad():
                mine = {"feats": sae.encode(x)}
                mine["recon"] = mine["feats"] @ sae.W_dec + sae.b_dec
            rows.append(diff(peer, "mechscope->peer", arch, theirs, mine))
    versions = run_json([env_python("sae"), "-c", "import json, importlib.metadata as m; "
                         "print(json.dumps({'sae-lens': m.version('sae-lens')}))"])  # fmt: skip
    versions |= run_json([env_python("sparsify"), "-c", "import json, importlib.metadata as m; "
                          "print(json.dumps({'eai-sparsify': m.version('eai-sparsify')}))"])  # fmt: skip
    worst = {k: max(r[k] for r in rows) for k in ("feats_max_abs_diff", "recon_max_abs_diff", "active_mismatches")}
    exact = sum(1 for r in rows if r["feats_max_abs_diff"] == 0 and r["recon_max_abs_diff"] == 0)
    emit("sae_formats_interop", n=a.n, d_in=a.d_in, width=a.width, k=a.k, seed=a.seed, peers=versions,
         worst=worst, bit_identical=f"{exact}/{len(rows)}", rows=rows)  # fmt: skip
    if tmp:
        tmp.cleanup()
    if not all(math.isfinite(v) for v in worst.values()) or worst["active_mismatches"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
