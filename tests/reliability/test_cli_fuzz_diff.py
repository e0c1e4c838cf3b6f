"""Property-based command lines for ``mechscope diff`` (with and without ``--crosscoder``), good values
mixed with bad ones, with the promises of :mod:`tests.reliability.test_cli_fuzz`: exit 0 or 2, no
traceback, one stderr line at most, no user file changed, new files only under the output paths."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reliability.harness import floats, good_or, junk, models, options, paths
from tests.reliability.test_cli_fuzz import FUZZ, outputs

small = st.one_of(st.integers(-3, 40), st.sampled_from([-(10**9), 0])).map(str)


@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_diff(box, data):
    prompts = box.root / "prompts.txt"
    if not prompts.exists():
        prompts.write_text("The capital of France is\nHello there\nA third prompt about the sea\n")
        box.snapshot = box._files()
        box.user_files[str(prompts.relative_to(box.root))] = box.snapshot[str(prompts.relative_to(box.root))]
    src = data.draw(st.sampled_from([["--prompts", str(prompts)], ["--prompts", str(prompts)],
                                     ["--prompts", str(box.root / "x.txt")], ["--prompts", str(box.root / "mydocs")],
                                     ["--prompts", str(box.root / "nope.txt")], []]))  # fmt: skip
    argv = ["diff", data.draw(models(box)), data.draw(models(box)), *src]
    argv += data.draw(options({
        "--seq-len": good_or(["8", "16"], small), "--layers": good_or(["0,1", "2"], junk),
        "--coefs": good_or(["0,1", "0,2,4"], st.one_of(junk, floats)), "--target": good_or(["Paris", "sea"], junk),
        "--steer-layer": good_or(["1"], small), "--steer-prompt": good_or(["Hello"], st.sampled_from(["", "\udcffab"])),
        "--components": good_or(["attn_out,mlp_out"], junk), "--png": paths(box, ".png"), "--json": None,
        "--crosscoder": None, "--width": good_or(["16"], small), "--k": good_or(["2"], small),
        "--tokens": good_or(["40"], small), "--cc-layer": good_or(["1"], small), "--save": paths(box),
        "--force": None, "--batch-size": good_or(["2"], small),
    }))  # fmt: skip
    box.check(box.run(argv), outputs(argv, ("--png", "--save")))
