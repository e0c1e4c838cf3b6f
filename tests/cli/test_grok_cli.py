"""`mechscope grok ...` in-process: happy path and one-line errors (exit code 2) on bad input."""

from __future__ import annotations

import json

import pytest
import torch

from mechscope.cli import main


pytestmark = pytest.mark.usefixtures("one_thread")


def _error(capsys, argv: list[str], match: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("mechscope: error: ") and match in err[0], err[0]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["grok", "train", "--out", str(out), "--p", "17", "--epochs", "30", "--quiet", "--json"]) == 0
    torch.set_num_threads(before)
    return out


def test_train_and_analyze_json(cli_run, capsys):
    capsys.readouterr()
    assert main(["grok", "train", "--out", str(cli_run), "--quiet", "--json"]) == 0  # complete: nothing to do
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] == 30 and summary["complete"] and summary["seeds"] == [0]
    assert main(["grok", "analyze", str(cli_run), "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result) == [
        "p", "final_train_acc", "final_test_acc", "test_loss_final", "key_frequencies", "neuron_fve_fraction_085",
        "epoch_train_acc_99", "epoch_test_acc_99", "phases", "restricted_loss_final", "excluded_loss_final",
    ]  # fmt: skip
    assert result["p"] == 17 and isinstance(result["key_frequencies"], list)
    assert set(result["phases"]) == {"memorisation_end", "circuit_formation_end", "cleanup_end"}
    assert 0.0 <= result["final_test_acc"] <= 1.0 and result["epoch_test_acc_99"] is None
    assert main(["grok", "analyze", str(cli_run), "--quiet"]) == 0
    assert "key frequencies" in capsys.readouterr().out


def test_help_has_examples(capsys):
    for argv in (["grok", "--help"], ["grok", "train", "--help"], ["grok", "analyze", "--help"], ["grok", "figures", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
        assert "Examples:" in capsys.readouterr().out


@pytest.mark.parametrize("frac", ["0", "1", "1.5", "-0.1"])
def test_frac_outside_open_interval(tmp_path, capsys, frac):
    _error(capsys, ["grok", "train", "--out", str(tmp_path / "r"), "--frac", frac, "--quiet"], "frac")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("p", ["2", "0", "-7"])
def test_p_below_three(tmp_path, capsys, p):
    _error(capsys, ["grok", "train", "--out", str(tmp_path / "r"), "--p", p, "--quiet"], "p must be")


def test_missing_run_directory(tmp_path, capsys):
    _error(capsys, ["grok", "analyze", str(tmp_path / "nope")], "does not exist")
    _error(capsys, ["grok", "figures", str(tmp_path / "nope")], "does not exist")
    (tmp_path / "empty").mkdir()
    _error(capsys, ["grok", "analyze", str(tmp_path / "empty")], "not a grokking run")


def test_corrupted_run_directory(tmp_path, capsys, cli_run):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(cli_run, bad)
    (bad / "config.json").write_text("{not json")
    _error(capsys, ["grok", "analyze", str(bad)], "corrupted")
    _error(capsys, ["grok", "train", "--out", str(bad), "--quiet"], "corrupted")

    shutil.rmtree(bad)
    shutil.copytree(cli_run, bad)
    ckpt = bad / "seed_0" / "checkpoints" / "epoch_000030.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    _error(capsys, ["grok", "analyze", str(bad), "--recompute", "--quiet"], "corrupted")

    shutil.rmtree(bad)
    shutil.copytree(cli_run, bad)
    (bad / "state.safetensors").unlink()
    _error(capsys, ["grok", "analyze", str(bad), "--quiet"], "state.safetensors")


def test_resuming_with_other_flags_is_refused(cli_run, capsys):
    _error(capsys, ["grok", "train", "--out", str(cli_run), "--epochs", "31", "--quiet"], "different config")
    _error(capsys, ["grok", "train", "--out", str(cli_run), "--recipe", "fast", "--quiet"], "different config")


def test_bad_seed_and_device(cli_run, tmp_path, capsys):
    _error(capsys, ["grok", "analyze", str(cli_run), "--seed", "5"], "seed 5 is not in run")
    if not torch.cuda.is_available():
        _error(capsys, ["grok", "train", "--out", str(tmp_path / "r"), "--device", "cuda", "--quiet"], "CUDA")
    _error(capsys, ["grok", "train", "--out", str(tmp_path / "r"), "--device", "tpu9", "--quiet"], "device")
    _error(capsys, ["grok", "train", "--out", str(tmp_path / "r"), "--threads", "0", "--quiet"], "threads")
