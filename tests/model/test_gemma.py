"""The real embedded Gemma 3 270M: loads from the PyPI package, matches HF, predicts Paris."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mechscope.cli.check import check
from mechscope.model import convert

pytestmark = pytest.mark.gemma


def test_loads_from_package_cache(gemma):
    assert gemma.cfg.architecture == "gemma3"
    assert (gemma.cfg.n_layers, gemma.cfg.d_model, gemma.cfg.d_vocab) == (18, 640, 262144)
    assert gemma.cache_path and Path(gemma.cache_path).parent == convert.home() / "models"
    assert convert.verify(Path(gemma.cache_path)) is None


def test_check_parity(gemma):
    result = check(gemma)
    assert result["ok"], result
    assert result["hf_max_abs_diff"] <= 1e-4 and result["batch_max_abs_diff"] <= 1e-4


def test_paris_in_top5(gemma):
    logits = gemma("The capital of France is")
    top5 = logits[0, -1].topk(5).indices.tolist()
    assert gemma.token_id(" Paris") in top5


def test_exactly_one_bos(gemma):
    ids = gemma.to_tokens("The capital of France is").input_ids[0].tolist()
    assert ids[0] == gemma.tokenizer.bos_token_id == 2
    assert ids.count(2) == 1
    assert gemma.to_str_tokens("The capital")[:3] == ["<bos>", "The", " capital"]
    assert gemma.to_str_tokens("The capital", visible=True)[2] == "␣capital"


def test_cache_dir_hooks_and_shapes(gemma):
    shapes = gemma.hook_shapes()
    assert shapes["blocks.0.attn.hook_q"] == ("batch", "pos", 4, 256)
    assert shapes["blocks.0.attn.hook_k"] == ("batch", "pos", 1, 256)
    assert shapes["blocks.17.mlp.hook_post"] == ("batch", "pos", 2048)
    _, cache = gemma.run_with_cache("Hello world", names="*hook_pattern")
    assert cache["pattern", 0].shape == (1, 4, 3, 3)


@pytest.mark.slow
def test_corrupted_cache_is_detected_and_reconverted(gemma, tmp_path):
    """Corrupt a copy of the cache under another MECHSCOPE_HOME: loading detects it and re-converts."""
    src = Path(gemma.cache_path)
    home = tmp_path / "home"
    dst = home / "models" / src.name
    shutil.copytree(src, dst)
    weights = dst / convert.WEIGHTS
    with open(weights, "r+b") as f:  # truncate: the classic interrupted copy
        f.truncate(weights.stat().st_size // 2)
    code = (
        "import mechscope, json; m = mechscope.load('gemma-3-270m', device='cpu'); "
        "print(json.dumps({'top': int(m('The capital of France is')[0, -1].argmax())}))"
    )
    env = {**os.environ, "MECHSCOPE_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "truncated" in out.stderr and "re-converting" in out.stderr
    assert convert.verify(dst) is None
    expected = int(gemma("The capital of France is")[0, -1].argmax())
    assert f'"top": {expected}' in out.stdout
