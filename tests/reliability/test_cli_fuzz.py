"""Property-based: generated command lines for every command, good values mixed with bad ones.

For each: exit code 0 or 2, no traceback, at most one stderr line, and none of the user's files
changed, removed or joined by stray files (harness.Sandbox.check). A third of the lines use only good
values, so commands really run and write; output paths are always drawn among the user's folders and
files too. Examples are derandomised (CI runs the same cases every time); the counts are printed in
pytest's summary.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.harness import floats, good_or, hooks, ints, junk, models, options, paths, prompts

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])  # fmt: skip

GOOD_EDITS = [
    json.dumps({"kind": "set", "hook": "blocks.1.hook_resid_post", "dims": [0], "value": 5.0}),
    json.dumps({"kind": "clamp", "hook": "blocks.0.mlp.hook_post", "neurons": [3], "min": -1, "max": 1}),
    json.dumps({"kind": "zero", "hook": "blocks.1.attn.hook_z", "heads": [1]}),
]
BAD_EDITS = st.one_of(st.sampled_from([
    '[1,2]', '{"kind": "set", "value": "abc"}', '{"kind": "zero", "hook": 5}', '[' * 5000, "missing.json",
    '{"kind": "set", "hook": "blocks.1.hook_resid_post", "dims": "12"}', '{"kind": "add", "hook": "blocks.0.hook_resid_post", '
    '"vector": {"file": "nope.safetensors", "key": "v"}}',
]), junk)  # fmt: skip
small = lambda lo, hi: st.integers(lo, hi).map(str)  # noqa: E731


def outputs(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in flags]


@FUZZ
@given(data=st.data())
def test_info_check_run(box, data):
    cmd = data.draw(st.sampled_from(["info", "check", "run"]))
    argv = [cmd, "--model", data.draw(models(box))]
    if cmd == "run":
        argv.insert(1, data.draw(prompts))
        argv += data.draw(options({
            "--hook": good_or(["blocks.1.hook_resid_post", "blocks.0.mlp.hook_post", "*resid_post"], hooks),
            "--position": good_or(small(-3, 2), ints), "--intervene": good_or(GOOD_EDITS, BAD_EDITS),
            "--generate": good_or(small(0, 4), ints), "--top-k": good_or(small(1, 20), ints), "--json": None,
        }))  # fmt: skip
    else:
        argv += data.draw(options({"--json": None, "--device": good_or(["cpu", "auto"], st.sampled_from(["cuda:7", "tpu", ""])),
                                   **({"--params": None} if cmd == "info" else {})}))  # fmt: skip
    box.check(box.run(argv), [])


@FUZZ
@given(data=st.data())
def test_lens_read(box, data):
    argv = ["lens", data.draw(prompts), "--model", data.draw(models(box))]
    argv += data.draw(options({
        "--top-k": good_or(small(1, 12), ints), "--position": good_or(small(-2, 1), ints),
        "--target": good_or([" capital", " the"], st.sampled_from(["Paris!", "", "\udcff"])),
        "--png": paths(box, ".png"), "--html": paths(box, ".html"), "--vectors": paths(box, ".png"),
        "--sublayers": None, "--json": None, "--lens": good_or(["logit"], st.sampled_from(["tuned", "x"])),
        "--color": good_or(["never", "always"]),
    }))  # fmt: skip
    box.check(box.run(argv), outputs(argv, ("--png", "--html", "--vectors")))


@FUZZ
@given(data=st.data())
def test_lens_train_and_eval_tuned(box, data):
    action = data.draw(st.sampled_from(["train-tuned", "train-tuned", "eval-tuned"]))
    corpus = data.draw(st.one_of(st.just(str(box.root / "corpus.txt")), st.sampled_from(
        [str(box.root / "mydocs"), str(box.root / "x.txt"), str(box.root / "nothing*.txt"), ""])))  # fmt: skip
    argv = ["lens", action, "--model", data.draw(models(box)), "--corpus", corpus, "--seq-len", "16"]
    spec = {"--tokens": good_or(["128", "256"], ints), "--json": None, "--sublayers": None,
            "--heldout-fraction": good_or(["0.5"], floats)}  # fmt: skip
    if action == "train-tuned":
        spec.update({"--out": paths(box), "--lr": good_or(["0.001", "0.01"], floats),
                     "--contexts-per-step": good_or(small(1, 2), ints), "--positions-per-step": good_or(small(1, 8), ints),
                     "--checkpoint-every": good_or(small(1, 3), ints), "--fresh": None,
                     "--precision": good_or(["float32", "bfloat16"], st.just("bf16"))})  # fmt: skip
    else:
        spec.update({"--png": paths(box, ".png"), "--lens-file": paths(box)})
    argv += data.draw(options(spec))
    outs = outputs(argv, ("--out", "--png"))
    box.check(box.run(argv), outs + [o.rstrip("/") + ".checkpoint" for o in outputs(argv, ("--out",))])


@FUZZ
@given(data=st.data())
def test_grok(box, data):
    action = data.draw(st.sampled_from(["train", "train", "analyze", "figures"]))
    runs = [str(box.root / f"run{i}") for i in range(3)]
    run_dirs = st.one_of(st.sampled_from(runs * 3), paths(box))
    if action == "train":
        out = data.draw(run_dirs)
        # mostly runs that really train (and write), sometimes refused sizes
        epochs = st.sampled_from(["3", "8", "20", "3", "8", "20", "0", "-1", "x", "1000000000000"])
        p = st.sampled_from(["5", "7", "11", "13", "5", "7", "2", "3000", "1000000", "x"])
        argv = ["grok", "train", "--out", out, "--epochs", data.draw(epochs), "--p", data.draw(p)]
        argv += data.draw(options({
            "--seed": good_or(small(0, 3), ints), "--seeds": good_or(["1", "2"], st.sampled_from(["0", "-1", "x"])),
            "--frac": good_or(["0.3", "0.5"], floats), "--operation": good_or(["add", "multiply"], st.just("pow")),
            "--quiet": None, "--json": None, "--device": good_or(["cpu"], st.sampled_from(["cuda", "x"])),
            "--threads": good_or(["1", "2"], st.sampled_from(["0", "-4", "4096"])),
            "--recipe": good_or(["paper", "fast"], st.just("x")),
        }))  # fmt: skip
        box.check(box.run(argv), [out])
        return
    argv = ["grok", action, data.draw(run_dirs)]
    spec = {"--seed": good_or(small(0, 1), ints), "--json": None, "--quiet": None, "--threads": good_or(["1"], st.just("0"))}
    if action == "figures":
        spec.update({"--out": paths(box), "--no-animation": None})
    else:
        spec["--recompute"] = None
    argv += data.draw(options(spec))
    figs = outputs(argv, ("--out",)) or ([argv[2] + "/figures"] if action == "figures" else [])
    box.check(box.run(argv), figs + [argv[2]])  # analysis results are cached in the run directory


@settings(FUZZ, max_examples=15)
@given(data=st.data())
def test_tour(box, data):
    only = data.draw(st.lists(st.sampled_from(["basics", "lens"]), min_size=1, max_size=2, unique=True))
    argv = ["tour", "--model", data.draw(models(box)), *[a for s in only for a in ("--only", s)]]
    argv += data.draw(options({"--out": paths(box), "--json": None, "--force": None}))
    box.check(box.run(argv), outputs(argv, ("--out",)) or ["tour"])


@FUZZ
@given(data=st.data())
def test_circuits(box, data):
    cmd = data.draw(st.sampled_from(["dla", "patch", "trace", "top-examples"]))
    answers = good_or([" capital", " the", " of"], st.sampled_from(["Paris!", "", "two words", "\udcff"]))
    argv = [cmd, "--model", data.draw(models(box))]
    if cmd == "dla":
        argv += [data.draw(prompts), "--answer", data.draw(answers[0])]
        spec = {"--wrong": answers, "--position": good_or(small(-2, 1), ints), "--top-k": good_or(small(1, 5), ints),
                "--png": paths(box, ".png"), "--json": None}  # fmt: skip
    elif cmd == "patch":
        clean = data.draw(st.sampled_from(["The capital of France is", "Hi there"]))
        corrupt = data.draw(st.one_of(st.sampled_from(["The capital of Italy is", "Hi here"]), prompts))
        argv += ["--clean", clean, "--corrupt", corrupt, "--answer", data.draw(answers[0])]
        spec = {"--wrong": answers, "--what": good_or(["resid", "resid,attn,mlp", "heads"], st.sampled_from(["x", ""])),
                "--method": good_or(["exact", "attribution"], st.just("x")), "--align": good_or(["left", "right"]),
                "--batch-size": good_or(small(1, 8), ints), "--png": paths(box, ".png"), "--json": None}  # fmt: skip
    elif cmd == "trace":
        argv += ["The capital of France is", "--subject", data.draw(st.sampled_from(["France", "capital", "Rome", ""])),
                 "--answer", data.draw(answers[0])]  # fmt: skip
        spec = {"--samples": good_or(small(1, 3), ints), "--window": good_or(small(1, 3), ints),
                "--noise": good_or(["3", "1.5"], floats), "--seed": good_or(small(0, 2), ints),
                "--batch-size": good_or(small(1, 8), ints), "--png": paths(box, ".png"), "--json": None}  # fmt: skip
    else:
        argv += ["--hook", data.draw(good_or(["blocks.1.mlp.hook_post", "blocks.0.hook_resid_post"], hooks)[0]),
                 "--unit", data.draw(st.one_of(small(0, 5), ints)), "--corpus", str(box.root / "corpus.txt")]
        spec = {"--tokens": good_or(["256", "512"], ints), "--k": good_or(small(1, 5), ints),
                "--seq-len": good_or(["16", "32"], ints), "--batch-size": good_or(small(1, 4), ints),
                "--cache-dir": paths(box), "--html": paths(box, ".html"), "--json": None}  # fmt: skip
    argv += data.draw(options(spec))
    box.check(box.run(argv), outputs(argv, ("--png", "--html", "--cache-dir")))


@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_toy(box, data):
    cmd = data.draw(st.sampled_from(["superposition", "orthogonal", "memory"]))
    argv = ["toy", cmd]
    if cmd != "memory":  # sizes always given: the defaults (10,000 vectors, long training) take a minute
        argv += ["--n", data.draw(st.one_of(small(2, 30), ints)), "--steps", data.draw(st.one_of(small(1, 30), ints))]
    if cmd == "superposition":
        spec = {"--m": good_or(small(1, 3), ints),
                "--density": good_or(["0.05", "0.5", "1"], floats), "--instances": good_or(small(1, 3), ints),
                "--importance": good_or(["0.9", "1"], floats),
                "--png": paths(box, ".png"), "--heatmap": paths(box, ".png"), "--json": None, "--quiet": None}  # fmt: skip
    elif cmd == "orthogonal":
        spec = {"--dim": good_or(small(2, 10), ints), "--loss": good_or(["3b1b", "maxcos", "both"], st.just("x")),
                "--eps": good_or(["1", "0.5"], floats), "--png": paths(box, ".png"), "--capacity": paths(box, ".png"),
                "--json": None, "--quiet": None}  # fmt: skip
    else:
        spec = {"--png": paths(box, ".png"), "--json": None}
    argv += data.draw(options(spec))
    box.check(box.run(argv), outputs(argv, ("--png", "--heatmap", "--capacity")))
