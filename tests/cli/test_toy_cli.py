"""`mechscope toy ...` and `mechscope info --params` in-process: JSON schemas and one-line errors (exit 2)."""

from __future__ import annotations

import json

import pytest

from mechscope.cli import main


pytestmark = pytest.mark.usefixtures("one_thread")


def _error(capsys, argv, match):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("mechscope: error: ") and match in err[0], err[0]


def test_superposition_json_and_png(capsys, tmp_path):
    png = tmp_path / "p.png"
    assert main(["toy", "superposition", "--instances", "2", "--steps", "300", "--json", "--png", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 5 and out["m"] == 2 and len(out["instances"]) == 2
    inst = out["instances"][0]
    assert len(inst["norms"]) == 5 and len(inst["dimensionality"]) == 5 and isinstance(inst["d_star"], float)
    assert isinstance(inst["angles_deg"], list) and png.stat().st_size > 5_000


def test_orthogonal_json(capsys):
    assert main(["toy", "orthogonal", "--n", "300", "--dim", "10", "--steps", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 300 and out["dim"] == 10 and [r["loss"] for r in out["runs"]] == ["3b1b", "maxcos"]
    for r in out["runs"]:
        assert {"loss", "max_abs_cos", "min_angle_deg", "max_angle_deg", "frac_within_89_91"} <= set(r)
        assert 0 <= r["min_angle_deg"] <= 90 <= r["max_angle_deg"] <= 180 and 0 <= r["frac_within_89_91"] <= 1


def test_memory_json(capsys):
    assert main(["toy", "memory", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["basketball"] for r in out["toy"]] == [1.0, 0.0, 0.0]


@pytest.mark.parametrize("argv, match", [
    (["toy", "superposition", "--n", "2", "--m", "3"], "n (features) must be >= m"),
    (["toy", "superposition", "--density", "0"], "density must lie in (0, 1]"),
    (["toy", "superposition", "--density", "1.2"], "density must lie in (0, 1]"),
    (["toy", "orthogonal", "--n", "100000", "--dim", "1000"], "the limit is 4,000,000"),
    (["toy", "orthogonal", "--n", "100", "--dim", "5", "--eps", "95"], "--eps"),
    (["toy", "superposition", "--png", "x.txt"], "should end in .png"),
    (["info", "--params", "--config", "gpt5"], "unknown --config 'gpt5'"),
])  # fmt: skip
def test_bad_input_is_one_line_exit_2(capsys, argv, match):
    _error(capsys, argv, match)


def test_info_params_config_json(capsys):
    assert main(["info", "--params", "--config", "gpt3-175b", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["by_component"]) == {"embed", "attn", "mlp", "norms", "unembed"}
    assert out["total"] == sum(out["by_component"].values()) and len(out["layers"]) == 96
    assert set(out["layers"][0]) == {"layer", "attn", "mlp", "norms"}
    assert main(["info", "--params", "--config", "gpt3-175b"]) == 0
    assert "603,979,776" in capsys.readouterr().out


def test_info_params_on_a_model(capsys, tmp_path):
    from tests.tiny import tiny_hf, tiny_tokenizer

    d = tmp_path / "tiny"
    model = tiny_hf("llama")
    model.save_pretrained(d)
    tiny_tokenizer().save_pretrained(d)
    assert main(["info", "--params", "--model", str(d), "--device", "cpu", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total"] == sum(p.numel() for p in model.parameters()) and len(out["layers"]) == 3
    assert main(["info", "--model", str(d), "--device", "cpu", "--json"]) == 0  # the old behaviour stays
    assert "hooks" in json.loads(capsys.readouterr().out)


def test_help_has_examples(capsys):
    for argv in (["toy", "--help"], ["toy", "superposition", "--help"], ["toy", "orthogonal", "--help"],
                 ["toy", "memory", "--help"], ["info", "--help"]):  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
        assert "Examples:" in capsys.readouterr().out
