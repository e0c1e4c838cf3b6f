"""Security: body and prompt caps, paths under the --runs roots only, no unpickling, malformed JSON, 127.0.0.1."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from mechscope.errors import AccessError
from mechscope.web.security import resolve_under_roots


def test_body_cap_413(client):
    r = client.post("/api/lens", json={"prompt": "x" * (1 << 20)})
    assert r.status_code == 413 and "larger than 1,048,576 bytes" in r.json()["error"]
    r = client.post("/api/lens", content=iter([b'{"prompt": "', b"y" * (1 << 20), b'"}']),
                    headers={"content-type": "application/json"})  # chunked: no content-length
    assert r.status_code == 413
    assert client.post("/api/lens", json={"prompt": "fine"}).status_code == 200


def test_prompt_cap_422(client):
    r = client.post("/api/lens", json={"prompt": "word " * 1000})
    assert r.status_code == 422 and "at most 4,000" in r.json()["error"]
    r = client.post("/api/run", json={"prompt": "word " * 1000})
    assert r.status_code == 422 and "at most 4,000" in r.json()["error"]
    r = client.post("/api/lens", json={"prompt": "word " * 300})  # under the cap, over the tiny model's context
    assert r.status_code == 422 and "context" in r.json()["error"]


@pytest.mark.parametrize("raw, code", [(b"{bad json", 400), (b"", 422), (b"[1, 2]", 422), (b'{"prompt": NaN}', 422),
                                       (b'"just a string"', 422), (b"\xff\xfe", 400)])  # fmt: skip
def test_malformed_json_is_one_line(client, raw, code):
    r = client.post("/api/lens", content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422) and r.status_code == code, r.text
    assert "\n" not in r.json()["error"]


def test_non_finite_interventions_refused(client):
    raw = b'{"prompt": "The capital", "interventions": {"kind": "set", "hook": "blocks.0.hook_resid_post", "value": NaN}}'
    r = client.post("/api/run", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "finite" in r.json()["error"]


def test_paths_outside_roots_refused(client, runs_root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.safetensors").write_bytes(b"x")
    link = runs_root / "link-out"
    if not link.exists():
        os.symlink(outside, link)
    assert client.get("/api/runs", params={"path": "grok-1"}).status_code == 200
    assert [e["name"] for e in client.get("/api/runs").json()["entries"]] == [runs_root.name]
    for bad in ("../", "..", "grok-1/../../", str(outside), "/etc", "link-out", "link-out/secret.safetensors", "~"):
        r = client.get("/api/runs", params={"path": bad})
        assert r.status_code == 403, (bad, r.text)
        assert "outside the workbench's --runs folders" in r.json()["error"]


def test_tensor_file_outside_roots_refused(client, runs_root, tmp_path, tiny_gemma):
    from safetensors.torch import save_file

    vec = torch.ones(tiny_gemma.cfg.d_model)
    save_file({"v": vec}, str(tmp_path / "steer.safetensors"))
    save_file({"v": vec}, str(runs_root / "steer.safetensors"))
    edit = {"kind": "add", "hook": "blocks.0.hook_resid_post", "vector": {"file": str(tmp_path / "steer.safetensors"), "key": "v"}}
    r = client.post("/api/run", json={"prompt": "The capital", "interventions": [edit]})
    assert r.status_code == 403
    for path in ("steer.safetensors", str(runs_root / "steer.safetensors")):
        edit["vector"] = {"file": path, "key": "v"}
        r = client.post("/api/run", json={"prompt": "The capital", "interventions": [edit]})
        assert r.status_code == 200, r.text
        assert r.json()["after"]["top"] != r.json()["before"]["top"]


def test_resolve_under_roots(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    assert resolve_under_roots("a", [root]) == root / "a"
    assert resolve_under_roots(str(root / "a"), [root]) == root / "a"
    for bad in ("../", "a/../..", str(tmp_path), "/", "\x00"):
        with pytest.raises(AccessError):
            resolve_under_roots(bad, [root])
    with pytest.raises(AccessError, match="reads no files"):
        resolve_under_roots("a", [])


def test_nothing_is_unpickled(client, monkeypatch, runs_root):
    def refuse(*a, **k):
        raise AssertionError("something was unpickled")

    for mod, name in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(mod, name, refuse)
    (runs_root / "evil.pkl").write_bytes(pickle.dumps({"a": 1}))
    assert client.post("/api/lens", json={"prompt": "The capital"}).status_code == 200
    assert client.post("/api/run", json={"prompt": "The capital", "generate": 2}).status_code == 200
    assert client.get("/api/runs", params={"path": "."}).status_code == 200
    edit = {"kind": "add", "hook": "blocks.0.hook_resid_post", "vector": {"file": "evil.pkl", "key": "v"}}
    r = client.post("/api/run", json={"prompt": "The capital", "interventions": [edit]})
    assert r.status_code == 422 and "not a readable safetensors file" in r.json()["error"]


def test_serve_binds_localhost_and_warns_otherwise(capsys):
    from mechscope.cli import main

    assert main(["serve", "--dry-run", "--json", "--port", "0"]) == 0
    out, err = capsys.readouterr()
    assert '"host": "127.0.0.1"' in out and err == ""
    assert main(["serve", "--dry-run", "--host", "0.0.0.0", "--port", "0"]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("mechscope: warning: serving on 0.0.0.0") and err.count("\n") == 1
