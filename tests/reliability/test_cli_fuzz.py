"""Property-based: generated command lines for every command, good values mixed with bad ones.

For each: exit code 0 or 2, no traceback, at most one stderr line, and none of the user's files
changed, removed or joined by stray files (harness.Sandbox.check). Examples are derandomised, so CI
runs the same cases every time; the counts are printed in pytest's summary.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.harness import floats, hooks, ints, junk, models, options, paths, prompts

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])  # fmt: skip

interventions = st.one_of(
    st.sampled_from([
        json.dumps({"kind": "set", "hook": "blocks.1.hook_resid_post", "dims": [0], "value": 5.0}),
        json.dumps({"kind": "clamp", "hook": "blocks.0.mlp.hook_post", "neurons": [3], "min": -1, "max": 1}),
        json.dumps({"kind": "zero", "hook": "blocks.1.attn.hook_z", "heads": [1]}),
        '[1,2]', '{"kind": "set", "value": "abc"}', '{"kind": "zero", "hook": 5}', '[' * 5000, "missing.json",
        '{"kind": "set", "hook": "blocks.1.hook_resid_post", "dims": "12"}',
    ]),
    junk,
)  # fmt: skip


def outputs(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in flags]


@FUZZ
@given(data=st.data())
def test_info_check_run(box, data):
    cmd = data.draw(st.sampled_from(["info", "check", "run"]))
    argv = [cmd, "--model", data.draw(models(box))]
    if cmd == "run":
        argv.insert(1, data.draw(prompts))
        argv += data.draw(options({"--hook": hooks, "--position": ints, "--intervene": interventions,
                                   "--generate": ints, "--top-k": ints, "--json": None}))  # fmt: skip
    else:
        argv += data.draw(options({"--json": None, "--device": st.sampled_from(["cpu", "auto", "cuda:7", "tpu", ""])}))
    box.check(box.run(argv), [])


@FUZZ
@given(data=st.data())
def test_lens_read(box, data):
    argv = ["lens", data.draw(prompts), "--model", data.draw(models(box))]
    argv += data.draw(options({
        "--top-k": ints, "--position": ints, "--target": st.one_of(st.sampled_from([" capital", " the", "Paris!"]), junk),
        "--png": paths(box, ".png"), "--html": paths(box, ".html"), "--vectors": paths(box, ".png"),
        "--sublayers": None, "--json": None, "--lens": st.sampled_from(["logit", "tuned", "x"]),
        "--lens-file": paths(box),
    }))  # fmt: skip
    box.check(box.run(argv), outputs(argv, ("--png", "--html", "--vectors")))


@FUZZ
@given(data=st.data())
def test_lens_train_and_eval_tuned(box, data):
    action = data.draw(st.sampled_from(["train-tuned", "eval-tuned"]))
    corpus = data.draw(st.one_of(st.just(str(box.root / "corpus.txt")), st.sampled_from(
        [str(box.root / "mydocs"), str(box.root / "x.txt"), str(box.root / "nothing*.txt"), ""])))  # fmt: skip
    argv = ["lens", action, "--model", data.draw(models(box)), "--corpus", corpus]
    spec = {"--tokens": st.one_of(st.sampled_from(["256", "512"]), ints), "--seq-len": st.one_of(st.just("16"), ints),
            "--json": None, "--sublayers": None}  # fmt: skip
    if action == "train-tuned":
        spec.update({"--out": paths(box), "--lr": floats, "--contexts-per-step": ints, "--positions-per-step": ints,
                     "--checkpoint-every": ints, "--fresh": None, "--precision": st.sampled_from(["float32", "bf16"]),
                     "--heldout-fraction": floats})  # fmt: skip
    else:
        spec.update({"--png": paths(box, ".png"), "--lens-file": paths(box)})
    argv += data.draw(options(spec))
    box.check(box.run(argv), outputs(argv, ("--out", "--png")) + [o + ".checkpoint" for o in outputs(argv, ("--out",))])


@FUZZ
@given(data=st.data())
def test_grok(box, data):
    action = data.draw(st.sampled_from(["train", "train", "analyze", "figures"]))
    run_dirs = st.one_of(st.sampled_from([str(box.root / f"run{i}") for i in range(3)]), paths(box))
    if action == "train":
        out = data.draw(run_dirs)
        epochs = st.one_of(st.integers(-2, 40).map(str), st.sampled_from(["1e12", "1000000000000", "x", "nan"]))
        p = st.one_of(st.integers(-1, 40).map(str), st.sampled_from(["1000000", "3000", "x"]))
        argv = ["grok", "train", "--out", out, "--epochs", data.draw(epochs), "--p", data.draw(p)]
        argv += data.draw(options({"--seed": ints, "--seeds": st.sampled_from(["1", "2", "0", "-1", "x"]), "--frac": floats,
                                   "--operation": st.sampled_from(["add", "multiply", "pow"]), "--quiet": None,
                                   "--device": st.sampled_from(["cpu", "cuda", "x"]), "--json": None,
                                   "--threads": st.sampled_from(["1", "2", "0", "-4", "4096"]),
                                   "--recipe": st.sampled_from(["paper", "fast", "x"])}))  # fmt: skip
        # a tiny run (p <= 40, epochs <= 40) or a refused one: generated runs stay small
        box.check(box.run(argv), [out])
        return
    argv = ["grok", action, data.draw(run_dirs)]
    spec = {"--seed": ints, "--json": None, "--quiet": None, "--threads": st.sampled_from(["1", "0"])}
    if action == "figures":
        spec.update({"--out": paths(box), "--no-animation": None})
    else:
        spec["--recompute"] = None
    argv += data.draw(options(spec))
    figs = outputs(argv, ("--out",)) or ([argv[2] + "/figures"] if action == "figures" else [])
    box.check(box.run(argv), figs + [argv[2]])  # analysis results are cached in the run directory


@settings(FUZZ, max_examples=12)
@given(data=st.data())
def test_tour(box, data):
    only = data.draw(st.lists(st.sampled_from(["basics", "lens"]), min_size=1, max_size=2, unique=True))
    argv = ["tour", "--model", data.draw(models(box)), *[a for s in only for a in ("--only", s)]]
    argv += data.draw(options({"--out": paths(box), "--json": None}))
    box.check(box.run(argv), outputs(argv, ("--out",)) or ["tour"])
