"""``mechscope dla | patch | trace | top-examples`` on a tiny local model: JSON schemas, pictures,
and bad input as one line on stderr with exit code 2."""

from __future__ import annotations

import json

import pytest

from tests.clirun import run_cli, last_line
from tests.tiny import save_tiny_corpus, save_tiny_dir

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_dir(tmp_path_factory.mktemp("tiny-gemma3"), "gemma3")




def test_dla_json_and_png(capsys, tiny_dir, tmp_path):
    png = tmp_path / "dla.png"
    code, out, _ = run_cli(capsys, "dla", PROMPT, "--answer", " Paris", "--wrong", " reliability", "--model", tiny_dir,
                           "--json", "--png", str(png))  # fmt: skip
    data = json.loads(out)
    assert code == 0 and png.stat().st_size > 1000
    assert data["tokens"][0] == "<bos>" and abs(data["components_sum"] - data["total"]) < 1e-4
    assert len(data["layers"]["attn"]) == 3 and len(data["heads"]) == 3 and len(data["heads"][0]) == 4
    code, out, _ = run_cli(capsys, "dla", PROMPT, "--answer", " Paris", "--model", tiny_dir)
    assert code == 0 and "sum of components" in out


@pytest.mark.parametrize("argv, message", [
    (["dla", PROMPT, "--answer", " Parisxyzzy"], "is not a single token"),
    (["dla", PROMPT, "--answer", " Paris", "--position", "40"], "position 40 out of range"),
    (["dla", PROMPT, "--answer", " Paris", "--png", "out.txt"], "should end in .png"),
])  # fmt: skip
def test_dla_bad_input(capsys, tiny_dir, argv, message):
    code, _, err = run_cli(capsys, *argv, "--model", tiny_dir)
    assert code == 2 and message in last_line(err) and last_line(err).startswith("mechscope: error:")


CLEAN, CORRUPT = "The capital of France is", "The capital of Wikipedia is"


@pytest.mark.parametrize("method", ["exact", "attribution"])
def test_patch_json_schema_and_png(capsys, tiny_dir, tmp_path, method):
    png = tmp_path / "patch.png"
    code, out, _ = run_cli(capsys, "patch", "--clean", CLEAN, "--corrupt", CORRUPT, "--answer", " Paris", "--wrong",
                           " reliability", "--what", "resid,attn,mlp,heads", "--method", method, "--model", tiny_dir,
                           "--json", "--png", str(png))  # fmt: skip
    data = json.loads(out)
    assert code == 0 and png.stat().st_size > 1000
    assert isinstance(data["tokens"], list) and all(isinstance(t, str) for t in data["tokens"])
    assert isinstance(data["clean_logit_diff"], float) and isinstance(data["corrupt_logit_diff"], float)
    assert set(data["effects"]) == {"resid_pre", "attn_out", "mlp_out"}
    for grid in data["effects"].values():
        assert len(grid) == 3 and all(len(row) == len(data["tokens"]) for row in grid)
    assert len(data["heads"]) == 3 and len(data["heads"][0]) == 4
    assert data["method"] == method


def test_patch_table(capsys, tiny_dir):
    code, out, _ = run_cli(capsys, "patch", "--clean", CLEAN, "--corrupt", CORRUPT, "--answer", " Paris",
                           "--model", tiny_dir)  # fmt: skip
    assert code == 0 and "resid_pre" in out and "mlp_out" in out


@pytest.mark.parametrize("argv, message", [
    (["--answer", " Parisxyzzy"], "is not a single token"),
    (["--answer", " Paris", "--clean", "The capital of the France is"], "pass --align left|right"),
    (["--answer", " Paris", "--what", "resid,neurons"], "--what takes"),
    (["--answer", " Paris", "--grad-drop", "x"], "use it with --method attribution"),
])  # fmt: skip
def test_patch_bad_input(capsys, tiny_dir, argv, message):
    base = {"--clean": CLEAN, "--corrupt": CORRUPT}
    for flag, value in zip(argv[::2], argv[1::2]):
        base[flag] = value
    args = [x for kv in base.items() for x in kv if x != "x"]  # "x": a flag without a value
    code, _, err = run_cli(capsys, "patch", *args, "--model", tiny_dir)
    assert code == 2 and message in last_line(err) and last_line(err).startswith("mechscope: error:")


def test_trace_json_schema_and_png(capsys, tiny_dir, tmp_path):
    png = tmp_path / "trace.png"
    code, out, _ = run_cli(capsys, "trace", PROMPT, "--subject", "France", "--answer", " Paris", "--samples", "2",
                           "--window", "2", "--model", tiny_dir, "--json", "--png", str(png))  # fmt: skip
    data = json.loads(out)
    assert code == 0 and png.stat().st_size > 1000
    assert data["tokens"][data["subject_positions"][0]] == " France"
    assert isinstance(data["clean_prob"], float) and isinstance(data["corrupted_prob"], float)
    assert set(data["effects"]) == {"resid", "mlp", "attn"}
    assert all(len(g) == 3 and len(g[0]) == len(data["tokens"]) for g in data["effects"].values())
    code, out, _ = run_cli(capsys, "trace", PROMPT, "--subject", "France", "--answer", " Paris", "--samples", "1",
                           "--model", tiny_dir)  # fmt: skip
    assert code == 0 and "indirect effect" in out


@pytest.mark.parametrize("argv, message", [
    ([PROMPT, "--subject", "Germany", "--answer", " Paris"], "does not occur in the prompt"),
    ([PROMPT, "--subject", "France", "--answer", " Parisxyzzy"], "is not a single token"),
    ([PROMPT, "--subject", "France"], "give PROMPT, --subject and --answer"),
    ([PROMPT, "--subject", "France", "--answer", " Paris", "--samples", "0"], "samples must be a positive integer"),
])  # fmt: skip
def test_trace_bad_input(capsys, tiny_dir, argv, message):
    code, _, err = run_cli(capsys, "trace", *argv, "--model", tiny_dir)
    assert code == 2 and message in last_line(err)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return save_tiny_corpus(tmp_path_factory.mktemp("corpus"), 6)


def test_top_examples_json_and_html(capsys, tiny_dir, corpus, tmp_path):
    html = tmp_path / "unit.html"
    common = ["--corpus", corpus, "--seq-len", "16", "--tokens", "320", "--k", "3", "--model", tiny_dir,
              "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    code, out, _ = run_cli(capsys, "top-examples", "--hook", "blocks.1.mlp.hook_post", "--unit", "5", *common,
                           "--json", "--html", str(html))  # fmt: skip
    data = json.loads(out)
    assert code == 0 and "<span" in html.read_text()
    assert data["unit"] == 5 and len(data["top"]) == 3 and len(data["bottom"]) == 3 and not data["cached"]
    ex = data["top"][0]
    assert ex["tokens"][0] == "<bos>" and len(ex["tokens"]) == len(ex["activations"]) == 16
    assert ex["activation"] == pytest.approx(ex["activations"][ex["position"]], abs=1e-4)
    code, out, _ = run_cli(capsys, "top-examples", "--hook", "blocks.1.mlp.hook_post", "--unit", "6", *common)
    assert code == 0 and "cached" in out and "top 3" in out


@pytest.mark.parametrize("argv, message", [
    (["--hook", "blocks.1.mlp.hook_post", "--unit", "96"], "unit 96 out of range"),
    (["--hook", "blocks.1.mlp.hook_poost", "--unit", "0"], "unknown hook name"),
    (["--hook", "blocks.1.mlp.hook_post", "--unit", "0", "--k", "0"], "k must be a positive integer"),
])  # fmt: skip
def test_top_examples_bad_input(capsys, tiny_dir, argv, message, tmp_path):
    code, _, err = run_cli(capsys, "top-examples", *argv, "--model", tiny_dir, "--cache-dir", str(tmp_path / "c"))
    assert code == 2 and message in last_line(err)


def test_patch_align_gives_strict_json_nulls(capsys, tiny_dir):
    code, out, _ = run_cli(capsys, "patch", "--clean", "The capital of the France is", "--corrupt", CORRUPT,
                           "--answer", " Paris", "--align", "left", "--what", "resid", "--model", tiny_dir, "--json")  # fmt: skip
    assert code == 0 and "NaN" not in out
    data = json.loads(out)
    assert data["align"] == "left" and len(data["tokens"]) == len(data["corrupt_tokens"]) + 1
    assert all(row[-1] is None for row in data["effects"]["resid_pre"])
