"""The training-outcome tests under every CPU kernel set torch offers here, on 1 and 2 threads.

Float results of a training run differ between CPUs: BLAS and oneDNN dispatch other kernels (another
FMA use, another reduction order) on Intel and AMD, so a run sitting just past a threshold on one
machine misses it on another. torch picks its kernels by ``ATEN_CPU_CAPABILITY`` (``default`` = no
SIMD beyond the baseline, ``avx2``, ``avx512``), and the thread count changes how reductions are
split; sweeping both is a cheap stand-in for "any CPU".

Each combination runs the tests in a fresh ``pytest`` subprocess with ``ATEN_CPU_CAPABILITY``,
``OMP_NUM_THREADS`` and ``MECHSCOPE_TEST_THREADS`` (the grokking tests' thread fixture reads it) set.
A kernel set the CPU lacks is reported as skipped (torch would silently fall back to a lower one).
Prints one JSON line and exits 1 if any combination has a failing test.

    . .venv/bin/activate && python benchmarks/kernel_sweep.py              # ~3 min on 2 cores
    python benchmarks/kernel_sweep.py --threads 1 --caps default            # one combination
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from _common import ROOT, emit, versions

from mechscope.runtime import cpu_model

# Tests that assert what training produces (accuracy reached, mechanism found, KL lowered), plus the
# grokking tests around them (resume and seed-worker bit-identity, analysis, CLI).
TESTS = ("tests/labs/grokking", "tests/cli/test_grok_cli.py", "tests/lens/test_tuned.py")
CAPS = ("default", "avx2", "avx512")


def effective_capability(cap: str) -> str:
    """The kernel set torch really uses when asked for ``cap`` (lower-case)."""
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": cap}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return out.stdout.strip().lower()


def run_tests(cap: str, threads: int, tests: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        env = {
            **os.environ, "ATEN_CPU_CAPABILITY": cap, "OMP_NUM_THREADS": str(threads),
            "MECHSCOPE_TEST_THREADS": str(threads), "HF_HUB_OFFLINE": "1",
        }  # fmt: skip
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *tests]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - t0
        failed, counts = [], {"n_passed": 0, "n_failed": 0, "n_skipped": 0}
        if report.exists():
            for case in ET.parse(report).getroot().iter("testcase"):
                name = f"{case.get('classname')}::{case.get('name')}"
                if case.find("failure") is not None or case.find("error") is not None:
                    counts["n_failed"] += 1
                    failed.append(name)
                elif case.find("skipped") is not None:
                    counts["n_skipped"] += 1
                else:
                    counts["n_passed"] += 1
    ok = proc.returncode == 0 and not failed and counts["n_passed"] > 0
    if not ok:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-2000:])
    return {"passed": ok, **counts, "failed_tests": failed, "exit_code": proc.returncode, "seconds": round(seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--caps", nargs="+", choices=CAPS, default=list(CAPS), help="kernel sets (default: all three)")
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="thread counts (default: 1 2)")
    ap.add_argument("--tests", nargs="+", default=list(TESTS), help="test paths (default: the training-outcome tests)")
    args = ap.parse_args()

    combos = []
    for cap in args.caps:
        got = effective_capability(cap)
        for threads in args.threads:
            row = {"cap": cap, "effective": got, "threads": threads}
            if got != cap:
                row |= {"not_run": f"this CPU has no {cap} (torch falls back to {got})"}
            else:
                print(f"kernel_sweep: ATEN_CPU_CAPABILITY={cap}, {threads} thread(s) ...", file=sys.stderr, flush=True)
                row |= run_tests(cap, threads, args.tests)
                status = f"ok, {row['seconds']} s" if row["passed"] else f"FAILED: {row['failed_tests']}"
                print(f"kernel_sweep:   {status}", file=sys.stderr, flush=True)
            combos.append(row)
    ran = [c for c in combos if "not_run" not in c]
    passed = bool(ran) and all(c["passed"] for c in ran)
    emit(
        "kernel_sweep_training_outcomes",
        passed=passed,
        target="every training-outcome test passes under every kernel set the CPU has, on 1 and 2 threads",
        combinations_run=len(ran),
        combinations_failed=sum(not c["passed"] for c in ran),
        tests=args.tests,
        cpu_model=cpu_model(),
        combos=combos,
        versions=versions("torch"),
    )
    raise SystemExit(0 if passed else 1)


if __name__ == "__main__":
    main()
