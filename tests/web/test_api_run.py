"""POST /api/run answers run_prompt(...).to_dict() without and with the interventions; GET /api/hooks."""

from __future__ import annotations

from mechscope.io import finite_json
from mechscope.model.interventions import from_json
from mechscope.model.prompt_run import run_prompt

PROMPT = "The capital of France is"
EDIT = {"kind": "clamp", "hook": "blocks.1.hook_mlp_out", "dims": [3, 7], "min": 5.0, "max": 5.0}


def test_run_equals_library(client, tiny_gemma):
    body = {"prompt": PROMPT, "interventions": [EDIT], "generate": 4, "top_k": 5}
    got = client.post("/api/run", json=body).json()
    edits = from_json(json_text([EDIT]))
    assert got["before"] == finite_json(run_prompt(tiny_gemma, PROMPT, generate=4, top_k=5).to_dict())
    assert got["after"] == finite_json(run_prompt(tiny_gemma, PROMPT, interventions=edits, generate=4, top_k=5).to_dict())
    assert got["after"]["interventions"] == [EDIT]
    assert got["before"]["top"] != got["after"]["top"]  # the edit changes the next-token distribution


def test_run_single_object_and_hook_stats(client, tiny_gemma):
    body = {"prompt": PROMPT, "interventions": {"kind": "zero", "hook": "blocks.0.hook_resid_post"},
            "hooks": ["blocks.0.hook_resid_post"]}  # fmt: skip
    got = client.post("/api/run", json=body).json()
    assert got["after"]["hooks"]["blocks.0.hook_resid_post"]["norm"] == 0.0
    assert got["before"]["hooks"]["blocks.0.hook_resid_post"]["norm"] > 0


def test_hooks_list_shapes(client, tiny_gemma):
    hooks = {h["name"]: h for h in client.get("/api/hooks").json()["hooks"]}
    assert list(hooks) == tiny_gemma.hook_names
    d, m = tiny_gemma.cfg.d_model, tiny_gemma.cfg.d_mlp
    assert hooks["blocks.1.hook_mlp_out"]["sizes"] == ["batch", "pos", d] and "dims" in hooks["blocks.1.hook_mlp_out"]["select"]
    assert hooks["blocks.1.mlp.hook_post"]["sizes"][-1] == m and "neurons" in hooks["blocks.1.mlp.hook_post"]["select"]
    assert "heads" in hooks["blocks.0.attn.hook_pattern"]["select"] and "dims" not in hooks["blocks.0.attn.hook_pattern"]["select"]


def test_bad_interventions_are_one_line_422(client):
    for ivs, words in (({"kind": "melt", "hook": "blocks.0.hook_resid_post"}, "unknown intervention kind"),
                       ({"kind": "zero", "hook": "blocks.9.hook_resid_post"}, "layer 9 out of range"),
                       ({"kind": "zero", "hook": "blocks.0.mlp.hook_post", "dims": [1]}, "neurons"),
                       ({"kind": "add", "hook": "blocks.0.hook_resid_post", "vector": [1, 2]}, "entries"),
                       ([1, 2], "JSON object")):  # fmt: skip
        r = client.post("/api/run", json={"prompt": PROMPT, "interventions": ivs})
        assert r.status_code == 422, r.text
        assert words in r.json()["error"] and "\n" not in r.json()["error"]
    r = client.post("/api/run", json={"prompt": PROMPT, "generate": 65})
    assert r.status_code == 422 and "limit" in r.json()["error"]


def json_text(obj) -> str:
    import json

    return json.dumps(obj)
