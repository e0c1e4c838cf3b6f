"""``mechscope lens``: the grid, JSON schema, pictures, train-tuned / eval-tuned on a tiny local model;
bad input is one line on stderr with exit code 2."""

from __future__ import annotations

import json

import pytest

from mechscope.cli import main
from tests.clirun import run_cli, last_line
from tests.tiny import save_tiny_corpus, save_tiny_dir

PROMPT = "The reliability of Wikipedia is very"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_dir(tmp_path_factory.mktemp("tiny-gemma2"), "gemma2")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return save_tiny_corpus(tmp_path_factory.mktemp("corpus"), 8)




def test_json_schema(capsys, tiny_dir):
    code, out, _ = run_cli(capsys, "lens", PROMPT, "--model", tiny_dir, "--json", "--top-k", "3")
    data = json.loads(out)
    assert code == 0
    assert isinstance(data["model"], str) and data["tokens"][0] == "<bos>" and len(data["tokens"]) == len(data["token_ids"])
    assert [r["label"] for r in data["rows"]] == ["embed", "L0", "L1", "L2"]
    assert [r["layer"] for r in data["rows"]] == [-1, 0, 1, 2]
    for row in data["rows"]:
        assert isinstance(row["label"], str) and isinstance(row["layer"], int)
        assert len(row["cells"]) == len(data["tokens"])
        for p, cell in enumerate(row["cells"]):
            assert len(cell["top"]) == 3
            assert all(set(t) == {"token", "id", "prob"} and isinstance(t["id"], int) for t in cell["top"])
            assert cell["top"][0]["prob"] >= cell["top"][-1]["prob"]
            assert isinstance(cell["entropy"], float) and cell["kl_to_final"] >= 0
            last = p == len(data["tokens"]) - 1
            assert (cell["next_token_prob"] is None) == last and (cell["next_token_rank"] is None) == last
    assert all(c["kl_to_final"] == 0 for c in data["rows"][-1]["cells"])
    assert data["position"] == len(data["tokens"]) - 1


def test_terminal_output_and_pictures(capsys, tiny_dir, tmp_path):
    png, page, vec = tmp_path / "l.png", tmp_path / "l.html", tmp_path / "v.png"
    code, out, _ = run_cli(capsys, "lens", PROMPT, "--model", tiny_dir, "--sublayers", "--position", "2",
                           "--png", str(png), "--html", str(page), "--vectors", str(vec), "--target", "<bos>")  # fmt: skip
    assert code == 0
    assert "L0.attn" in out and "L2.mlp" in out and "top-10 at position 2" in out
    assert "target '<bos>'" in out and f"wrote {png}" in out
    assert png.stat().st_size > 10_000 and vec.stat().st_size > 5_000 and "<script>" in page.read_text()


def test_train_then_read_and_evaluate_tuned(capsys, tiny_dir, corpus, tmp_path):
    lens_dir = tmp_path / "lens"
    code, out, err = run_cli(capsys, "lens", "train-tuned", "--model", tiny_dir, "--corpus", corpus, "--tokens", "1024",
                             "--seq-len", "32", "--positions-per-step", "32", "--out", str(lens_dir), "--json")  # fmt: skip
    assert code == 0, err
    info = json.loads(out)
    assert info["path"] == str(lens_dir) and info["tokens"] == 1024 and info["train"]["corpus"]["seq_len"] == 32
    code, out, _ = run_cli(capsys, "lens", PROMPT, "--model", tiny_dir, "--lens", "tuned", "--lens-file", str(lens_dir),
                           "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["lens"] == "tuned"
    code, out, err = run_cli(capsys, "lens", "eval-tuned", "--model", tiny_dir, "--corpus", corpus, "--seq-len", "32",
                             "--tokens", "256", "--lens-file", str(lens_dir), "--json", "--png", str(tmp_path / "kl.png"))  # fmt: skip
    assert code == 0, err
    ev = json.loads(out)
    assert len(ev["rows"]) == 3 and ev["tokens"] > 0 and {"logit_kl", "tuned_kl"} <= set(ev["rows"][0])
    assert ev["files"] == [str(tmp_path / "kl.png")] and (tmp_path / "kl.png").stat().st_size > 10_000


def test_train_tuned_resumes_refuses_another_config_and_starts_fresh(capsys, tiny_dir, corpus, tmp_path):
    lens_dir = tmp_path / "lens"
    argv = ["lens", "train-tuned", "--model", tiny_dir, "--corpus", corpus, "--tokens", "1024", "--seq-len", "32",
            "--positions-per-step", "32", "--out", str(lens_dir), "--checkpoint-every", "3"]  # fmt: skip
    code, out, err = run_cli(capsys, *argv, "--json")
    first = json.loads(out)
    assert code == 0, err
    assert first["checkpoint"] == f"{lens_dir}.checkpoint" and first["resumed_at_steps"] == []
    assert (tmp_path / "lens.checkpoint" / "checkpoint.json").is_file()
    code, out, err = run_cli(capsys, *argv)  # the same command again: the finished checkpoint is reused
    assert code == 0 and f"resumed from the checkpoint at step {first['steps']}" in out
    code, out, err = run_cli(capsys, *argv, "--lr", "0.003")
    assert code == 2 and out == "" and "Traceback" not in err
    line = last_line(err)
    assert line.startswith("mechscope: error: the checkpoint at ") and "another training setting lr=0.001, not 0.003" in line
    assert "--fresh" in line
    code, out, err = run_cli(capsys, *argv, "--lr", "0.003", "--fresh", "--json")
    assert code == 0 and json.loads(out)["resumed_at_steps"] == []
    code, _, err = run_cli(capsys, *argv, "--checkpoint-every", "0")
    assert code == 2 and "--checkpoint-every must be a positive number of steps" in last_line(err)


@pytest.mark.parametrize("argv, message", [
    (["--top-k", "0"], "top_k must be an integer between 1 and the vocabulary size, got 0"),
    (["--top-k", "100000"], "top_k must be an integer between 1 and the vocabulary size 400"),
    (["--position", "50"], "position 50 out of range: the prompt has"),
    (["--target", " reliability of"], "is not a single token for this model"),
    (["--lens", "tuned", "--lens-file", "/nonexistent/lens"], "no tuned lens at /nonexistent/lens"),
])  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(capsys, tiny_dir, argv, message):
    code, out, err = run_cli(capsys, "lens", PROMPT, "--model", tiny_dir, *argv)
    assert code == 2 and out == "" and "Traceback" not in err
    line = last_line(err)
    assert line.startswith("mechscope: error: ") and message in line and err.rstrip("\n").count("\n") == 0


def test_tuned_lens_of_another_model_is_refused(capsys, tiny_dir, tmp_path):
    import mechscope
    from mechscope.lens.tuned import TunedLens
    from tests.tiny import tiny_model

    other = tiny_model("gemma2", seed=3)
    TunedLens.for_model(other).save(tmp_path / "other")
    assert mechscope.load(tiny_dir).fingerprint != other.fingerprint
    code, _, err = run_cli(capsys, "lens", PROMPT, "--model", tiny_dir, "--lens", "tuned", "--lens-file",
                           str(tmp_path / "other"))  # fmt: skip
    assert code == 2 and "was trained for 'tiny-gemma2'" in last_line(err) and "Traceback" not in err


def test_help_documents_actions(capsys):
    with pytest.raises(SystemExit):
        main(["lens", "--help"])
    out = capsys.readouterr().out
    assert "train-tuned" in out and "eval-tuned" in out and "--sublayers" in out and "Examples:" in out
