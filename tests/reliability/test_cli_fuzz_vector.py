"""Property-based command lines for steering vectors (``vector make | apply``), good values mixed with bad
ones, with the promises of :mod:`tests.reliability.test_cli_fuzz`: exit 0 or 2, no traceback, one stderr
line at most, no user file changed, new files only under the output paths."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.reliability.harness import floats, good_or, hooks, ints, junk, models, options, paths, prompts
from tests.reliability.test_cli_fuzz import FUZZ, outputs, small

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def made(box, tmp_path_factory):
    """Prompt files and a vector of the sandbox's tiny model, made with a good command line (outside the
    sandbox, so the runs below may not touch them)."""
    where = tmp_path_factory.mktemp("vector-made")
    (where / "pos.txt").write_text("The capital of France is Paris.\nParis is the capital.\n")
    (where / "neg.txt").write_text("The reliability of Wikipedia\nWikipedia is very questionable.\n")
    (where / "three.txt").write_text("one\ntwo\nthree\n")
    (where / "blank.txt").write_text("\n \n")
    (where / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    assert box.run(["vector", "make", "--model", box.model_dir, "--pos", str(where / "pos.txt"), "--neg",
                    str(where / "neg.txt"), "--hook", HOOK, "--out", str(where / "v")]).code == 0  # fmt: skip
    box.snapshot = box._files()
    return where


def prompt_files(box, made) -> st.SearchStrategy[str]:
    return st.sampled_from([str(made / "pos.txt"), str(made / "neg.txt"), str(made / "three.txt"), str(made / "blank.txt"),
                            str(made / "binary.txt"), str(box.root / "mydocs"), str(box.root / "nope.txt"), ""])  # fmt: skip


def vector_dirs(box, made) -> st.SearchStrategy[str]:
    return st.sampled_from([str(made / "v"), str(made / "v"), str(box.root / "mydocs"), str(box.root / "x.txt"),
                            str(box.root / "nope"), str(made), ""])  # fmt: skip


@FUZZ
@given(data=st.data())
def test_vector_make(box, made, data):
    argv = ["vector", "make", "--model", data.draw(models(box)), "--out", data.draw(paths(box))]
    if data.draw(st.booleans()):
        argv += ["--builtin", data.draw(st.sampled_from(["doubt", "doubt", "doubt", "nope", ""]))]
    else:
        argv += ["--pos", data.draw(st.one_of(st.just(str(made / "pos.txt")), prompt_files(box, made)))]
    argv += data.draw(options({
        "--neg": good_or([str(made / "neg.txt")], prompt_files(box, made)),
        "--hook": good_or([HOOK, "blocks.0.hook_mlp_out"], hooks), "--method": good_or(["mean", "pca"], junk),
        "--position": good_or(["mean", "last", "all"], junk), "--json": None, "--force": None,
    }))  # fmt: skip
    box.check(box.run(argv), outputs(argv, ("--out",)))


@FUZZ
@given(data=st.data())
def test_vector_apply(box, made, data):
    argv = ["vector", "apply", data.draw(vector_dirs(box, made)), data.draw(prompts), "--model", data.draw(models(box))]
    dose = data.draw(st.sampled_from(["--coef", "--sweep"]))
    argv += [dose, data.draw(st.one_of(*good_or(["0,1,3"] if dose == "--sweep" else ["2"], st.one_of(floats, junk))))]
    argv += data.draw(options({
        "--generate": good_or(small(0, 3), ints), "--target": good_or(["Paris", "the"], st.one_of(junk, st.just("\udcff\udcfeabc"))),
        "--top-k": good_or(small(1, 5), ints), "--hook": good_or([HOOK], hooks), "--json": None,
        "--include-bos": None, "--png": paths(box, ".png"),
    }))  # fmt: skip
    box.check(box.run(argv), outputs(argv, ("--png",)))
