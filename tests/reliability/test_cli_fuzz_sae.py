"""Property-based command lines for the SAE pipeline and feature steering (``sae harvest | train | eval |
sweep | features | top | convert``, ``steer``), good values mixed with bad ones, with the promises of
:mod:`tests.reliability.test_cli_fuzz`: exit 0 or 2, no traceback, one stderr line at most, no user file
changed, new files only under the output paths."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.reliability.harness import floats, good_or, hooks, ints, junk, models, options, paths, prompts
from tests.reliability.test_cli_fuzz import FUZZ, outputs, small

HOOK = "blocks.1.hook_resid_post"
counts = st.one_of(st.integers(-3, 400), st.sampled_from([-(10**9), 0])).map(str)
"""Token counts, steps, widths: bad ones, but none that makes a good command line run for hours."""


def either(good, bad=None) -> st.SearchStrategy[str]:
    """A good value or a bad one (``good_or`` pairs them for :func:`options`)."""
    return st.one_of(*good_or(good, bad))


@pytest.fixture(scope="module")
def made(box, tmp_path_factory):
    """A store and an SAE of the sandbox's tiny model, made with good command lines (outside the sandbox)."""
    where = tmp_path_factory.mktemp("sae-made")
    corpus = str(box.root / "corpus.txt")
    assert box.run(["sae", "harvest", "--model", box.model_dir, "--hook", HOOK, "--corpus", corpus, "--seq-len", "16",
                    "--tokens", "640", "--shard-contexts", "8", "--out", str(where / "store")]).code == 0  # fmt: skip
    assert box.run(["sae", "train", "--model", box.model_dir, "--store", str(where / "store"), "--width", "32",
                    "--k", "4", "--tokens", "1200", "--batch-tokens", "100", "--out", str(where / "sae")]).code == 0  # fmt: skip
    box.snapshot = box._files()
    return where


def sae_dirs(box, made):
    return st.sampled_from([str(made / "sae"), str(made / "store"), str(box.root / "mydocs"), str(box.root / "x.txt"),
                            str(box.root / "nope"), ""])  # fmt: skip


@FUZZ
@given(data=st.data())
def test_sae_harvest_and_train(box, made, data):
    corpus = data.draw(either([str(box.root / "corpus.txt")], st.sampled_from([str(box.root / "mydocs"), "", "*.nope"])))
    if data.draw(st.booleans()):
        argv = ["sae", "harvest", "--model", data.draw(models(box)), "--corpus", corpus, "--seq-len",
                data.draw(either(["16"], counts)), "--out", data.draw(paths(box))]  # fmt: skip
        argv += data.draw(options({"--hook": good_or([HOOK, "blocks.0.ln2.hook_normalized"], hooks),
                                   "--tokens": good_or(["160", "320"], counts), "--dtype": good_or(["bfloat16"], junk),
                                   "--shard-contexts": good_or(["4"], counts), "--json": None, "--force": None}))  # fmt: skip
        out = outputs(argv, ("--out",))
    else:
        argv = ["sae", "train", "--model", data.draw(models(box)), "--out", data.draw(paths(box))]
        argv += data.draw(st.one_of(st.just(["--store", str(made / "store")]), st.just(["--hook", HOOK, "--corpus", corpus,
                                    "--seq-len", "16"]), st.just(["--store", str(box.root / "mydocs")])))  # fmt: skip
        argv += data.draw(options({
            "--arch": good_or(["topk", "batchtopk", "relu", "jumprelu"], junk), "--width": good_or(["16", "32,48"], counts),
            "--k": good_or(["2", "4,8"], counts), "--tokens": good_or(["300", "600"], counts),
            "--batch-tokens": good_or(["100"], counts), "--lr": good_or(["0.01", "none"], floats), "--json": None,
            "--target": good_or(["blocks.1.hook_mlp_out"], hooks), "--transcoder": None, "--skip": None,
            "--fresh": None, "--matmul-dtype": good_or(["bfloat16", "auto"], junk),
        }))  # fmt: skip
        out = outputs(argv, ("--out",))
        out += [o + ".checkpoint" for o in out]
    box.check(box.run(argv), out)


@FUZZ
@given(data=st.data())
def test_sae_inspect(box, made, data):
    action = data.draw(st.sampled_from(["eval", "features", "top", "convert"]))
    model = data.draw(models(box))
    sae = data.draw(either([str(made / "sae")], sae_dirs(box, made)))
    if action == "eval":
        argv = ["sae", "eval", sae, "--model", model, "--corpus", str(box.root / "corpus.txt"), "--seq-len", "16"]
        argv += data.draw(options({"--tokens": good_or(["64", "128"], counts), "--json": None, "--png": paths(box, ".png")}))
        out = outputs(argv, ("--png",))
    elif action == "features":
        argv = ["sae", "features", sae, "--model", model, "--latent", data.draw(either(small(0, 31), ints))]
        argv += data.draw(options({"--store": good_or([str(made / "store")], sae_dirs(box, made)), "--json": None,
                                   "--png": paths(box, ".png"), "--html": paths(box, ".html")}))  # fmt: skip
        out = outputs(argv, ("--png", "--html"))
    elif action == "top":
        argv = ["sae", "top", data.draw(prompts), "--sae", sae, "--model", model]
        argv += data.draw(options({"--position": good_or(small(-2, 1), ints), "--k": good_or(small(1, 5), ints),
                                   "--json": None}))  # fmt: skip
        out = []
    else:
        argv = ["sae", "convert", sae, "--to", data.draw(either(["saelens", "sparsify", "mechscope"], junk)),
                "--out", data.draw(paths(box))]  # fmt: skip
        argv += data.draw(options({"--hook": good_or([HOOK], hooks), "--force": None}))
        out = outputs(argv, ("--out",))
    box.check(box.run(argv), out)


@FUZZ
@given(data=st.data())
def test_steer(box, made, data):
    argv = ["steer", data.draw(prompts), "--sae", data.draw(either([str(made / "sae")], sae_dirs(box, made))),
            "--model", data.draw(models(box)), "--latent", data.draw(either(small(0, 31), ints))]  # fmt: skip
    dose = data.draw(st.sampled_from(["--value", "--sweep"]))
    argv += [dose, data.draw(either(["0,2,4"] if dose == "--sweep" else ["3"], st.one_of(floats, junk)))]
    argv += data.draw(options({"--mode": good_or(["add", "clamp"], junk), "--generate": good_or(small(0, 3), ints),
                               "--json": None, "--png": paths(box, ".png")}))  # fmt: skip
    box.check(box.run(argv), outputs(argv, ("--png",)))
