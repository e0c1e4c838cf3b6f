"""mechscope.runtime: subnormal flushing, CPU threads and device names, each restored on exit."""

from __future__ import annotations

import threading

import pytest
import torch

from mechscope.errors import ConfigError
from mechscope.runtime import cpu_threads, flush_denormals, resolve_device

SUBNORMAL = 1e-40  # float32's smallest normal is ~1.18e-38


def _flushes() -> bool:
    return (torch.tensor([SUBNORMAL]) * 1.0).item() == 0.0


def _supported() -> bool:
    supported = torch.set_flush_denormal(True)
    torch.set_flush_denormal(False)
    return supported


needs_ftz = pytest.mark.skipif(not _supported(), reason="this CPU has no FTZ/DAZ")


@needs_ftz
def test_flush_denormals_is_restored():
    assert not _flushes()
    with flush_denormals() as on:
        assert on and _flushes()
        with flush_denormals():  # nested: the outer setting survives the inner exit
            assert _flushes()
        assert _flushes()
    assert not _flushes()


@needs_ftz
def test_flush_denormals_is_restored_after_an_error_and_keeps_a_prior_setting():
    with pytest.raises(KeyError), flush_denormals():
        raise KeyError("boom")
    assert not _flushes()
    torch.set_flush_denormal(True)
    try:
        with flush_denormals():
            pass
        assert _flushes()  # it was on before: still on
    finally:
        torch.set_flush_denormal(False)


@needs_ftz
def test_flush_denormals_is_per_thread():
    """A worker's flushing does not leak into the main thread (and a new thread inherits the
    creator's setting on Linux, so workers enter flush_denormals themselves rather than rely on it)."""
    seen = {}
    inside, checked = threading.Event(), threading.Event()

    def worker():
        with flush_denormals():
            seen["worker"] = _flushes()
            inside.set()
            checked.wait(10)
        seen["worker_after"] = _flushes()

    t = threading.Thread(target=worker)
    t.start()
    inside.wait(10)
    seen["main_meanwhile"] = _flushes()
    checked.set()
    t.join()
    assert seen == {"worker": True, "main_meanwhile": False, "worker_after": False}


def test_flush_denormals_leaves_other_devices_alone():
    with flush_denormals("meta") as on:
        assert on is False and not _flushes()


def test_cpu_threads_sets_and_restores():
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    with cpu_threads(target) as n:
        assert n == target == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), cpu_threads(target):
        raise RuntimeError
    assert torch.get_num_threads() == before
    with cpu_threads(None) as n:
        assert n == before == torch.get_num_threads()
    with pytest.raises(ConfigError, match=">= 1"), cpu_threads(0):
        pass


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu", "cuda:x", "", "meta"):
        with pytest.raises(ConfigError) as err:
            resolve_device(bad)
        assert "\n" not in str(err.value) and "cpu" in str(err.value)
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:1"):
            with pytest.raises(ConfigError, match="CUDA is not available"):
                resolve_device(name)
    else:
        with pytest.raises(ConfigError, match="CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    if not torch.backends.mps.is_available():
        with pytest.raises(ConfigError, match="MPS is not available"):
            resolve_device("mps")


def test_runtime_import_is_cheap():
    import subprocess
    import sys

    code = "import sys, mechscope.runtime; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_cpu_model_names_the_cpu():
    from mechscope.runtime import cpu_model

    name = cpu_model()
    assert isinstance(name, str) and name and "\n" not in name


def test_fast_bf16_is_off_without_torch_avx512_kernels():
    """Under ATEN_CPU_CAPABILITY=default torch's bf16 kernels fail (pack_vnni2): never choose bf16 there."""
    import os
    import subprocess
    import sys

    code = "from mechscope.runtime import fast_bf16; print(fast_bf16('cpu'))"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"
