"""CLI: info / check / run on a tiny local model; bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import json

import pytest

from mechscope.cli import main
from tests.clirun import run_cli
from tests.tiny import save_tiny_dir, tiny_hf, tiny_tokenizer


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_dir(tmp_path_factory.mktemp("tiny-gemma3"), "gemma3")



def test_info_json(capsys, tiny_dir):
    code, out, _ = run_cli(capsys, "info", "--model", tiny_dir, "--json")
    info = json.loads(out)
    assert code == 0 and info["architecture"] == "gemma3" and info["n_layers"] == 3
    assert info["hooks"]["blocks.2.attn.hook_k"] == ["batch", "pos", 2, 16]
    assert info["load_seconds"] > 0 and info["cache_path"] == tiny_dir


def test_check_json(capsys, tiny_dir):
    code, out, _ = run_cli(capsys, "check", "--model", tiny_dir, "--json")
    result = json.loads(out)
    assert code == 0 and set(result) == {"hf_max_abs_diff", "batch_max_abs_diff", "finite", "ok"}
    assert result["ok"] and result["hf_max_abs_diff"] <= 1e-4


def test_run_with_hooks_intervention_and_generation(capsys, tiny_dir):
    iv = json.dumps({"kind": "set", "hook": "blocks.1.hook_resid_post", "dims": [0], "value": 5.0})
    code, out, _ = run_cli(capsys, "run", "The capital", "--model", tiny_dir, "--hook", "blocks.1.hook_resid_post",
                           "--intervene", iv, "--generate", "3", "--json")  # fmt: skip
    result = json.loads(out)
    assert code == 0 and len(result["top"]) == 10 and result["hooks"]["blocks.1.hook_resid_post"]["max"] >= 5.0
    assert isinstance(result["generated"], str)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["info", "--model", "gemma-3-27"], "unknown model spec 'gemma-3-27' (did you mean gemma-3-270m?)"),
        (["info", "--model", "google/gemma-3-270m"], "HF_HUB_OFFLINE"),
        (["run", "x", "--hook", "blocks.1.hook_resid_pots"], "did you mean blocks.1.hook_resid_post"),
        (["run", "x", "--hook", "blocks.9.hook_resid_post"], "layer 9 out of range"),
        (["run", "x", "--position", "40"], "position 40 out of range"),
        (["run", ""], "the prompt is empty"),
        (["run", "word " * 200], "context window is 128"),
        (["run", "x", "--intervene", '{"kind": "add", "hook": "blocks.0.hook_resid_post", "vector": [1, 2]}'],
         "vector has 2 entries but d_model is 64"),
        (["run", "x", "--intervene", "{oops"], "not valid JSON"),
        (["run", "x", "--top-k", "0"], "--top-k must be between 1"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, monkeypatch, tiny_dir, argv, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if "--model" not in argv:
        argv = [*argv, "--model", tiny_dir]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    last = err.rstrip("\n").replace("\r", "\n").split("\n")[-1]  # progress bars may precede it on stderr
    assert last.startswith("mechscope: error: ") and "Traceback" not in err, err
    assert message in last


def test_help_has_examples(capsys):
    for cmd in ("info", "check", "run", "tour"):
        with pytest.raises(SystemExit) as exit_:
            main([cmd, "--help"])
        assert exit_.value.code == 0
        assert "Examples:" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["run", "x", "--generate", "1000000"], "passes the model's context window of 128 tokens: generate at most 126"),
    (["run", "\udcff\udcfeabc"], "not valid UTF-8"),
    (["lens", "x", "--png", "."], "is a folder"),
    (["lens", "x", "--html", "missing/dir/x.html"], "does not exist"),
])  # fmt: skip
def test_bad_input_found_before_work(capsys, tiny_dir, argv, message):
    code, out, err = run_cli(capsys, *argv, "--model", tiny_dir)
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_check_fails_on_nan_weights(capsys, tmp_path):
    """A damaged weight used to give ``"hf_max_abs_diff": 0.0, "ok": true`` (max() drops NaN)."""
    import torch

    hf = tiny_hf("gemma3")
    with torch.no_grad():
        hf.model.layers[1].mlp.down_proj.weight[0, 0] = float("nan")
    hf.save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    code, out, _ = run_cli(capsys, "check", "--model", str(tmp_path), "--json")
    result = json.loads(out)
    assert code == 1 and result["ok"] is False and result["finite"] is False
    assert result["hf_max_abs_diff"] is None and "hf_max_abs_diff" in str(result["non_finite"])


def test_run_and_lens_refuse_nan_logits(capsys, tmp_path):
    import torch

    hf = tiny_hf("gemma3")
    with torch.no_grad():
        hf.model.layers[1].mlp.down_proj.weight[:, 0] = float("nan")
    hf.save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    for argv in (["run", "The capital"], ["lens", "The capital"]):
        code, out, err = run_cli(capsys, *argv, "--model", str(tmp_path))
        assert code == 2 and "NaN or infinite" in err and "check --full" in err and out == "", err


def test_tour_folder_is_new_empty_an_earlier_tours_or_forced(capsys, tiny_dir, tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "tour", "--only", "basics", "--model", tiny_dir, "--out", str(user))
    assert code == 2 and "did not create" in err and sorted(p.name for p in user.iterdir()) == ["notes.txt"]
    code, _, _ = run_cli(capsys, "tour", "--only", "basics", "--model", tiny_dir, "--out", str(user), "--force")
    assert code == 0 and (user / "notes.txt").read_text() == "mine"
    legacy = tmp_path / "tour"  # a folder an earlier version's tour wrote, without a marker
    (legacy / "grok-fast").mkdir(parents=True)
    (legacy / "lens_wikipedia.png").write_bytes(b"png")
    for _ in range(2):  # adopted, then recognised by its marker
        code, _, err = run_cli(capsys, "tour", "--only", "basics", "--model", tiny_dir, "--out", str(legacy))
        assert code == 0, err
