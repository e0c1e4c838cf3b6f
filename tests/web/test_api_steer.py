"""The Steering page's routes answer the library's to_dict(): SAE latent steering (steer_latent), steering
vectors made (make_vector) and applied (apply_vector); paths outside the runs roots and bad input are
one-line 4xx."""

from __future__ import annotations

import pytest

from mechscope.io import finite_json
from tests.web.features_fixtures import HOOK, build_runs
from tests.web.test_api_features import same

PROMPT = "The capital of France is"
POS = ["I doubt it will rain today.", "Perhaps the shop is open.", "It might be true, I am not sure."]
NEG = ["I know it will rain today.", "The shop is open.", "It is true, I am sure."]


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory, tiny_gemma):
    root = tmp_path_factory.mktemp("runs")
    build_runs(root, tiny_gemma)
    return root


@pytest.fixture(scope="module")
def sae(runs_root, tiny_gemma):
    from mechscope.sae.artifact import load

    return load(runs_root / "sae", tiny_gemma)


def test_steer_latent_equals_library(client, tiny_gemma, sae):
    from mechscope.steer.feature import steer_latent

    for body in ({"values": [0, 8], "generate": 4}, {"values": [0, 3], "mode": "clamp", "generate": 0, "top_k": 5}):
        got = client.post("/api/steer", json={"sae": "sae", "latent": 3, "prompt": PROMPT, **body}).json()
        kw = {k: v for k, v in body.items() if k != "values"}
        want = steer_latent(tiny_gemma, sae, 3, PROMPT, body["values"], **kw).to_dict()
        assert same(got, finite_json(want))
    assert got["mode"] == "clamp" and [d["value"] for d in got["doses"]] == [0.0, 3.0]
    big = client.post("/api/steer", json={"sae": "sae", "latent": 3, "prompt": PROMPT, "values": [0, 40], "generate": 3}).json()
    assert big["doses"][0]["kl"] == 0.0 and big["doses"][1]["kl"] > 0  # the dose changes the next token


def test_vector_make_and_apply_equal_library(client, tiny_gemma, runs_root):
    from mechscope.steer.apply import apply_vector
    from mechscope.steer.vector import load_vector, make_vector

    made = client.post("/api/vector/make", json={"hook": HOOK, "pos": POS, "neg": NEG, "save": "vecs/doubt"}).json()
    vec = make_vector(tiny_gemma, POS, NEG, HOOK)
    vec.meta["source"] = "workbench"
    assert same({k: v for k, v in made.items() if k not in ("id", "out")}, finite_json(vec.to_dict()))
    assert made["out"] == str(runs_root / "vecs" / "doubt") and made["id"].startswith("v")
    body = {"prompt": PROMPT, "coefs": [0, 1, 4], "targets": ["Paris"], "generate": 3}
    got = client.post("/api/vector/apply", json={"vector": made["id"], **body}).json()
    want = apply_vector(tiny_gemma, vec, PROMPT, [0, 1, 4], targets=["Paris"], generate=3).to_dict()
    assert same(got, finite_json(want)) and len(got["coefs"]) == 3 and got["coefs"][0]["target_logprob_shift"] == 0
    saved = client.post("/api/vector/apply", json={"vector": "vecs/doubt", **body}).json()
    assert same(saved, got)
    assert same(load_vector(runs_root / "vecs" / "doubt").to_dict(), vec.to_dict())


def test_builtin_set(client, tiny_gemma):
    from mechscope.steer.builtin import builtin_set
    from mechscope.steer.vector import make_vector

    sets = client.get("/api/vector/builtin").json()["sets"]
    pos, neg = builtin_set("doubt")
    assert sets["doubt"] == {"pos": pos, "neg": neg}
    made = client.post("/api/vector/make", json={"hook": HOOK, "builtin": "doubt", "method": "pca", "position": "last"}).json()
    want = make_vector(tiny_gemma, pos, neg, HOOK, method="pca", position="last").to_dict()
    assert made["meta"]["source"] == "builtin:doubt" and made["shape"] == [tiny_gemma.cfg.d_model]
    assert made["norm"] == pytest.approx(want["norm"], rel=1e-5)


def test_paths_outside_roots_are_refused(client, tmp_path):
    for path in ("../sae", str(tmp_path), "/etc"):
        for r in (client.post("/api/steer", json={"sae": path, "latent": 0, "prompt": PROMPT, "values": [1]}),
                  client.post("/api/vector/make", json={"hook": HOOK, "pos": POS, "neg": NEG, "save": path + "/v"}),
                  client.post("/api/vector/apply", json={"vector": path, "prompt": PROMPT, "coefs": [1]})):  # fmt: skip
            assert r.status_code == 403, r.text
            assert "outside the workbench's --runs folders" in r.json()["error"]


def test_bad_input_is_one_line_4xx(client):
    steer = {"sae": "sae", "latent": 0, "prompt": PROMPT, "values": [1]}
    cases = [
        (client.post("/api/steer", json={**steer, "latent": 32}), 422, "out of range"),
        (client.post("/api/steer", json={**steer, "values": []}), 422, "values"),
        (client.post("/api/steer", json={**steer, "mode": "melt"}), 422, "mode"),
        (client.post("/api/steer", json={**steer, "generate": 65}), 422, "limit"),
        (client.post("/api/steer", json={**steer, "prompt": ""}), 422, "empty"),
        (client.post("/api/vector/make", json={"hook": HOOK, "pos": POS}), 422, "pos and neg"),
        (client.post("/api/vector/make", json={"hook": HOOK, "builtin": "hope"}), 422, "unknown built-in"),
        (client.post("/api/vector/make", json={"hook": HOOK, "builtin": "doubt", "pos": POS}), 422, "not both"),
        (client.post("/api/vector/make", json={"hook": "blocks.0.attn.hook_pattern", "pos": POS, "neg": NEG}), 422, "d_model"),
        (client.post("/api/vector/make", json={"hook": HOOK, "pos": POS, "neg": NEG[:2], "method": "pca"}), 422, "equal counts"),
        (client.post("/api/vector/apply", json={"vector": "v999", "prompt": PROMPT, "coefs": [1]}), 404, "v999"),
        (client.post("/api/vector/apply", json={"vector": "sae", "prompt": PROMPT, "coefs": [1]}), 404, "not a steering-vector"),
    ]  # fmt: skip
    for r, code, words in cases:
        assert r.status_code == code, r.text
        err = r.json()["error"]
        assert words in err and "\n" not in err, err
