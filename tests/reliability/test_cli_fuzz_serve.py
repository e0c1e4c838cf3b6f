"""Property-based command lines for ``mechscope serve --dry-run`` (the flags, the port, the runs folders;
it never starts serving here), with the promises of :mod:`tests.reliability.test_cli_fuzz`: exit 0 or 2,
no traceback, one stderr line at most (the warning for a host other than 127.0.0.1 is that line), no
user file changed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.reliability.harness import good_or, ints, junk, options, paths
from tests.reliability.test_cli_fuzz import FUZZ

HOSTS = st.sampled_from(["0.0.0.0", "::1", "", "256.0.0.1", "127.0.0.1.5", "\x00"])


@FUZZ
@given(data=st.data())
def test_serve_dry_run(box, data):
    argv = ["serve", "--dry-run"]
    argv += data.draw(options({
        "--host": good_or(["127.0.0.1", "localhost"], HOSTS), "--port": good_or(["0"], st.one_of(ints, junk)),
        "--runs": good_or([str(box.root / "mydocs")], paths(box)), "--max-prompt-chars": good_or(["100", "4000"], ints),
        "--max-body-bytes": good_or(["4096"], ints), "--json": None, "--model": good_or(["gemma-3-270m"], junk),
    }))  # fmt: skip
    box.check(box.run(argv), [])
