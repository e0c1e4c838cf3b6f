"""Full-batch training of one or several seeds, with checkpoints and bit-identical resume.

``train(cfg, out_dir)`` creates or resumes ``out_dir``. The loop, per epoch ``e`` (weights after ``e``
updates): save checkpoint + state if ``e`` is a checkpoint epoch; forward on the training set (fast
path) and log loss/accuracy; every ``eval_every`` epochs also the test set; then backward and one AdamW
update. Seeds are stacked on a leading axis and their losses summed, so each seed gets exactly its own
gradient. Killing the process and calling ``train`` again resumes from the last saved state; on the
same machine (CPU, same thread count) the final weights are bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from mechscope.errors import ConfigError, RunError
from mechscope.labs.grokking.config import GrokConfig
from mechscope.labs.grokking.data import Dataset
from mechscope.labs.grokking.fast import SeedChunks, SeedPool, chunked_logits
from mechscope.labs.grokking.model import PARAM_NAMES, Params, init_params, loss_and_accuracy
from mechscope.labs.grokking.optim import OptimizerState, adamw_step
from mechscope.labs.grokking import rundir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSummary:
    """What ``train`` reports (also the ``--json`` of ``mechscope grok train``)."""

    dir: str
    """Run directory."""
    seeds: list[int]
    """Seeds trained."""
    epochs: int
    """Updates completed."""
    complete: bool
    """Whether the configured number of epochs was reached."""
    final_train_acc: list[float]
    """Per seed, at the last epoch."""
    final_test_acc: list[float]
    """Per seed, at the last evaluated epoch."""
    epoch_test_acc_99: list[int | None]
    """Per seed, first evaluated epoch with test accuracy >= 99 %."""
    wall_s_test_acc_99: list[float | None]
    """Per seed, training wall-clock seconds when test accuracy first reached 99 %."""
    wall_s: float
    """Total training wall-clock seconds (all sessions, excluding startup)."""
    s_per_epoch: float
    """Mean seconds per epoch in this session."""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class _State:
    """Everything a resume needs, as tensors (weights, optimizer, logged metrics)."""

    def __init__(self, cfg: GrokConfig, params: Params, opt: OptimizerState, metrics: dict[str, torch.Tensor]):
        self.cfg, self.params, self.opt, self.metrics = cfg, params, opt, metrics

    @classmethod
    def fresh(cls, cfg: GrokConfig, device: torch.device) -> _State:
        params = {n: w.to(device) for n, w in init_params(cfg.model, cfg.seeds).items()}
        n_seeds, n = cfg.n_seeds, cfg.epochs + 1
        n_eval = len(_eval_epochs(cfg))
        nan = float("nan")
        metrics = {
            "train_loss": torch.full((n_seeds, n), nan, dtype=torch.float64),
            "train_acc": torch.full((n_seeds, n), nan, dtype=torch.float64),
            "wall_s": torch.full((n,), nan, dtype=torch.float64),
            "eval_epoch": torch.full((n_eval,), -1, dtype=torch.int64),
            "test_loss": torch.full((n_seeds, n_eval), nan, dtype=torch.float64),
            "test_acc": torch.full((n_seeds, n_eval), nan, dtype=torch.float64),
            "n_eval": torch.zeros((), dtype=torch.int64),
        }
        return cls(cfg, params, OptimizerState.zeros_like(params), metrics)

    def save(self, run_dir: Path) -> None:
        tensors = {f"param.{n}": w for n, w in self.params.items()}
        tensors.update({f"opt.{k}": v for k, v in self.opt.tensors().items()})
        tensors.update({f"metrics.{k}": v for k, v in self.metrics.items()})
        tensors["step"] = torch.tensor(self.opt.step, dtype=torch.int64)
        rundir.write_safetensors(run_dir / rundir.STATE_FILE, tensors, {"format": "mechscope-grok-state/1"})

    @classmethod
    def load(cls, cfg: GrokConfig, run_dir: Path, device: torch.device) -> _State:
        # clone: tensors read from a file may sit at unaligned addresses, and vectorised reductions
        # round differently on unaligned memory, which would break bit-identical resume.
        tensors = {k: v.clone() for k, v in rundir.read_safetensors(run_dir / rundir.STATE_FILE).items()}
        try:
            params = {n: tensors[f"param.{n}"].to(device) for n in PARAM_NAMES}
            opt_tensors = {k[4:]: v.to(device) for k, v in tensors.items() if k.startswith("opt.")}
            opt = OptimizerState.from_tensors(int(tensors["step"].item()), opt_tensors)
            metrics = {k[8:]: v for k, v in tensors.items() if k.startswith("metrics.")}
            if set(opt.exp_avg) != set(PARAM_NAMES) or "n_eval" not in metrics:
                raise KeyError("optimizer moments")
        except KeyError as exc:
            raise RunError(f"{run_dir / rundir.STATE_FILE} is corrupted (missing {exc}); delete the run directory and retrain") from None
        return cls(cfg, params, opt, metrics)


def _eval_epochs(cfg: GrokConfig) -> list[int]:
    ckpts = rundir.checkpoint_epochs(cfg.epochs, cfg.n_checkpoints, cfg.n_log_checkpoints)
    return sorted(set(range(0, cfg.epochs + 1, cfg.eval_every)) | set(ckpts))


def resolve_config(run_dir: Path, requested: GrokConfig | None) -> GrokConfig:
    """The config to train with: the saved one when resuming (a different request is an error)."""
    saved = rundir.load_config(run_dir) if (run_dir / rundir.CONFIG_FILE).exists() else None
    if saved is None:
        if requested is None:
            raise ConfigError(f"{run_dir} has no run to resume; give a recipe to start one")
        return requested
    if requested is not None and requested != saved:
        diff = [k for k, v in requested.to_dict().items() if saved.to_dict()[k] != v]
        raise ConfigError(
            f"{run_dir} holds a run with a different config ({', '.join(diff)}); resume with the same flags or use a new --out"
        )
    return saved


def train(
    cfg: GrokConfig | None,
    out_dir: str | Path,
    device: str | torch.device = "cpu",
    progress: bool = True,
    max_epochs_this_session: int | None = None,
    stop_at_test_acc: float | None = None,
    seeds_per_chunk: int | None = None,
    seed_workers: int | None = None,
    flush_denormals: bool = True,
    on_epoch: Callable[[int, int], None] | None = None,
) -> TrainSummary:
    """Train (or resume) the run in ``out_dir``. ``cfg=None`` resumes with the saved config.

    ``max_epochs_this_session`` stops early (the state is saved), as if the process were killed;
    tests use it to check that resuming is bit-identical. ``stop_at_test_acc`` stops (resumably)
    once every seed's test accuracy reaches it (benchmarks of wall-clock to 99 %).
    ``seeds_per_chunk``: how many stacked seeds run through the fast path together (default: 1 on
    CPU, all on CUDA; see ``fast.SeedChunks``).
    ``seed_workers``: on CPU with several seed groups, how many groups run at once, each on one thread
    (``fast.SeedPool``; every seed stays bit-identical to training it alone on one thread). Default:
    ``torch.get_num_threads()`` capped at the number of groups; 1 keeps the plain sequential loop.
    ``flush_denormals``: on CPU, treat subnormal floats as zero in the loop (``runtime.flush_denormals``,
    on this thread and every seed worker). Once the loss is ~1e-6, softmax outputs and gradients fill
    with subnormals that Intel cores handle in microcode (the fast recipe slowed from 16 to 1.8 epochs/s).
    ``False`` exists to measure that cost (benchmarks/grok_late_slowdown.py); a run resumed with
    another setting than it started with is no longer bit-identical to an uninterrupted one.
    ``on_epoch(step, epochs)`` is called after every update (the web workbench's progress and cancel: an
    exception raised there stops training like a kill; the state of the last checkpoint stays resumable).
    """
    from mechscope import runtime

    device = torch.device(device)
    if not flush_denormals:
        return _train(cfg, out_dir, device, progress, max_epochs_this_session, stop_at_test_acc, seeds_per_chunk,
                      seed_workers, False, on_epoch)  # fmt: skip
    with runtime.flush_denormals(device) as flushing:
        return _train(cfg, out_dir, device, progress, max_epochs_this_session, stop_at_test_acc, seeds_per_chunk,
                      seed_workers, flushing, on_epoch)  # fmt: skip


def _train(
    cfg: GrokConfig | None,
    out_dir: str | Path,
    device: torch.device,
    progress: bool,
    max_epochs_this_session: int | None,
    stop_at_test_acc: float | None,
    seeds_per_chunk: int | None,
    seed_workers: int | None,
    flush: bool,
    on_epoch: Callable[[int, int], None] | None = None,
) -> TrainSummary:
    run_dir = rundir.check_run_dir(Path(out_dir))
    cfg = resolve_config(run_dir, cfg)
    data = Dataset.build(cfg)
    rundir.write_json(run_dir / rundir.CONFIG_FILE, {"format": rundir.RUN_FORMAT, "config": cfg.to_dict()})

    state = _State.load(cfg, run_dir, device) if (run_dir / rundir.STATE_FILE).exists() else _State.fresh(cfg, device)
    if state.opt.step >= cfg.epochs:  # already complete: nothing to train
        return _summary(run_dir, cfg, state, 0.0)
    ckpts = set(rundir.checkpoint_epochs(cfg.epochs, cfg.n_checkpoints, cfg.n_log_checkpoints))
    eval_epochs = set(_eval_epochs(cfg))

    train_idx, test_idx = data.stacked_split(True).to(device), data.stacked_split(False).to(device)
    a_all, b_all, labels_all = data.a.to(device), data.b.to(device), data.labels.to(device)
    per_chunk = seeds_per_chunk or (cfg.n_seeds if device.type == "cuda" else 1)
    train_batch = SeedChunks.build(a_all[train_idx], b_all[train_idx], cfg.model.p, cfg.model.n_heads, per_chunk)
    test_batch = SeedChunks.build(a_all[test_idx], b_all[test_idx], cfg.model.p, cfg.model.n_heads, per_chunk)
    train_labels, test_labels = labels_all[train_idx], labels_all[test_idx]

    if seed_workers is not None and seed_workers < 1:
        raise ConfigError(f"seed_workers must be >= 1, got {seed_workers}")
    workers = 1
    if device.type == "cpu" and len(train_batch.chunks) > 1:
        workers = min(len(train_batch.chunks), seed_workers or torch.get_num_threads())
    pool = SeedPool(workers, flush_denormals=flush) if workers > 1 else None
    threads_before = torch.get_num_threads()
    if pool is not None:
        torch.set_num_threads(1)  # one intra-op thread per worker: no OpenMP barriers across seeds

    m = state.metrics
    start_step = state.opt.step
    # a session that stopped after logging epoch `start_step` (stop_at_test_acc) logs it again now
    m["n_eval"] = (m["eval_epoch"][: int(m["n_eval"])] < start_step).sum()
    prior_wall = float(m["wall_s"][start_step - 1]) if start_step > 0 else 0.0
    for w in state.params.values():
        w.requires_grad_(True)
    t0 = time.perf_counter()
    bar = tqdm(
        total=cfg.epochs, initial=start_step, desc=f"grok train {run_dir.name}", unit="ep",
        file=sys.stderr, disable=not progress, dynamic_ncols=True, mininterval=0.5,
    )  # fmt: skip
    last_postfix = 0.0
    session_steps = 0
    try:
        while True:
            step = state.opt.step
            if step in ckpts:
                for i, seed in enumerate(cfg.seeds):
                    rundir.save_checkpoint(run_dir, seed, step, {n: w[i] for n, w in state.params.items()})
                state.save(run_dir)
                _write_progress(run_dir, cfg, state)
            if max_epochs_this_session is not None and session_steps >= max_epochs_this_session:
                break
            params = state.params
            grads = None
            if pool is not None:
                loss, acc, grads = pool.loss_and_grads(params, train_batch, train_labels, step < cfg.epochs)
            else:
                with torch.set_grad_enabled(step < cfg.epochs):
                    loss, acc = loss_and_accuracy(chunked_logits(params, train_batch), train_labels)
            m["train_loss"][:, step] = loss.detach().cpu()
            m["train_acc"][:, step] = acc.cpu()
            if step in eval_epochs:
                if pool is not None:
                    t_loss, t_acc, _ = pool.loss_and_grads(params, test_batch, test_labels, False)
                else:
                    with torch.no_grad():
                        t_loss, t_acc = loss_and_accuracy(chunked_logits(params, test_batch), test_labels)
                k = int(m["n_eval"])
                m["eval_epoch"][k] = step
                m["test_loss"][:, k], m["test_acc"][:, k] = t_loss.cpu(), t_acc.cpu()
                m["n_eval"] += 1
            m["wall_s"][step] = prior_wall + time.perf_counter() - t0
            if progress and time.perf_counter() - last_postfix > 0.5:
                last_postfix = time.perf_counter()
                k = int(m["n_eval"]) - 1
                bar.set_postfix_str(
                    f"train {m['train_loss'][0, step]:.2e} ({100 * m['train_acc'][0, step]:.0f}%) "
                    f"test {m['test_loss'][0, k]:.2e} ({100 * m['test_acc'][0, k]:.1f}%)"
                )
            if step >= cfg.epochs:
                break
            if stop_at_test_acc is not None and step in eval_epochs and bool((t_acc >= stop_at_test_acc).all()):
                break
            if grads is None:
                grads = dict(zip(PARAM_NAMES, torch.autograd.grad(loss.sum(), [params[n] for n in PARAM_NAMES])))
            adamw_step(params, grads, state.opt, cfg)
            session_steps += 1
            bar.update(1)
            if on_epoch is not None:
                on_epoch(state.opt.step, cfg.epochs)
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            torch.set_num_threads(threads_before)
    state.save(run_dir)
    _write_progress(run_dir, cfg, state)
    elapsed = time.perf_counter() - t0
    return _summary(run_dir, cfg, state, elapsed / max(session_steps, 1))


def _first_reaching(m: dict[str, torch.Tensor], i: int, threshold: float) -> tuple[int | None, float | None]:
    n = int(m["n_eval"])
    acc = m["test_acc"][i, :n].numpy()
    hits = np.nonzero(acc >= threshold)[0]
    if len(hits) == 0:
        return None, None
    epoch = int(m["eval_epoch"][hits[0]])
    return epoch, float(m["wall_s"][epoch])


def _summary(run_dir: Path, cfg: GrokConfig, state: _State, s_per_epoch: float) -> TrainSummary:
    m, step = state.metrics, state.opt.step
    n = int(m["n_eval"])
    reach = [_first_reaching(m, i, 0.99) for i in range(cfg.n_seeds)]
    return TrainSummary(
        dir=str(run_dir),
        seeds=cfg.seeds,
        epochs=step,
        complete=step >= cfg.epochs,
        final_train_acc=[float(x) for x in m["train_acc"][:, step]],
        final_test_acc=[float(x) for x in m["test_acc"][:, n - 1]],
        epoch_test_acc_99=[r[0] for r in reach],
        wall_s_test_acc_99=[r[1] for r in reach],
        wall_s=float(m["wall_s"][step]),
        s_per_epoch=s_per_epoch,
    )


def _write_progress(run_dir: Path, cfg: GrokConfig, state: _State) -> None:
    step = state.opt.step
    wall = float(state.metrics["wall_s"][step - 1]) if step > 0 else 0.0
    rundir.write_json(
        run_dir / rundir.PROGRESS_FILE,
        {"step": step, "epochs": cfg.epochs, "complete": step >= cfg.epochs, "wall_s": wall, "seeds": cfg.seeds},
    )
