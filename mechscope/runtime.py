"""Per-process and per-thread torch settings shared by every trainer and analysis loop.

- :func:`flush_denormals`: treat subnormal floats as zero on this thread (CPU only), restored on exit.
  Once a training loss is ~1e-6, softmax outputs and gradients fill with subnormals, which Intel cores
  handle in microcode: the grokking fast recipe slowed from 16 to 1.8 epochs/s without it.
- :func:`cpu_threads`: run torch on ``n`` intra-op CPU threads, restored on exit.
- :func:`resolve_device`: ``auto | cpu | cuda | cuda:N | mps`` to a :class:`torch.device`, with a one-line
  error for a bad or unavailable device.

torch is imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


@contextlib.contextmanager
def flush_denormals(device: str | torch.device | None = None) -> Iterator[bool]:
    """Flush subnormal floats to zero on the current thread while inside, then restore the setting.

    The flag is per thread in torch (the CPU's FTZ/DAZ bits), so a worker thread enters this itself.
    torch's own intra-op (OpenMP) worker threads copy the flag of the thread that creates them, at the
    first parallel op of the process, and keep it: with more than one intra-op thread, only a pool
    created inside this block flushes everywhere (measured on Linux: half of a 2-thread op flushed when
    the pool existed before; all of it when the pool was created inside, and still after the exit).
    ``device`` names where the work runs: anything but CPU (``None`` means CPU) leaves the flag alone.
    Yields whether flushing is on: ``False`` on a CPU without FTZ/DAZ support (torch then returns
    ``False`` from ``set_flush_denormal``) or for a non-CPU device.
    """
    import torch

    if device is not None and torch.device(device).type != "cpu":
        yield False
        return
    before = _flush_denormal_state()
    enabled = torch.set_flush_denormal(True)
    try:
        yield enabled
    finally:
        if enabled and not before:
            torch.set_flush_denormal(False)


def _flush_denormal_state() -> bool:
    """Whether this thread flushes subnormals now (torch has no getter: test whether one survives)."""
    import torch

    tiny = torch.tensor([1e-40], dtype=torch.float32)  # subnormal in float32 (smallest normal ~1.18e-38)
    return bool((tiny * 1.0).item() == 0.0)


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[int]:
    """Run torch on ``n`` intra-op CPU threads while inside (``None``: leave as is); restored on exit.

    Yields the number of threads in force. ``n < 1`` raises :class:`~mechscope.errors.ConfigError`.
    """
    import torch

    from mechscope.errors import ConfigError

    before = torch.get_num_threads()
    if n is None:
        yield before
        return
    if n < 1:
        raise ConfigError(f"threads must be >= 1, got {n}")
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` as a torch device.

    An unknown name, a CUDA index past the devices present, or a backend this machine lacks raises
    :class:`~mechscope.errors.ConfigError` with one line saying what to use instead.
    """
    import torch

    from mechscope.errors import ConfigError

    if isinstance(name, torch.device):
        device = name
    else:
        text = str(name).strip().lower()
        if text == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            device = torch.device(text)
        except (RuntimeError, ValueError):
            raise ConfigError(f"unknown device {name!r}: use {DEVICE_CHOICES}") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {str(name)!r} requested but CUDA is not available here: use cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device {str(name)!r} requested but only {count} CUDA device(s) exist: use cuda:0..cuda:{count - 1}")
        return device
    if device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"device {str(name)!r} requested but MPS is not available here: use cpu")
        return device
    raise ConfigError(f"unsupported device {str(name)!r}: use {DEVICE_CHOICES}")


def cpu_model() -> str:
    """The CPU's model name as ``lscpu`` shows it (``/proc/cpuinfo``), else the platform's processor
    string, else ``"unknown"``. Benchmarks record it: float results and speed depend on the CPU."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fast_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether bfloat16 matmuls are faster than float32 here: CUDA with bf16 support, or a CPU with AMX or
    AVX-512-BF16 (``amx_bf16`` / ``avx512_bf16`` in ``/proc/cpuinfo``) on which torch runs its AVX-512 kernels.
    Elsewhere bf16 is emulated and slower (or, under ``ATEN_CPU_CAPABILITY=default``, fails)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    if "AVX512" not in torch.backends.cpu.get_cpu_capability():  # e.g. ATEN_CPU_CAPABILITY=default/avx2:
        return False  # torch's bf16 kernels need its AVX-512 code path (pack_vnni2)
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


_MMAP_SET = False


def return_large_frees(threshold: int = 1 << 20) -> bool:
    """Serve allocations of ``threshold`` bytes or more with their own ``mmap`` so that freeing them gives the
    memory back to the system at once (glibc's ``M_MMAP_THRESHOLD``; Linux only, process-wide, set once).

    By default glibc raises that threshold after the first large free, so a training loop's per-step
    temporaries (a ``[batch, width]`` matrix is tens of MB) stay in the heap and peak RSS creeps up step
    after step; with it, the peak stays at what one step really holds. Returns whether it is in effect.
    """
    global _MMAP_SET
    if _MMAP_SET:
        return True
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _MMAP_SET = bool(libc.mallopt(-3, int(threshold)))  # M_MMAP_THRESHOLD = -3
    except (OSError, AttributeError):
        return False
    return _MMAP_SET


def rank_world() -> tuple[int, int]:
    """``(rank, world size)`` of the torch.distributed process group, or ``(0, 1)`` outside one (torchrun)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
