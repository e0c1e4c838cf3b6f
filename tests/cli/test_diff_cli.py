"""``mechscope diff`` end to end on tiny model folders: JSON schema, the crosscoder object and its saved
folder, the picture, one-line refusals."""

from __future__ import annotations

import json

import pytest
import torch

from tests.clirun import last_line, run_cli
from tests.tiny import TEXT, save_tiny_dir, tiny_hf, tiny_tokenizer


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("diff-cli")
    base = save_tiny_dir(root / "base", "gpt2")
    m = tiny_hf("gpt2")
    with torch.no_grad():
        m.transformer.h[1].mlp.c_proj.bias[5] += 3.0
    m.save_pretrained(root / "tuned")
    tiny_tokenizer().save_pretrained(root / "tuned")
    other = save_tiny_dir(root / "llama", "llama")
    prompts = root / "prompts.txt"
    prompts.write_text("\n".join(s for s in TEXT.split(". ") if s))
    return {"base": base, "tuned": str(root / "tuned"), "other": other, "prompts": str(prompts), "root": root}


def test_diff_json_schema(dirs, capsys, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    png = dirs["root"] / "d.png"
    code, out, err = run_cli(capsys, "diff", dirs["base"], dirs["tuned"], "--prompts", dirs["prompts"], "--seq-len", "16",
                             "--coefs", "0,1,2", "--png", str(png), "--json")  # fmt: skip
    assert code == 0, err
    d = json.loads(out)
    assert [r["layer"] for r in d["layers"]] == [0, 1, 2]
    assert d["layers"][0]["mean_norm"] == 0 and d["layers"][1]["mean_norm"] == pytest.approx(3.0, abs=1e-4)
    assert all(isinstance(t["token"], str) and isinstance(t["logit"], float) for t in d["promoted_tokens"])
    assert len(d["promoted_tokens"]) == 20 and d["best_layer"] in (1, 2)
    assert [s["coef"] for s in d["steer"]] == [0, 1, 2] and d["steer"][0]["target_logprob_shift"] == 0
    assert png.stat().st_size > 10_000


def test_diff_on_narrative_prompts(dirs, capsys, monkeypatch):
    from mechscope.diff.themes import THEMES, narrative_prompts

    prompts = narrative_prompts(30)
    assert prompts == narrative_prompts(30) and len(set(prompts)) == 30  # deterministic, no repeats
    words = {w for t in THEMES.values() for w in t.words}
    assert not any(w in p.lower().replace(",", " ").split() for p in prompts for w in words)  # no theme of their own
    monkeypatch.setenv("TQDM_DISABLE", "1")
    code, out, err = run_cli(capsys, "diff", dirs["base"], dirs["tuned"], "--narrative-prompts", "--n-prompts", "12",
                             "--seq-len", "32", "--coefs", "0,1", "--json")  # fmt: skip
    assert code == 0, err
    d = json.loads(out)
    assert d["layers"][0]["mean_norm"] == 0 and d["layers"][1]["mean_norm"] == pytest.approx(3.0, abs=1e-4)


def test_diff_crosscoder_json_and_save(dirs, capsys, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    save = dirs["root"] / "xc"
    code, out, err = run_cli(capsys, "diff", dirs["base"], dirs["tuned"], "--prompts", dirs["prompts"], "--seq-len", "16",
                             "--crosscoder", "--width", "32", "--k", "4", "--tokens", "150", "--cc-layer", "1",
                             "--save", str(save), "--json")  # fmt: skip
    assert code == 0, err
    xc = json.loads(out)["crosscoder"]
    assert {"width", "k", "fvu", "counts", "tuned_only"} <= set(xc) and xc["width"] == 32 and xc["k"] == 4
    assert set(xc["counts"]) >= {"base_only", "shared", "tuned_only"} and sum(xc["counts"].values()) == 32
    from mechscope.diff.crosscoder import load_crosscoder

    assert load_crosscoder(save).cfg.width == 32


@pytest.mark.parametrize("extra, message", [
    (["--coefs", "0,nan"], "finite"),
    (["--layers", "9"], "out of range"),
    (["--k", "64", "--width", "8", "--crosscoder"], "cannot exceed"),
    (["--save", "x"], "go with --crosscoder"),
])  # fmt: skip
def test_diff_bad_options_one_line(dirs, capsys, extra, message):
    code, out, err = run_cli(capsys, "diff", dirs["base"], dirs["tuned"], "--prompts", dirs["prompts"], *extra)
    assert code == 2 and message in last_line(err) and "Traceback" not in err


def test_diff_other_architecture_one_line(dirs, capsys):
    code, _, err = run_cli(capsys, "diff", dirs["base"], dirs["other"], "--prompts", dirs["prompts"])
    assert code == 2 and "differ in architecture" in last_line(err)


def test_diff_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        run_cli(capsys, "diff", "--help")
    assert "Examples:" in capsys.readouterr().out
