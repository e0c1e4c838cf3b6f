"""``torchrun`` support for CLI commands: a process group when launched by torchrun, nothing otherwise."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def init_distributed() -> Iterator[tuple[int, int]]:
    """Yield ``(rank, world)``; under torchrun (``WORLD_SIZE`` > 1) start a process group (gloo on CPU,
    nccl on CUDA) for the duration and tear it down after."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield 0, 1
        return
    import torch
    import torch.distributed as dist

    started = False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("MECHSCOPE_DIST_BACKEND") != "gloo" else "gloo"
        dist.init_process_group(backend)
        started = True
    try:
        yield dist.get_rank(), dist.get_world_size()
    finally:
        if started:
            dist.destroy_process_group()
