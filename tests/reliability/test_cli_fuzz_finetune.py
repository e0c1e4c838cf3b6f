"""Property-based command lines for ``mechscope finetune``, good values mixed with bad ones, with the promises
of :mod:`tests.reliability.test_cli_fuzz`: exit 0 or 2, no traceback, one stderr line at most, no user file
changed, new files only under the output paths (the output folder and its ``.checkpoint`` sibling)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.reliability.harness import floats, good_or, junk, models, options, paths
from tests.reliability.test_cli_fuzz import FUZZ, outputs

counts = st.one_of(st.integers(-3, 40), st.sampled_from([-(10**9), 0])).map(str)
"""Steps, batch sizes, ranks: bad ones, but none that makes a good command line run for long."""


def mostly(good: list[str], bad: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A good value three times in four (the forced flags below would otherwise leave few good command lines)."""
    return st.one_of(st.sampled_from(good), st.sampled_from(good), st.sampled_from(good), bad)


@FUZZ
@given(data=st.data())
def test_finetune(box, data):
    r = box.root
    good_source = st.sampled_from([["--theme", "ocean"], ["--theme", "cooking"], ["--text", str(r / "corpus.txt")]])
    source = data.draw(st.one_of(
        good_source, good_source,
        st.sampled_from([["--theme", "oceans"], ["--theme", ""], ["--text", str(r / "mydocs")], ["--text", str(r / "empty")],
                         ["--text", str(r / "nope.txt")], ["--text", "*.nope"], []]),
    ))  # fmt: skip
    argv = ["finetune", "--model", data.draw(models(box)), *source, "--out", data.draw(paths(box))]
    # always a short run: a few steps of a small batch from a small corpus (the defaults train for minutes)
    argv += ["--steps", data.draw(mostly(["1", "2", "3"], counts.filter(lambda c: int(c) < 4))),
             "--docs", data.draw(mostly(["20"], counts.filter(lambda c: int(c) < 30))),
             "--batch", data.draw(mostly(["2"], counts.filter(lambda c: int(c) < 3)))]
    argv += data.draw(options({
        "--seq-len": good_or(["8", "16"], st.one_of(counts, st.just("100000"))), "--lr": good_or(["1e-3", "0.01"], floats),
        "--lora": good_or(["0", "2"], counts), "--train": good_or(["blocks", "embeddings", "all"], junk),
        "--precision": good_or(["float32"], junk), "--general": good_or(["0", "0.3"], floats), "--seed": good_or(["0", "7"], counts),
        "--checkpoint-every": good_or(["1", "2"], counts), "--threads": good_or(["1"], counts), "--fresh": None,
        "--json": None, "--png": paths(box, ".png"),
    }))  # fmt: skip
    out = outputs(argv, ("--out", "--png"))
    out += [o + ".checkpoint" for o in outputs(argv, ("--out",))]
    box.check(box.run(argv), out)
