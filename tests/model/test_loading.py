"""Model specs, local directories, cache integrity, and one-line errors for bad specs."""

from __future__ import annotations

import json
import os

import pytest
import torch

import mechscope
from mechscope import io
from mechscope.errors import CacheError, ModelSpecError, OfflineError, UnsupportedArchitectureError
from mechscope.model import convert
from tests.tiny import tiny_hf, tiny_tokenizer


def test_local_directory_round_trip(tmp_path):
    hf = tiny_hf("qwen2")
    hf.save_pretrained(tmp_path / "m")
    tiny_tokenizer().save_pretrained(tmp_path / "m")
    model = mechscope.load(str(tmp_path / "m"), device="cpu")
    assert model.cfg.architecture == "qwen2" and model.load_seconds > 0
    batch = model.to_tokens("The capital of France is")
    with torch.no_grad():
        ref = hf(input_ids=batch.input_ids).logits
    torch.testing.assert_close(model("The capital of France is"), ref, atol=1e-5, rtol=0)


def test_local_tokenizer_is_built_on_first_use(tmp_path):
    tiny_hf("llama").save_pretrained(tmp_path / "m")
    tiny_tokenizer().save_pretrained(tmp_path / "m")
    model = mechscope.load(str(tmp_path / "m"), device="cpu")
    assert model._tokenizer is None  # load() did not parse tokenizer.json
    ids = model.to_tokens("hello world").input_ids
    assert model._tokenizer is not None and ids.shape[1] > 1
    assert model.tokenizer is model.tokenizer  # built once


def test_broken_tokenizer_fails_with_one_line_on_first_use(tmp_path):
    tiny_hf("llama").save_pretrained(tmp_path / "m")
    tiny_tokenizer().save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "tokenizer.json").write_text("{not json")
    model = mechscope.load(str(tmp_path / "m"), device="cpu")
    with pytest.raises(ModelSpecError, match="could not build the tokenizer") as err:
        model.to_tokens("hello")
    assert "\n" not in str(err.value)


def test_unknown_spec_suggests(monkeypatch):
    with pytest.raises(ModelSpecError, match="did you mean gemma-3-270m"):
        mechscope.load("gemma-3-270")
    with pytest.raises(ModelSpecError, match="no such file"):
        mechscope.load("./missing/model.gguf")


def test_hub_id_offline_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE") as err:
        mechscope.load("google/gemma-3-270m")
    assert "\n" not in str(err.value)


def test_unsupported_architecture_is_named(tmp_path):
    from transformers import OPTConfig, OPTForCausalLM

    OPTForCausalLM(OPTConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, ffn_dim=32,
                             num_attention_heads=2, word_embed_proj_dim=16)).save_pretrained(tmp_path)  # fmt: skip
    with pytest.raises(UnsupportedArchitectureError, match="'opt' is not supported"):
        mechscope.load(str(tmp_path))


def test_directory_without_config(tmp_path):
    with pytest.raises(ModelSpecError, match="without config.json"):
        mechscope.load(str(tmp_path))


def _fake_cache(tmp_path):
    d = tmp_path / "cache"
    d.mkdir()
    (d / "model.safetensors").write_bytes(bytes(range(256)) * 4096)
    files = {"model.safetensors": convert.file_record(d / "model.safetensors")}
    (d / convert.MANIFEST).write_text(json.dumps({"files": files}))
    return d


def test_cache_verification_detects_truncation_and_corruption(tmp_path):
    d = _fake_cache(tmp_path)
    assert convert.verify(d) is None
    w = d / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[len(data) // 2 + 12345] ^= 0xFF  # between sampled blocks: caught by the full hash (mtime changed)
    w.write_bytes(bytes(data))
    assert "corrupted" in convert.verify(d)
    data[len(data) // 2 + 12345] ^= 0xFF  # restored content with a new mtime is accepted and re-stamped
    w.write_bytes(bytes(data))
    assert convert.verify(d) is None
    assert json.loads((d / convert.MANIFEST).read_text())["files"]["model.safetensors"]["mtime_ns"] == w.stat().st_mtime_ns
    data[0] ^= 0xFF
    w.write_bytes(bytes(data))
    assert "corrupted" in convert.verify(d)
    w.write_bytes(bytes(data[: len(data) // 3]))
    assert "truncated" in convert.verify(d)
    (d / convert.MANIFEST).unlink()
    assert "no manifest" in convert.verify(d)


@pytest.mark.parametrize("manifest", ['{"files": {"model.safetensors": {}}}', '{"files": [1]}', "[]", '{"files": {}}', "\xff"])
def test_cache_manifest_with_missing_fields_is_unusable_not_a_traceback(tmp_path, manifest):
    d = _fake_cache(tmp_path)
    (d / convert.MANIFEST).write_text(manifest, encoding="latin-1")
    assert convert.verify(d) is not None


def test_full_verification_sees_a_write_that_kept_the_mtime(tmp_path):
    d = _fake_cache(tmp_path)
    assert convert.verify(d, full=True) is None
    w = d / "model.safetensors"
    st = w.stat()
    data = bytearray(w.read_bytes())
    data[len(data) // 2 + 12345] ^= 0xFF  # between the sampled blocks, mtime put back
    w.write_bytes(bytes(data))
    os.utime(w, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert "corrupted" in convert.verify(d, full=True)


def test_a_broken_cache_is_replaced_only_when_it_holds_nothing_but_a_conversion(tmp_path):
    d = _fake_cache(tmp_path)
    (d / convert.MANIFEST).write_text("garbage")
    convert._adopt(d)  # only converted files: marked as ours, so a conversion may replace it
    with io.atomic_dir(d, convert.KIND) as tmp:
        (tmp / "model.safetensors").write_bytes(b"new")
    assert (d / "model.safetensors").read_bytes() == b"new"
    user = tmp_path / "user"
    user.mkdir()
    (user / "config.json").write_text("{}")
    (user / "notes.txt").write_text("mine")
    with pytest.raises(CacheError, match="notes.txt"):
        convert._adopt(user)
    with pytest.raises(io.OutputPathError):
        with io.atomic_dir(user, convert.KIND):
            pass
    assert sorted(p.name for p in user.iterdir()) == ["config.json", "notes.txt"]


@pytest.mark.parametrize("device", ["gpu", "cuda:99", "", "cpu:x"])
def test_bad_device_is_refused_before_the_model_is_read(device, monkeypatch):
    from mechscope.errors import MechscopeError

    monkeypatch.setattr("mechscope.model.loading.resolve", lambda spec: pytest.fail("resolved the model first"))
    if device == "cuda:99" and torch.cuda.is_available() and torch.cuda.device_count() > 99:  # pragma: no cover
        pytest.skip("a machine with 100 GPUs")
    with pytest.raises(MechscopeError):
        mechscope.load("gemma-3-270m", device=device)


def test_fast_tokenizer_copy_builds_the_same_tokenizer(tmp_path, monkeypatch):
    from tokenizers import Tokenizer

    from mechscope.model.loading import fast_tokenizer_file

    monkeypatch.setenv("MECHSCOPE_HOME", str(tmp_path / "home"))
    tiny_hf("llama").save_pretrained(tmp_path / "m")
    tiny_tokenizer().save_pretrained(tmp_path / "m")
    src = tmp_path / "m" / "tokenizer.json"
    fast = fast_tokenizer_file(src)
    assert fast.parent == tmp_path / "home" / "tokenizers" and fast_tokenizer_file(src) == fast  # cached
    assert isinstance(json.loads(fast.read_text())["model"]["merges"][0], str)
    a, b = Tokenizer.from_file(str(src)), Tokenizer.from_file(str(fast))
    assert json.loads(a.to_str()) == json.loads(b.to_str())  # the very same tokenizer
    model = mechscope.load(str(tmp_path / "m"), device="cpu")
    assert model.tokenizer("hello world, again")["input_ids"] == tiny_tokenizer()("hello world, again")["input_ids"]
    # a merge with a space cannot be written the fast way: the original is used
    spec = json.loads(src.read_text())
    spec["model"]["merges"][0] = ["a b", "c"]
    src.write_text(json.dumps(spec))
    assert fast_tokenizer_file(src) == src
    src.write_text("{not json")
    assert fast_tokenizer_file(src) == src


@pytest.mark.gemma
def test_gemma_fast_tokenizer_copy_is_the_same_tokenizer():
    from tokenizers import Tokenizer

    from mechscope.model.loading import fast_tokenizer_file, resolve

    where, _ = resolve("gemma-3-270m")
    src = where / "tokenizer.json"
    fast = fast_tokenizer_file(src)
    assert fast != src
    a, b = Tokenizer.from_file(str(src)), Tokenizer.from_file(str(fast))
    assert json.loads(a.to_str()) == json.loads(b.to_str())


def _no_model_type(d):
    cfg = json.loads((d / "config.json").read_text())
    del cfg["model_type"]
    (d / "config.json").write_text(json.dumps(cfg))


def _weights_dir(d):
    (d / "model.safetensors").unlink()
    (d / "model.safetensors").mkdir()


def _config_dir(d):
    (d / "config.json").unlink()
    (d / "config.json").mkdir()


CORRUPT_DIRS = {
    "config without model_type": _no_model_type,
    "config garbage": lambda d: (d / "config.json").write_text("{garbage"),
    "config a list": lambda d: (d / "config.json").write_text("[1, 2]"),
    "weights truncated": lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:1000]),
    "weights empty": lambda d: (d / "model.safetensors").write_bytes(b""),
    "weights a directory": _weights_dir,
    "config a directory": _config_dir,
    "tokenizer garbage": lambda d: (d / "tokenizer.json").write_text("{x"),
}


@pytest.mark.parametrize("damage", CORRUPT_DIRS)
def test_a_corrupted_model_directory_is_one_line_and_left_untouched(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("MECHSCOPE_HOME", str(tmp_path / "home"))
    d = tmp_path / "m"
    tiny_hf("llama").save_pretrained(d)
    tiny_tokenizer().save_pretrained(d)
    CORRUPT_DIRS[damage](d)
    before = {p.name: (p.read_bytes() if p.is_file() else None) for p in d.iterdir()}
    with pytest.raises(ModelSpecError) as err:
        mechscope.load(str(d), device="cpu").to_tokens("hello")
    assert "\n" not in str(err.value)
    assert {p.name: (p.read_bytes() if p.is_file() else None) for p in d.iterdir()} == before


@pytest.mark.parametrize("content", [b"", b"GGUF" + bytes(range(256)) * 8, b"not a gguf at all"])
def test_an_empty_or_garbage_gguf_is_one_line_and_leaves_no_cache(tmp_path, monkeypatch, content):
    monkeypatch.setenv("MECHSCOPE_HOME", str(tmp_path / "home"))
    g = tmp_path / "x.gguf"
    g.write_bytes(content)
    with pytest.raises(CacheError) as err:
        mechscope.load(str(g), device="cpu")
    assert "\n" not in str(err.value) and g.read_bytes() == content
    models = tmp_path / "home" / "models"
    assert not [p for p in models.iterdir() if p.is_dir()] if models.exists() else True


def test_full_check_rebuilds_a_cache_changed_behind_its_mtime(tmp_path, monkeypatch):
    from mechscope.model import loading

    d = _fake_cache(tmp_path)
    monkeypatch.setattr(convert, "home", lambda: tmp_path)
    (tmp_path / "models").mkdir()
    d.rename(tmp_path / "models" / loading.EMBEDDED["gemma-3-270m"]["cache"])
    d = tmp_path / "models" / loading.EMBEDDED["gemma-3-270m"]["cache"]
    rebuilt = []
    monkeypatch.setattr(loading, "_embedded_gguf", lambda: tmp_path / "x.gguf")
    monkeypatch.setattr(convert, "convert_gguf", lambda g, c, label: rebuilt.append(c))
    w = d / "model.safetensors"
    st = w.stat()
    data = bytearray(w.read_bytes())
    data[len(data) // 2 + 12345] ^= 0xFF
    w.write_bytes(bytes(data))
    os.utime(w, ns=(st.st_atime_ns, st.st_mtime_ns))
    loading.resolve("gemma-3-270m", full_check=True)
    assert rebuilt == [d]
