"""``mechscope steer`` on a tiny local model and a saved random SAE: the JSON schema, the table, the
picture, and bad input as one line on stderr with exit code 2."""

from __future__ import annotations

import json

import pytest

from mechscope.sae.artifact import save
from tests.clirun import last_line, run_cli
from tests.steer.saes import make_sae
from tests.tiny import save_tiny_dir

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    import mechscope

    root = tmp_path_factory.mktemp("steer")
    model_dir = save_tiny_dir(root / "tiny", "gemma3")
    model = mechscope.load(model_dir, device="cpu")
    save(make_sae(model), root / "sae")
    other = mechscope.load(save_tiny_dir(root / "llama", "llama"), device="cpu")
    save(make_sae(other), root / "sae-llama")
    save(make_sae(model, hook="blocks.2.hook_resid_post"), root / "sae-l2")
    return {"model": model_dir, "sae": str(root / "sae"), "other": str(root / "sae-llama"), "root": root}


def steer(capsys, dirs, *argv, sae="sae"):
    return run_cli(capsys, "steer", PROMPT, "--sae", dirs[sae], "--model", dirs["model"], *argv)


def test_json_schema_and_png(capsys, dirs, tmp_path, one_thread):
    png = tmp_path / "dose.png"
    code, out, _ = steer(capsys, dirs, "--latent", "9", "--sweep", "0,10,30", "--generate", "4", "--json", "--png",
                         str(png))  # fmt: skip
    data = json.loads(out)
    assert code == 0 and png.stat().st_size > 5000 and data["files"] == [str(png)]
    assert [d["value"] for d in data["doses"]] == [0.0, 10.0, 30.0]
    for d in data["doses"]:
        assert isinstance(d["text"], str) and isinstance(d["kl"], float) and len(d["top"]) == 10
        assert all(isinstance(t["token"], str) and isinstance(t["prob"], float) for t in d["top"])
    assert data["doses"][0]["kl"] == 0.0 and data["doses"][0]["top"] == data["clean"]["top"]
    assert data["latent"] == 9 and data["mode"] == "add" and data["hook"] == data["target"] == "blocks.1.hook_resid_post"
    assert data["tokens"][0] == "<bos>" and len(data["activations"]) == len(data["tokens"])
    assert "but BOS" in data["positions"] and data["generate"] == 4 and data["greedy"] is True
    assert all(len(t["probs"]) == 3 for t in data["tracked"])
    # deterministic: the same command prints the same doses
    code, again, _ = steer(capsys, dirs, "--latent", "9", "--sweep", "0,10,30", "--generate", "4", "--json")
    assert json.loads(again)["doses"] == data["doses"]


def test_clamp_table(capsys, dirs, one_thread):
    code, out, _ = steer(capsys, dirs, "--latent", "9", "--mode", "clamp", "--sweep=-5,0,30", "--generate", "3",
                         "--top-k", "3")  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    assert "clamp f_N := V" in lines[0] and "unsteered activation of latent 9 after BOS" in out
    head = next(i for i, l in enumerate(lines) if "unsteered" in l and "V=-5" in l)
    assert "V=0" in lines[head] and "V=30" in lines[head]
    assert [l.split()[0] for l in lines[head + 1 : head + 4]] == ["1", "2", "3"] and "KL" in lines[head + 4]
    assert "greedy continuations (3 tokens):" in out and sum(l.startswith("V=") for l in lines) == 3


@pytest.mark.parametrize("argv, message", [
    (["--latent", "32", "--value", "1"], "latent 32 out of range: the SAE has 32 latents (0..31)"),
    (["--latent", "-1", "--value", "1"], "latent -1 out of range"),
    (["--latent", "1", "--sweep", "0,abc"], "--sweep takes comma-separated finite numbers"),
    (["--latent", "1", "--sweep", "0,,5"], "--sweep takes comma-separated finite numbers"),
    (["--latent", "1", "--sweep", "0,nan"], "--sweep takes comma-separated finite numbers"),
    (["--latent", "1", "--value", "inf"], "--value must be a finite number"),
    (["--latent", "1", "--value", "1", "--generate", "-3"], "--generate must be ≥ 0"),
    (["--latent", "1", "--value", "1", "--top-k", "0"], "--top-k must be between 1"),
    (["--latent", "1", "--value", "1", "--png", "out.txt"], "should end in .png"),
])  # fmt: skip
def test_bad_input(capsys, dirs, argv, message):
    code, out, err = steer(capsys, dirs, *argv)
    assert code == 2 and out == "" and message in last_line(err) and last_line(err).startswith("mechscope: error:")


@pytest.mark.parametrize("argv, message", [
    (["--latent", "1", "--value", "1", "--sweep", "1,2"], "not allowed with argument"),
    (["--latent", "1"], "one of the arguments --value --sweep is required"),
    (["--latent", "1", "--value", "1", "--mode", "scale"], "invalid choice"),
    (["--latent", "x", "--value", "1"], "invalid int value"),
])  # fmt: skip
def test_bad_command_line(capsys, dirs, argv, message):
    with pytest.raises(SystemExit) as exit_:
        steer(capsys, dirs, *argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in last_line(err) and last_line(err).startswith("mechscope: error:")


def test_help_is_instant_and_has_examples(capsys):
    import subprocess
    import sys

    from mechscope.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["steer", "--help"])
    text = capsys.readouterr().out
    assert exit_.value.code == 0 and "Examples:" in text and "every position but BOS" in text and "greedy" in text
    code = ("import sys, argparse; import mechscope.cli.steer as s; s.register(argparse.ArgumentParser().add_subparsers()); "
            "print(sorted(m for m in sys.modules if m in ('torch', 'matplotlib', 'transformers')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_sae_for_another_model_or_hook(capsys, dirs):
    code, _, err = steer(capsys, dirs, "--latent", "1", "--value", "1", sae="other")
    assert code == 2 and "made for another model" in last_line(err)
    code, _, err = run_cli(capsys, "steer", PROMPT, "--sae", str(dirs["root"] / "missing"), "--model", dirs["model"],
                           "--latent", "1", "--value", "1")  # fmt: skip
    assert code == 2 and "no SAE at" in last_line(err)


def test_hook_the_model_lacks(capsys, dirs, tmp_path):
    """An SAE whose config names a hook this model does not have is refused before any run."""
    import mechscope

    model = mechscope.load(dirs["model"], device="cpu")
    save(make_sae(model, hook="blocks.1.hook_resid_postt"), tmp_path / "sae")
    code, _, err = run_cli(capsys, "steer", PROMPT, "--sae", str(tmp_path / "sae"), "--model", dirs["model"],
                           "--latent", "1", "--value", "1")  # fmt: skip
    assert code == 2 and "does not have" in last_line(err)
