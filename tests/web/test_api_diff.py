"""The Diffing page's route: a job whose result is diff_models(...).to_dict() (and diff_with_crosscoder's),
the tuned model loaded once and kept (one extra model at most); paths outside the runs roots and bad
input are one-line 4xx; a folder that holds no model fails the job in one line."""

from __future__ import annotations

import pytest

from mechscope.io import finite_json
from tests.web.features_fixtures import build_runs, save_tuned
from tests.web.test_api_features import same

PROMPTS = ["The ocean is deep and the sea is wide.", "My cat sleeps on the sofa all day.", "Paris is the capital of France."]


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory, tiny_gemma):
    root = tmp_path_factory.mktemp("runs")
    (root / "empty").mkdir()
    build_runs(root, tiny_gemma)
    save_tuned(root / "tuned2", layer=0)
    return root


@pytest.fixture(scope="module")
def tuned(runs_root):
    import mechscope

    return mechscope.load(str(runs_root / "tuned"), device="cpu")


def run_job(client, app, body: dict) -> dict:
    job = client.post("/api/diff", json=body)
    assert job.status_code == 200, job.text
    done = app.state.workbench.jobs.wait(job.json()["id"], 60)
    assert done["state"] == "done", done["error"]
    return done


def test_diff_equals_library(client, app, tiny_gemma, tuned, one_thread):
    from mechscope.diff.activations import DiffConfig
    from mechscope.diff.pair import tokenize_prompts
    from mechscope.diff.report import diff_models

    body = {"tuned": "tuned", "prompts": PROMPTS, "seq_len": 16, "coefs": [0, 1, 2], "generate": 2,
            "components": ["resid_post", "mlp_out"]}  # fmt: skip
    done = run_job(client, app, body)
    assert done["progress"] == {"done": 2, "total": 2, "message": "done"}
    cfg = DiffConfig(components=("resid_post", "mlp_out"), seq_len=16)
    want = diff_models(tiny_gemma, tuned, tokenize_prompts(tiny_gemma, tuned, PROMPTS, 16), cfg, coefs=[0, 1, 2],
                       generate=2, progress=False).to_dict()  # fmt: skip
    got = done["result"]
    assert same(got, finite_json(want))
    layers = {r["layer"]: r for r in got["layers"]}
    assert layers[0]["mean_norm"] == 0.0 < layers[1]["mean_norm"]  # the nudge is in layer 1's MLP
    assert len(got["norm_by_position"]) == tiny_gemma.cfg.n_layers and got["steer"][0]["target_logprob_shift"] == 0


def test_tuned_model_loaded_once_and_replaced(client, app, one_thread):
    body = {"tuned": "tuned", "prompts": PROMPTS[:1], "seq_len": 8, "coefs": [0, 1]}
    run_job(client, app, body)
    keeper = app.state.second_model
    first = keeper.model
    run_job(client, app, body)
    assert keeper.model is first  # loaded once
    got = run_job(client, app, {**body, "tuned": "tuned2"})["result"]
    assert keeper.model is not first and keeper.path.name == "tuned2" and got["tuned"] == "tuned2"
    assert {r["layer"]: r["mean_norm"] for r in got["layers"]}[0] > 0  # tuned2 differs from layer 0 on


def test_crosscoder_equals_library(client, app, tiny_gemma, tuned, one_thread):
    import torch

    from mechscope.diff.activations import DiffConfig
    from mechscope.diff.crosscoder_run import diff_with_crosscoder
    from mechscope.diff.pair import tokenize_prompts

    xc = {"width": 16, "k": 2, "tokens": 50, "cc_layer": 1, "steps_tokens": 400}  # 52 prompt rows: no corpus top-up
    done = run_job(client, app, {"tuned": "tuned", "prompts": PROMPTS, "seq_len": 16, "coefs": [0, 1], "crosscoder": True, **xc})
    assert done["progress"]["message"] == "done"
    torch.manual_seed(0)
    want = diff_with_crosscoder(tiny_gemma, tuned, tokenize_prompts(tiny_gemma, tuned, PROMPTS, 16), DiffConfig(seq_len=16),
                                coefs=[0, 1], progress=False, **xc).to_dict()  # fmt: skip
    got = done["result"]
    assert same({k: v for k, v in got.items() if k != "crosscoder"}, finite_json({k: v for k, v in want.items() if k != "crosscoder"}))
    g, w = got["crosscoder"], want["crosscoder"]
    assert (g["width"], g["k"], g["layer"], g["tokens"]) == (16, 2, 1, w["tokens"]) and len(g["rel_norms"]) == 16
    assert g["fvu"] == pytest.approx(w["fvu"], rel=1e-3, abs=1e-4) and g["counts"] == w["counts"]


def test_paths_outside_roots_and_bad_input(client, app, tmp_path):
    for path in ("../tuned", str(tmp_path), "/etc"):
        r = client.post("/api/diff", json={"tuned": path, "prompts": PROMPTS})
        assert r.status_code == 403 and "outside the workbench's --runs folders" in r.json()["error"]
    base = {"tuned": "tuned", "prompts": PROMPTS}
    cases = [
        ({"tuned": "tuned"}, "prompts"),
        ({**base, "builtin_prompts": True}, "not both"),
        ({**base, "prompts": [""]}, "empty"),
        ({**base, "generate": 65}, "limit"),
        ({**base, "crosscoder": True, "k": 40, "width": 16}, "exceed"),
        ({**base, "components": ["resid_post", "attn_in"]}, "unknown component"),
        ({**base, "tuned": "nowhere"}, "not a model folder"),
        ({**base, "coefs": []}, "coefs"),
        ({**base, "wat": 1}, "wat"),
    ]
    for body, words in cases:
        r = client.post("/api/diff", json=body)
        assert r.status_code == 422, r.text
        assert words in r.json()["error"] and "\n" not in r.json()["error"], r.json()
    job = client.post("/api/diff", json={**base, "tuned": "empty"}).json()
    failed = app.state.workbench.jobs.wait(job["id"], 30)
    assert failed["state"] == "failed" and "\n" not in failed["error"] and failed["error"]
    assert client.get("/api/info").status_code == 200
