"""``mechscope vector make | apply`` on a tiny local model: the JSON shapes, the table, the picture, the
built-in set, and bad input (prompt files of unequal or zero length, missing files, NaN coefficients,
a vector for another model or hook) as one line on stderr with exit code 2."""

from __future__ import annotations

import json

import pytest
import torch

from tests.clirun import last_line, run_cli
from tests.tiny import save_tiny_dir

HOOK = "blocks.1.hook_resid_post"
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("vector")
    (root / "pos.txt").write_text("The capital of France is Paris.\n\n  Paris is the capital.  \nFrance has a capital\n")
    (root / "neg.txt").write_text("The reliability of Wikipedia\nWikipedia is very questionable.\nSparse features\n")
    (root / "two.txt").write_text("one line\nanother line\n")
    (root / "blank.txt").write_text("\n  \n\n")
    (root / "same_a.txt").write_text("The capital of\nThe capital is\n")
    (root / "same_b.txt").write_text("The reliability of\nThe reliability is\n")
    return {"model": save_tiny_dir(root / "tiny", "gemma3"), "llama": save_tiny_dir(root / "llama", "llama"), "root": root}


def make(capsys, dirs, *argv, model="model"):
    return run_cli(capsys, "vector", "make", "--model", dirs[model], *argv)


def apply(capsys, dirs, vector, *argv, model="model"):
    return run_cli(capsys, "vector", "apply", str(vector), PROMPT, "--model", dirs[model], *argv)


@pytest.fixture(scope="module")
def vec(dirs):
    from mechscope.cli import main

    out = dirs["root"] / "v"
    assert main(["vector", "make", "--model", dirs["model"], "--pos", str(dirs["root"] / "pos.txt"), "--neg",
                 str(dirs["root"] / "neg.txt"), "--hook", HOOK, "--out", str(out), "--json"]) == 0  # fmt: skip
    return out


def test_make_json_and_files(capsys, dirs, tmp_path, one_thread):
    r = dirs["root"]
    code, out, _ = make(capsys, dirs, "--pos", str(r / "pos.txt"), "--neg", str(r / "neg.txt"), "--hook", HOOK,
                        "--out", str(tmp_path / "v"), "--method", "pca", "--position", "last", "--json")  # fmt: skip
    data = json.loads(out)
    assert code == 0 and data["out"] == str(tmp_path / "v") and data["hook"] == HOOK and data["method"] == "pca"
    assert data["shape"] == [64] and data["meta"]["n_pos"] == 3 and data["meta"]["position"] == "last"
    assert data["meta"]["source"].startswith("files:") and 0 < data["meta"]["explained_variance"] <= 1
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["mechscope.json", "meta.json", "tensors.safetensors"]
    from safetensors.torch import load_file

    t = load_file(str(tmp_path / "v" / "tensors.safetensors"))["vector"]
    assert t.shape == (64,) and abs(float(t.norm()) - data["norm"]) < 1e-4


def test_make_builtin_human(capsys, dirs, tmp_path, one_thread):
    code, out, _ = make(capsys, dirs, "--builtin", "doubt", "--hook", HOOK, "--out", str(tmp_path / "d"))
    assert code == 0 and "60 positive vs 60 negative prompts (builtin:doubt)" in out and "wrote" in out


def test_make_per_position(capsys, dirs, tmp_path, one_thread):
    r = dirs["root"]
    code, out, _ = make(capsys, dirs, "--pos", str(r / "same_a.txt"), "--neg", str(r / "same_b.txt"), "--hook", HOOK,
                        "--out", str(tmp_path / "p"), "--position", "all", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["shape"] == [4, 64]
    code, out, _ = apply(capsys, dirs, tmp_path / "p", "--sweep", "0,1", "--generate", "3", "--json")
    assert code == 0 and len(json.loads(out)["coefs"]) == 2


def test_apply_json_shape_and_png(capsys, dirs, vec, tmp_path, one_thread):
    png = tmp_path / "sweep.png"
    code, out, _ = apply(capsys, dirs, vec, "--sweep", "1,0,3", "--generate", "4", "--target", "Paris", "--target",
                         "the", "--png", str(png), "--json")  # fmt: skip
    data = json.loads(out)
    assert code == 0 and png.stat().st_size > 5000 and data["files"] == [str(png)]
    assert [c["coef"] for c in data["coefs"]] == [1.0, 0.0, 3.0] and data["reference"]["coef"] == 0.0
    for c in data["coefs"]:
        assert isinstance(c["coef"], float) and isinstance(c["text"], str) and isinstance(c["target_logprob_shift"], float)
        assert len(c["top"]) == 10 and all(isinstance(t["token"], str) and isinstance(t["prob"], float) for t in c["top"])
    assert data["coefs"][1]["target_logprob_shift"] == 0.0 and data["coefs"][1]["top"] == data["reference"]["top"]
    assert data["coefs"][0]["target_logprob_shift"] != 0.0
    assert data["prompt"] == PROMPT and data["hook"] == HOOK and data["tokens"][0] == "<bos>"
    assert [t["token"] for t in data["targets"]] == [" Paris", " the"] and "but BOS" in data["positions"]
    code, again, _ = apply(capsys, dirs, vec, "--sweep", "1,0,3", "--generate", "4", "--target", "Paris", "--target",
                           "the", "--json")  # fmt: skip
    assert json.loads(again)["coefs"] == data["coefs"]  # greedy: the same every run


def test_apply_table(capsys, dirs, vec, one_thread):
    code, out, _ = apply(capsys, dirs, vec, "--sweep", "0.5,2", "--generate", "3", "--target", "Paris", "--top-k", "3")
    lines = out.splitlines()
    assert code == 0 and "adds c × vector" in lines[0] and "scored token ␣Paris" in out
    head = next(i for i, line in enumerate(lines) if "c=0 " in line and "c=0.5" in line and "c=2" in line)
    assert [line.split()[0] for line in lines[head + 1 : head + 4]] == ["1", "2", "3"]
    assert lines[head + 4].split()[0] == "shift" and "rank" in lines[head + 5] and "KL" in lines[head + 6]
    assert "greedy continuations (3 tokens):" in out and sum(line.startswith("c=") for line in lines) == 3


@pytest.mark.parametrize("argv, message", [
    (["--pos", "{r}/pos.txt", "--neg", "{r}/missing.txt"], "--neg file {r}/missing.txt does not exist"),
    (["--pos", "{r}/blank.txt", "--neg", "{r}/neg.txt"], "--pos file {r}/blank.txt has no prompts"),
    (["--pos", "{r}", "--neg", "{r}/neg.txt"], "is a folder"),
    (["--pos", "{r}/pos.txt", "--neg", "{r}/two.txt", "--method", "pca"], "has 3 and {r}/two.txt has 2: give equal counts"),
    (["--pos", "{r}/pos.txt"], "--pos needs --neg"),
    (["--builtin", "doubt", "--neg", "{r}/neg.txt"], "--neg goes with --pos"),
    (["--pos", "{r}/pos.txt", "--neg", "{r}/neg.txt", "--position", "all"], "needs prompts of one token length"),
])  # fmt: skip
def test_make_bad_input(capsys, dirs, tmp_path, argv, message):
    r = str(dirs["root"])
    argv = [a.format(r=r) for a in argv]
    code, out, err = make(capsys, dirs, *argv, "--hook", HOOK, "--out", str(tmp_path / "v"))
    assert code == 2 and out == "" and message.format(r=r) in last_line(err)
    assert last_line(err).startswith("mechscope: error:") and not (tmp_path / "v").exists()


def test_make_bad_hook(capsys, dirs, tmp_path):
    r = dirs["root"]
    code, _, err = make(capsys, dirs, "--pos", str(r / "pos.txt"), "--neg", str(r / "neg.txt"), "--hook",
                        "blocks.1.mlp.hook_post", "--out", str(tmp_path / "v"))  # fmt: skip
    assert code == 2 and "[batch, pos, d_mlp]" in last_line(err)
    code, _, err = make(capsys, dirs, "--pos", str(r / "pos.txt"), "--neg", str(r / "neg.txt"), "--hook",
                        "blocks.7.hook_resid_post", "--out", str(tmp_path / "v"))  # fmt: skip
    assert code == 2 and "layer 7 out of range" in last_line(err)


@pytest.mark.parametrize("argv, message", [
    (["--coef", "nan"], "--coef must be a finite number"),
    (["--sweep", "0,nan"], "--sweep takes comma-separated finite numbers"),
    (["--coef", "1", "--generate", "-1"], "--generate must be ≥ 0"),
    (["--coef", "1", "--top-k", "0"], "--top-k must be between 1"),
    (["--coef", "1", "--png", "x.txt"], "should end in .png"),
    (["--coef", "1", "--hook", "blocks.2.hook_resid_post"], "made at blocks.1.hook_resid_post, not blocks.2.hook_resid_post"),
])  # fmt: skip
def test_apply_bad_input(capsys, dirs, vec, argv, message):
    code, out, err = apply(capsys, dirs, vec, *argv)
    assert code == 2 and out == "" and message in last_line(err) and last_line(err).startswith("mechscope: error:")


def test_apply_other_model_or_missing_vector(capsys, dirs, vec, tmp_path):
    code, _, err = apply(capsys, dirs, vec, "--coef", "1", model="llama")
    assert code == 2 and "made for another model" in last_line(err)
    code, _, err = apply(capsys, dirs, tmp_path / "nothing", "--coef", "1")
    assert code == 2 and "no steering-vector at" in last_line(err)


def test_vector_round_trips_through_intervention(dirs, vec):
    """The saved tensor is the vector; applying c = 1 adds exactly it after BOS."""
    import mechscope
    from mechscope.steer.apply import vector_edits
    from mechscope.steer.vector import load_vector

    model = mechscope.load(dirs["model"], device="cpu")
    v = load_vector(vec, model)
    _, clean = model.run_with_cache(PROMPT, names=[HOOK])
    with model.intervene(vector_edits(v, HOOK, 1.0, range(1, 6))):
        _, steered = model.run_with_cache(PROMPT, names=[HOOK])
    torch.testing.assert_close(steered[HOOK][0, 1:] - clean[HOOK][0, 1:], v.vector.expand(5, -1), rtol=1e-4, atol=1e-4)


def test_help_is_instant_and_has_examples(capsys):
    import subprocess
    import sys

    from mechscope.cli import main

    for action in ("make", "apply"):
        with pytest.raises(SystemExit) as exit_:
            main(["vector", action, "--help"])
        text = capsys.readouterr().out
        assert exit_.value.code == 0 and "Examples:" in text
    code = ("import sys, argparse; import mechscope.cli.vector as s; s.register(argparse.ArgumentParser().add_subparsers()); "
            "print(sorted(m for m in sys.modules if m in ('torch', 'matplotlib', 'transformers')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
