"""``mechscope finetune`` on a tiny local model: the JSON record, the summary, the picture, resume after an
interrupt from the command line, and bad input as one line on stderr with exit code 2."""

from __future__ import annotations

import json

import pytest

from tests.clirun import last_line, run_cli
from tests.tiny import TEXT, save_tiny_dir

SMALL = ("--steps", "4", "--batch", "2", "--seq-len", "16", "--docs", "30", "--general", "0", "--lora", "2", "--precision", "float32")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_dir(tmp_path_factory.mktemp("ft") / "tiny", "gemma3")


def test_json_record_and_png(capsys, model_dir, tmp_path, one_thread):
    png = tmp_path / "loss.png"
    code, out, _ = run_cli(capsys, "finetune", "--model", model_dir, "--theme", "cooking", *SMALL, "--out",
                           str(tmp_path / "o"), "--json", "--png", str(png))  # fmt: skip
    data = json.loads(out)
    assert code == 0 and png.stat().st_size > 5000 and data["files"] == [str(tmp_path / "o"), str(png)]
    assert data["steps"] == 4 and len(data["losses"]) == 4 and all(isinstance(x, float) for x in data["losses"])
    assert data["config"]["theme"] == "cooking" and data["config"]["lora"] == 2 and data["learning_rate"] == 2e-4
    assert data["corpus"]["source"] == "theme:cooking" and data["tokens_per_s"] > 0 and data["precision"] == "float32"
    assert len(data["theme_shift"]["base"]) == len(data["theme_shift"]["prompts"]) == 6
    assert json.loads((tmp_path / "o" / "finetune.json").read_text())["losses"] == data["losses"]
    assert not (tmp_path / "o.checkpoint").exists()


def test_text_files_full_finetune_summary(capsys, model_dir, tmp_path, one_thread):
    (tmp_path / "a.txt").write_text(TEXT * 3)
    code, out, _ = run_cli(capsys, "finetune", "--model", model_dir, "--text", str(tmp_path / "a.txt"), *SMALL[:-4],
                           "--lora", "0", "--train", "all", "--lr", "1e-3", "--precision", "float32", "--out",
                           str(tmp_path / "o"))  # fmt: skip
    assert code == 0
    assert "full (all)" in out and "loss " in out and "tokens/s" in out and f"wrote {tmp_path / 'o'}" in out
    assert "theme words" not in out  # no theme, no theme shift


def test_rerun_after_interrupt_resumes(capsys, model_dir, tmp_path, one_thread, monkeypatch):
    import mechscope.diff.finetune as ft

    real = ft.finetune
    argv = ("finetune", "--model", model_dir, "--theme", "ocean", *SMALL, "--out", str(tmp_path / "o"), "--json")

    def interrupted(*args, **kw):
        return real(*args, **kw, on_step=lambda step, loss: step == 2 and (_ for _ in ()).throw(KeyboardInterrupt))

    monkeypatch.setattr(ft, "finetune", interrupted)
    code, _, err = run_cli(capsys, *argv)
    assert code == 130 and last_line(err) == "mechscope: interrupted" and (tmp_path / "o.checkpoint").is_dir()
    monkeypatch.setattr(ft, "finetune", real)
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0 and json.loads(out)["resumed_at"] == [2]
    code, out2, _ = run_cli(capsys, *argv[:-3], "--out", str(tmp_path / "straight"), "--json")
    assert json.loads(out2)["losses"] == json.loads(out)["losses"]


@pytest.mark.parametrize("argv, message", [
    (["--theme", "sea"], "unknown theme 'sea'"),
    (["--text", "nope.txt"], "no such text file or folder: 'nope.txt'"),
    (["--theme", "ocean", "--steps", "0"], "steps must be an integer ≥ 1, got 0"),
    (["--theme", "ocean", "--steps", "-5"], "steps must be an integer ≥ 1, got -5"),
    (["--theme", "ocean", "--lr", "nan"], "--lr must be a finite number"),
    (["--theme", "ocean", "--lr", "inf"], "--lr must be a finite number"),
    (["--theme", "ocean", "--lora", "4", "--train", "embeddings"], "needs --lora 0"),
    (["--theme", "ocean", "--threads", "0"], "--threads must be ≥ 1"),
    (["--theme", "ocean", "--png", "loss.jpg"], "should end in .png"),
])  # fmt: skip
def test_bad_input_is_one_line(capsys, model_dir, tmp_path, argv, message):
    code, out, err = run_cli(capsys, "finetune", "--model", model_dir, *argv, "--out", str(tmp_path / "o"))
    assert code == 2 and out == "" and message in last_line(err) and last_line(err).startswith("mechscope: error: ")
    assert not (tmp_path / "o").exists()


def test_refuses_a_folder_that_is_not_ours(capsys, model_dir, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    code, _, err = run_cli(capsys, "finetune", "--model", model_dir, "--theme", "ocean", "--out", str(tmp_path / "mine"))
    assert code == 2 and "folder mechscope did not create" in err and "--force" not in err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_empty_text_file_and_no_source(capsys, model_dir, tmp_path):
    (tmp_path / "e.txt").write_text("")
    code, _, err = run_cli(capsys, "finetune", "--model", model_dir, "--text", str(tmp_path / "e.txt"), "--out",
                           str(tmp_path / "o"))  # fmt: skip
    assert code == 2 and "holds no text" in last_line(err)
    with pytest.raises(SystemExit) as info:
        run_cli(capsys, "finetune", "--model", model_dir, "--out", str(tmp_path / "o"))
    assert info.value.code == 2 and "one of the arguments --theme --text is required" in capsys.readouterr().err
