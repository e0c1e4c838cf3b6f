"""SAE layouts of other tools: files written exactly as SAELens 6, sparsify 1.3 and Gemma Scope (1 and 2)
write them are read into SAEs whose outputs equal each layout's own math (written out here, separately);
what mechscope writes has the peers' keys, shapes and config fields and reproduces mechscope's outputs
under the peers' math; round trips keep weights, architecture and the model fingerprint (so another
model is still refused); what a layout cannot express is refused in one line; the CLI converts.

(The same checks against the real peer packages: benchmarks/sae_formats_interop.py.)
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from mechscope.errors import ArtifactError, ConfigError, OutputPathError
from mechscope.sae import formats
from mechscope.sae.artifact import build, detect_format, load, save, weights
from mechscope.sae.config import SAEConfig
from tests.clirun import last_line, run_cli
from tests.tiny import tiny_model

D, W, K, N = 16, 40, 4, 24
HOOK = "blocks.1.hook_resid_post"


def g(seed):
    return torch.Generator().manual_seed(seed)


def x_rows(d=D, seed=99):
    return torch.randn(N, d, generator=g(seed))


def unit_rows(n, d, gen):
    w = torch.randn(n, d, generator=gen)
    return w / w.norm(dim=1, keepdim=True)


# ------------------------------------------------------------------------------ the peers' math, written out
def saelens_math(cfg: dict, t: dict, x):
    arch = cfg["architecture"]
    s = x - t["b_dec"] if cfg.get("apply_b_dec_to_input", True) and "transcoder" not in arch else x
    pre = s @ t["W_enc"] + t["b_enc"]
    rescale = arch == "topk" and cfg.get("rescale_acts_by_decoder_norm", False)
    norms = t["W_dec"].norm(dim=-1)
    if arch == "topk":
        if rescale:
            pre = pre * norms
        v, i = pre.topk(cfg["k"], dim=-1)
        f = torch.zeros_like(pre).scatter(-1, i, v.relu())
    elif arch.startswith("jumprelu"):
        thr = t["threshold"] if "threshold" in t else t["log_threshold"].exp()
        f = pre.relu() * (pre > thr)
    else:
        f = pre.relu()
    recon = (f / norms if rescale else f) @ t["W_dec"] + t["b_dec"]
    if "W_skip" in t:
        recon = recon + x @ t["W_skip"].T
    return f, recon


def sparsify_math(cfg: dict, t: dict, x):
    s = x if cfg.get("transcode") else x - t["b_dec"]
    pre = (s @ t["encoder.weight"].T + t["encoder.bias"]).relu()
    v, i = pre.topk(cfg["k"], dim=-1, sorted=False)
    f = torch.zeros_like(pre).scatter(-1, i, v)
    recon = (v[..., None] * t["W_dec"][i]).sum(-2) + t["b_dec"]
    if "W_skip" in t:
        recon = recon + x @ t["W_skip"].T
    return f, recon


def gemmascope_math(t: dict, x):
    pre = x @ t["W_enc"] + t["b_enc"]
    f = pre.relu() * (pre > t["threshold"])
    recon = f @ t["W_dec"] + t["b_dec"]
    if "W_skip" in t:
        recon = recon + x @ t["W_skip"]
    return f, recon


def check_same(sae, f_ref, r_ref, x, atol=1e-5):
    with torch.no_grad():
        f = sae.encode(x)
        r = sae(x)
    assert torch.equal(f > 0, f_ref > 0)
    torch.testing.assert_close(f, f_ref, atol=atol, rtol=1e-5)
    torch.testing.assert_close(r, r_ref, atol=atol, rtol=1e-5)


# -------------------------------------------------------------------------------------- writing peers' files
SAELENS_META = {"sae_lens_version": "6.54.12", "sae_lens_training_version": "6.54.12", "model_name": "gemma-3-270m",
                "hook_name": HOOK}  # fmt: skip


def write_saelens(folder, arch, *, d_out=D, seed=0, k=K, extra_cfg=None, log_threshold=False, meta=None):
    """A folder as SAELens' SAE.save_model writes it (random weights, every tensor nonzero)."""
    gen = g(seed)
    t = {"W_enc": torch.randn(D, W, generator=gen) / D**0.5, "b_enc": 0.3 * torch.randn(W, generator=gen),
         "W_dec": unit_rows(W, d_out, gen) * (1 + torch.rand(W, 1, generator=gen)), "b_dec": 0.2 * torch.randn(d_out, generator=gen)}  # fmt: skip
    if arch.startswith("jumprelu"):
        thr = 0.05 + 0.3 * torch.rand(W, generator=gen)
        t["log_threshold" if log_threshold else "threshold"] = thr.log() if log_threshold else thr
    if "skip" in arch:
        t["W_skip"] = 0.3 * torch.randn(d_out, D, generator=gen)
    cfg = {"d_in": D, "d_sae": W, "dtype": "float32", "device": "cpu", "apply_b_dec_to_input": "transcoder" not in arch,
           "normalize_activations": "none", "reshape_activations": "none", "metadata": {**SAELENS_META, **(meta or {})}}  # fmt: skip
    if arch == "topk":
        cfg |= {"k": k, "rescale_acts_by_decoder_norm": False}
    if "transcoder" in arch:
        cfg["d_out"] = d_out
    cfg["architecture"] = arch
    cfg |= extra_cfg or {}
    folder.mkdir(parents=True)
    save_file(t, str(folder / "sae_weights.safetensors"))
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return cfg, t


def write_sparsify(folder, *, transcode=False, skip=False, seed=0, k=K):
    gen = g(seed)
    t = {"encoder.weight": torch.randn(W, D, generator=gen) / D**0.5, "encoder.bias": 0.3 * torch.randn(W, generator=gen),
         "W_dec": unit_rows(W, D, gen), "b_dec": 0.2 * torch.randn(D, generator=gen)}  # fmt: skip
    if skip:
        t["W_skip"] = 0.3 * torch.randn(D, D, generator=gen)
    cfg = {"activation": "topk", "expansion_factor": 32, "normalize_decoder": True, "num_latents": W, "k": k,
           "multi_topk": False, "skip_connection": skip, "transcode": transcode, "d_in": D}  # fmt: skip
    folder.mkdir(parents=True)
    save_file(t, str(folder / "sae.safetensors"))
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return cfg, t


def gemmascope_tensors(seed=0, d_in=D, skip=False):
    gen, d_out = g(seed), d_in
    t = {"W_enc": torch.randn(d_in, W, generator=gen) / d_in**0.5, "W_dec": unit_rows(W, d_out, gen),
         "b_enc": 0.3 * torch.randn(W, generator=gen), "b_dec": 0.5 * torch.randn(d_out, generator=gen),
         "threshold": 0.05 + 0.3 * torch.rand(W, generator=gen)}  # fmt: skip
    if skip:
        t["W_skip"] = 0.3 * torch.randn(d_in, d_out, generator=gen)
    return t


def mechscope_sae(arch, *, transcoder=False, skip=False, d_out=None, seed=0, info=None):
    cfg = SAEConfig(arch=arch, d_in=D, width=W, k=K, transcoder=transcoder, skip=skip, d_out=d_out)
    sae = build(cfg, info or {"model": "tiny", "fingerprint": "abc123", "hook": HOOK,
                              "target": "blocks.1.hook_mlp_out" if transcoder else HOOK})  # fmt: skip
    gen = g(seed)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(D, W, generator=gen) / D**0.5)
        sae.W_dec.copy_(unit_rows(W, cfg.out_dim, gen) * (1 + torch.rand(W, 1, generator=gen)))
        sae.b_enc.copy_(0.3 * torch.randn(W, generator=gen))
        sae.b_dec.copy_(0.2 * torch.randn(cfg.out_dim, generator=gen))
        if skip:
            sae.W_skip.copy_(0.3 * torch.randn(D, cfg.out_dim, generator=gen))
        if arch == "jumprelu":
            sae.log_threshold.copy_((0.05 + 0.3 * torch.rand(W, generator=gen)).log())
        if arch == "batchtopk":
            sae.threshold.copy_(0.05 + 0.3 * torch.rand(W, generator=gen))
    return sae.eval()


# ----------------------------------------------------------------------------------------------- SAELens
@pytest.mark.parametrize("arch, extra", [("topk", {}), ("topk", {"rescale_acts_by_decoder_norm": True}),
                                         ("standard", {}), ("jumprelu", {}), ("jumprelu", {"log": True}),
                                         ("jumprelu", {"apply_b_dec_to_input": False})])  # fmt: skip
def test_saelens_read_equals_its_math(tmp_path, arch, extra):
    log = extra.pop("log", False)
    cfg, t = write_saelens(tmp_path / "sl", arch, extra_cfg=extra, log_threshold=log)
    assert detect_format(tmp_path / "sl") == "saelens"
    sae = load(tmp_path / "sl")
    x = x_rows()
    check_same(sae, *saelens_math(cfg, t, x), x)
    want_arch = {"standard": "relu"}.get(arch, arch)
    assert sae.cfg.arch == want_arch and sae.cfg.width == W and (sae.cfg.k == K or arch != "topk")
    assert sae.hook == HOOK and sae.target == HOOK and sae.info["model"] == "gemma-3-270m"
    assert "fingerprint" not in sae.info  # SAELens files record none


@pytest.mark.parametrize("arch", ["transcoder", "skip_transcoder", "jumprelu_transcoder", "jumprelu_skip_transcoder"])
def test_saelens_transcoders_read(tmp_path, arch):
    cfg, t = write_saelens(tmp_path / "tc", arch, d_out=12, meta={"hook_name": "blocks.1.ln2.hook_normalized",
                                                                   "hook_name_out": "blocks.1.hook_mlp_out"})  # fmt: skip
    sae = load(tmp_path / "tc")
    x = x_rows()
    check_same(sae, *saelens_math(cfg, t, x), x)
    assert sae.cfg.transcoder and sae.cfg.out_dim == 12 and sae.cfg.skip == ("skip" in arch)
    assert (sae.hook, sae.target) == ("blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out")


@pytest.mark.parametrize("arch, transcoder, skip, want", [
    ("relu", False, False, "standard"), ("topk", False, False, "topk"), ("jumprelu", False, False, "jumprelu"),
    ("batchtopk", False, False, "jumprelu"), ("relu", True, True, "skip_transcoder"),
    ("jumprelu", True, False, "jumprelu_transcoder"), ("batchtopk", True, True, "jumprelu_skip_transcoder")])  # fmt: skip
def test_saelens_write_is_its_layout_and_round_trips(tmp_path, arch, transcoder, skip, want):
    sae = mechscope_sae(arch, transcoder=transcoder, skip=skip, d_out=12 if transcoder else None)
    out = formats.save_as(sae, tmp_path / "sl", "saelens")
    assert sorted(p.name for p in out.iterdir()) == ["cfg.json", "sae_weights.safetensors"]
    cfg = json.loads((out / "cfg.json").read_text())
    with safe_open(str(out / "sae_weights.safetensors"), "pt") as f:
        assert f.metadata() is None
    t = load_file(str(out / "sae_weights.safetensors"))
    keys = {"W_enc", "b_enc", "W_dec", "b_dec"} | ({"threshold"} if want.startswith("jumprelu") else set()) \
        | ({"W_skip"} if skip else set())  # fmt: skip
    assert set(t) == keys and all(v.dtype == torch.float32 for v in t.values())
    assert t["W_enc"].shape == (D, W) and t["W_dec"].shape == (W, sae.cfg.out_dim)
    if skip:
        assert t["W_skip"].shape == (12, D)
    assert cfg["architecture"] == want and cfg["d_in"] == D and cfg["d_sae"] == W and cfg["dtype"] == "float32"
    assert cfg["apply_b_dec_to_input"] is (not transcoder) and cfg["normalize_activations"] == "none"
    assert int(cfg["metadata"]["sae_lens_version"].split(".")[0]) >= 6
    assert cfg["metadata"]["hook_name"] == HOOK and cfg["metadata"]["model_name"] == "tiny"
    if arch == "topk":
        assert cfg["k"] == K and cfg["rescale_acts_by_decoder_norm"] is False
    if transcoder:
        assert cfg["d_out"] == 12 and cfg["metadata"]["hook_name_out"] == "blocks.1.hook_mlp_out"
    x = x_rows()
    check_same(sae, *saelens_math(cfg, t, x), x, atol=1e-6)
    back = load(out)
    assert back.cfg == sae.cfg  # batchtopk comes back as batchtopk, with its k
    for name, v in weights(sae).items():
        torch.testing.assert_close(weights(back)[name], v, atol=0, rtol=1e-6)
    assert {k: back.info[k] for k in ("model", "fingerprint", "hook", "target")} == \
        {k: sae.info[k] for k in ("model", "fingerprint", "hook", "target")}  # fmt: skip


def test_saelens_refusals(tmp_path):
    with pytest.raises(ConfigError, match="SAELens has no TopK transcoder"):
        formats.save_as(mechscope_sae("topk", transcoder=True, d_out=12), tmp_path / "a", "saelens")
    neg = mechscope_sae("batchtopk")
    with torch.no_grad():
        neg.threshold[3] = -0.1
    with pytest.raises(ConfigError, match="only for thresholds ≥ 0, and 1 of its thresholds are negative"):
        formats.save_as(neg, tmp_path / "b", "saelens")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    for name, extra, msg in [("n", {"normalize_activations": "layer_norm"}, "normalize_activations='layer_norm'"),
                             ("g", {"architecture": "gated"}, "architecture 'gated', which mechscope does not read"),
                             ("z", {"reshape_activations": "hook_z"}, "hook_z flattened over heads")]:  # fmt: skip
        write_saelens(tmp_path / name, "standard", extra_cfg=extra)
        with pytest.raises(ArtifactError, match=msg):
            load(tmp_path / name)


def test_saelens_pre_6_flat_config(tmp_path):
    cfg, t = write_saelens(tmp_path / "old", "topk")
    flat = {"d_in": D, "d_sae": W, "dtype": "float32", "hook_point": "model.layers.1", "model_name": "m",
            "activation_fn_str": "topk", "activation_fn_kwargs": {"k": K}, "apply_b_dec_to_input": True}  # fmt: skip
    (tmp_path / "old" / "cfg.json").write_text(json.dumps(flat))
    sae = load(tmp_path / "old")
    x = x_rows()
    check_same(sae, *saelens_math(cfg, t, x), x)
    assert sae.cfg.arch == "topk" and sae.hook == HOOK and sae.info["model"] == "m"


# ----------------------------------------------------------------------------------------------- sparsify
@pytest.mark.parametrize("transcode, skip", [(False, False), (True, False), (True, True)])
def test_sparsify_read_equals_its_math(tmp_path, transcode, skip):
    cfg, t = write_sparsify(tmp_path / "layers.1", transcode=transcode, skip=skip)
    assert detect_format(tmp_path / "layers.1") == "sparsify"
    sae = load(tmp_path / "layers.1")
    x = x_rows()
    check_same(sae, *sparsify_math(cfg, t, x), x)
    assert sae.cfg.arch == "topk" and sae.cfg.k == K and sae.cfg.transcoder == transcode and sae.cfg.skip == skip
    assert sae.hook == HOOK and sae.info["hookpoint"] == "layers.1"  # the folder names the hookpoint


def test_sparsify_checkpoint_folder(tmp_path):
    ckpt = tmp_path / "ckpt"
    _, t1 = write_sparsify(ckpt / "layers.1", seed=1)
    _, t2 = write_sparsify(ckpt / "layers.2", seed=2)
    (ckpt / "config.json").write_text("{}")
    assert detect_format(ckpt) == "sparsify"
    with pytest.raises(ArtifactError, match=r"holds 2 sparsify SAEs \(layers.1, layers.2\): choose one with --hook"):
        load(ckpt)
    sae = load(ckpt, hook="blocks.2.hook_resid_post")
    assert torch.equal(sae.W_enc, t2["encoder.weight"].T) and sae.hook == "blocks.2.hook_resid_post"
    (tmp_path / "one").mkdir()
    (ckpt / "layers.1").rename(tmp_path / "one" / "layers.1")
    assert torch.equal(load(tmp_path / "one").W_dec, t1["W_dec"])


def test_sparsify_write_is_its_layout_and_refusals(tmp_path):
    sae = mechscope_sae("topk", transcoder=True, skip=True)
    out = formats.save_as(sae, tmp_path / "sp", "sparsify")
    assert sorted(p.name for p in out.iterdir()) == ["cfg.json", "mechscope_info.json", "sae.safetensors"]
    cfg = json.loads((out / "cfg.json").read_text())
    assert cfg == {"activation": "topk", "expansion_factor": W // D, "normalize_decoder": True, "num_latents": W,
                   "k": K, "multi_topk": False, "skip_connection": True, "transcode": True, "d_in": D}  # fmt: skip
    t = load_file(str(out / "sae.safetensors"))
    assert {k: tuple(v.shape) for k, v in t.items()} == {"encoder.weight": (W, D), "encoder.bias": (W,),
                                                           "W_dec": (W, D), "b_dec": (D,), "W_skip": (D, D)}  # fmt: skip
    x = x_rows()
    check_same(sae, *sparsify_math(cfg, t, x), x)
    rec = json.loads((out / "mechscope_info.json").read_text())
    assert rec["format"] == "mechscope-sae-info/1" and rec["info"]["fingerprint"] == "abc123"
    assert load(out).info["target"] == "blocks.1.hook_mlp_out"
    msgs = {"relu": "sparsify has no ReLU SAE", "jumprelu": "sparsify has no JumpReLU (it stores no thresholds)",
            "batchtopk": "sparsify stores no thresholds, and a BatchTopK SAE acts through its per-latent thresholds"}  # fmt: skip
    for arch, msg in msgs.items():
        with pytest.raises(ConfigError, match=re.escape(f"cannot write a {arch} SAE as sparsify: {msg}")):
            formats.save_as(mechscope_sae(arch), tmp_path / arch, "sparsify")
    with pytest.raises(ConfigError, match="sparsify's outputs are as wide as its inputs \\(16\\), this one's are 12"):
        formats.save_as(mechscope_sae("topk", transcoder=True, d_out=12), tmp_path / "w", "sparsify")


def test_sparsify_refuses_groupmax_and_mismatched_files(tmp_path):
    write_sparsify(tmp_path / "gm")
    cfg = json.loads((tmp_path / "gm" / "cfg.json").read_text())
    (tmp_path / "gm" / "cfg.json").write_text(json.dumps(cfg | {"activation": "groupmax"}))
    with pytest.raises(ArtifactError, match="activation 'groupmax'; mechscope reads only topk"):
        load(tmp_path / "gm")
    write_sparsify(tmp_path / "sk")
    (tmp_path / "sk" / "cfg.json").write_text(json.dumps(cfg | {"skip_connection": True, "transcode": True}))
    with pytest.raises(ArtifactError, match="does not match its cfg.json: lacks W_skip"):
        load(tmp_path / "sk")


# -------------------------------------------------------------------------------------------- Gemma Scope
def test_gemmascope_npz(tmp_path):
    t = gemmascope_tensors(d_in=64)  # the tiny models' width
    (tmp_path / "gs").mkdir()
    np.savez(tmp_path / "gs" / "params.npz", **{k: v.numpy() for k, v in t.items()})
    assert detect_format(tmp_path / "gs") == "gemmascope"
    sae = load(tmp_path / "gs")
    x = x_rows(64)
    check_same(sae, *gemmascope_math(t, x), x)  # no b_dec subtracted from the input, as Gemma Scope computes
    assert sae.cfg.arch == "jumprelu" and not sae.cfg.transcoder and sae.hook is None
    torch.testing.assert_close(sae.threshold, t["threshold"])
    model = tiny_model("llama")
    with pytest.raises(ArtifactError, match="does not record which hook it reads \\(Gemma Scope's params.npz names no "
                                            "hook.*pass --hook"):  # fmt: skip
        load(tmp_path / "gs", model)
    assert load(tmp_path / "gs", model, hook=HOOK).hook == HOOK
    np.savez(tmp_path / "gs" / "params.npz", **{k: v.numpy() for k, v in t.items()}, scaling_factor=np.float32(2.0))
    with pytest.raises(ArtifactError, match="scaling_factor other than 1"):
        load(tmp_path / "gs")


def test_gemmascope2_sae_and_affine_transcoder(tmp_path):
    t = gemmascope_tensors(seed=3, d_in=64)
    folder = tmp_path / "resid_post" / "layer_1_width_16k_l0_small"
    folder.mkdir(parents=True)
    save_file({"w_enc": t["W_enc"], "w_dec": t["W_dec"], "b_enc": t["b_enc"], "b_dec": t["b_dec"],
               "threshold": t["threshold"]}, str(folder / "params.safetensors"))  # fmt: skip
    (folder / "config.json").write_text(json.dumps({"hf_hook_point_in": "model.layers.1.output", "model_name": "google/x",
                                                    "width": W, "l0": 20, "architecture": "jump_relu"}))  # fmt: skip
    assert detect_format(folder) == "gemmascope2"
    sae = load(folder, tiny_model("gemma3"))
    x = x_rows(64)
    check_same(sae, *gemmascope_math(t, x), x)
    assert sae.hook == HOOK and sae.target == HOOK and sae.info["model"] == "google/x"

    t = gemmascope_tensors(seed=4, d_in=64, skip=True)
    tc = tmp_path / "transcoder_all" / "layer_1_affine"
    tc.mkdir(parents=True)
    save_file({"w_enc": t["W_enc"], "w_dec": t["W_dec"], "b_enc": t["b_enc"], "b_dec": t["b_dec"],
               "threshold": t["threshold"], "affine_skip_connection": t["W_skip"]}, str(tc / "params.safetensors"))  # fmt: skip
    (tc / "config.json").write_text(json.dumps({
        "hf_hook_point_in": "model.layers.1.pre_feedforward_layernorm.output", "architecture": "jump_relu",
        "hf_hook_point_out": "model.layers.1.post_feedforward_layernorm.output", "affine_connection": True}))  # fmt: skip
    sae = load(tc)
    check_same(sae, *gemmascope_math(t, x), x)
    assert sae.cfg.transcoder and sae.cfg.skip
    assert (sae.hook, sae.target) == ("blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out")
    save_file({"w_enc": t["W_enc"], "w_dec": t["W_dec"][:, None].expand(W, 2, 64).contiguous(), "b_enc": t["b_enc"],
               "b_dec": t["b_dec"], "threshold": t["threshold"]}, str(tc / "params.safetensors"))  # fmt: skip
    with pytest.raises(ArtifactError, match="cross-layer transcoder"):
        load(tc)


def test_hook_from_hf():
    cases = {"model.layers.6": "blocks.6.hook_resid_post", "layers.6": "blocks.6.hook_resid_post",
             "model.layers.6.output": "blocks.6.hook_resid_post", "gpt_neox.layers.2": "blocks.2.hook_resid_post",
             "transformer.h.3": "blocks.3.hook_resid_post",
             "model.layers.5.pre_feedforward_layernorm.output": "blocks.5.ln2.hook_normalized",
             "model.layers.5.post_feedforward_layernorm.output": "blocks.5.hook_mlp_out",
             "blocks.4.hook_mlp_out": "blocks.4.hook_mlp_out", "model.layers.11.self_attn.o_proj.input": None,
             "layers.6.mlp": None, "": None}  # fmt: skip
    assert {k: formats.hook_from_hf(k) for k in cases} == cases


# ------------------------------------------------------------------------- model fingerprints, CLI, safety
@pytest.mark.parametrize("layout", ["saelens", "sparsify"])
def test_fingerprint_survives_a_round_trip(tmp_path, layout):
    model, other = tiny_model("llama"), tiny_model("llama", seed=1)
    info = {"model": model.name, "fingerprint": model.fingerprint, "hook": HOOK, "target": HOOK}
    sae = build(SAEConfig(arch="topk", d_in=model.cfg.d_model, width=W, k=K), info)
    out = formats.save_as(sae, tmp_path / layout, layout)
    assert load(out, model).info["fingerprint"] == model.fingerprint
    with pytest.raises(ArtifactError, match="was trained on another model"):
        load(out, other)
    back = formats.convert(out, tmp_path / "native", "mechscope")[2]
    with pytest.raises(ArtifactError, match="another model"):
        load(back, other)


def test_cli_convert(capsys, tmp_path):
    cfg, t = write_saelens(tmp_path / "sl", "topk")
    code, out, _ = run_cli(capsys, "sae", "convert", str(tmp_path / "sl"), "--to", "sparsify", "--out",
                           str(tmp_path / "sp"), "--json")  # fmt: skip
    row = json.loads(out)
    assert code == 0 and row["from"] == "saelens" and row["to"] == "sparsify" and row["sae"] == f"topk-{W}-k{K}"
    assert row["hook"] == HOOK and row["files"] == ["cfg.json", "mechscope_info.json", "sae.safetensors"]
    code, out, _ = run_cli(capsys, "sae", "convert", str(tmp_path / "sp"), "--to", "mechscope", "--out", str(tmp_path / "ms"))
    assert code == 0 and "(sparsify, topk-" in out and detect_format(tmp_path / "ms") == "mechscope"
    x = x_rows()
    check_same(load(tmp_path / "ms"), *saelens_math(cfg, t, x), x)
    write_saelens(tmp_path / "jr", "jumprelu")
    code, _, err = run_cli(capsys, "sae", "convert", str(tmp_path / "jr"), "--to", "sparsify", "--out", str(tmp_path / "x"))
    assert code == 2 and last_line(err) == ("mechscope: error: cannot write a jumprelu SAE as sparsify: sparsify has no "
                                            "JumpReLU (it stores no thresholds): use --to saelens")  # fmt: skip
    assert not (tmp_path / "x").exists()
    code, _, err = run_cli(capsys, "sae", "convert", str(tmp_path / "jr"), "--to", "saelens", "--out", str(tmp_path / "sl"))
    assert code == 2 and "is a folder mechscope did not create" in last_line(err)


def test_writer_keeps_the_users_files(tmp_path):
    sae = mechscope_sae("topk")
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError, match="--force"):
        formats.save_as(sae, folder, "saelens")
    formats.save_as(sae, folder, "saelens", force=True)
    assert (folder / "notes.txt").read_text() == "mine" and load(folder).cfg == sae.cfg
    with pytest.raises(OutputPathError, match="already holds cfg.json, sae_weights.safetensors"):
        formats.save_as(sae, folder, "saelens", force=True)
    (tmp_path / "empty").mkdir()
    assert formats.save_as(sae, tmp_path / "empty", "sparsify") == (tmp_path / "empty").resolve()
    assert load(tmp_path / "empty").cfg == sae.cfg and not list(tmp_path.glob(".*tmp*"))
    native = save(sae, tmp_path / "native")
    with pytest.raises(OutputPathError, match="holds a mechscope artifact"):
        formats.save_as(sae, native, "sparsify", force=True)
