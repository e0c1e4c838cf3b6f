"""A short causal-LM fine-tune on a narrow corpus, saved as a plain Hugging Face directory to diff against.

    >>> base = mechscope.load("gemma-3-270m")                                           # doctest: +SKIP
    >>> res = finetune(base, FinetuneConfig(theme="ocean"), "runs/gemma-ocean")          # doctest: +SKIP
    >>> tuned = mechscope.load("runs/gemma-ocean")                                       # doctest: +SKIP

The base model is never changed: a copy is trained. By default LoRA adapters (rank 16) on every linear
layer of the blocks, merged into the weights on save; ``lora=0`` trains the blocks (or the embedding, or
everything) in full. The loss is next-token cross-entropy on packed BOS-led contexts (no padding).
Forward and backward run in bfloat16 where the CPU is fast at it (AMX / AVX-512-BF16) under autocast;
weights, AdamW and the loss stay float32. Subnormals are flushed on CPU (:func:`runtime.flush_denormals`).

Checkpoints (:mod:`mechscope.diff.finetune_checkpoint`) go to ``<out>.checkpoint`` every
``checkpoint_every`` steps, at the end and on Ctrl-C; calling again with the same arguments resumes and
ends bit-identical to an uninterrupted run on CPU (same machine and thread count). The output folder
(:data:`KIND`, written through :func:`mechscope.io.atomic_dir`) holds ``config.json``, the safetensors
weights, the base model's tokenizer files and :data:`RECORD_FILE` (how it was made: base fingerprint,
config, corpus, loss curve, throughput, the theme shift); the checkpoint is removed once it is written.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Int
from torch import Tensor

from mechscope.diff import finetune_checkpoint as ckpt
from mechscope.diff.finetune_config import FinetuneConfig
from mechscope.errors import CorpusError, TrainingError

if TYPE_CHECKING:  # pragma: no cover
    from mechscope.model.hooked import HookedModel

log = logging.getLogger("mechscope")

KIND = "finetune"
"""Artifact kind of a fine-tune's output folder (its ``mechscope.json`` marker)."""
RECORD_FILE = "finetune.json"
RECORD_FORMAT = "mechscope-finetune/1"
_TOKENIZER_FILES = re.compile(r"^(tokenizer.*|special_tokens_map\.json|added_tokens\.json|chat_template\..*)$")


@dataclass
class FinetuneResult:
    """What a fine-tune made (``to_dict`` is the saved record and the CLI's ``--json``)."""

    out: Path
    config: FinetuneConfig
    base: dict
    """``name`` and ``fingerprint`` of the base model."""
    tuned_fingerprint: str
    corpus: dict
    """``source``, ``contexts``, ``tokens`` and ``sha256`` of the packed training contexts."""
    losses: list[float]
    """Training loss per step (mean next-token cross-entropy, nats)."""
    tokens_per_s: float
    """Training tokens per second (forward + backward + step) over the steps this call ran, checkpoint writes left out."""
    seconds: float
    """Wall time of the training loop (checkpoint writes included), summed over resumed runs."""
    precision: str
    trainable_params: int
    resumed_at: list[int] = field(default_factory=list)
    theme_shift: dict | None = None
    """For a theme: the theme words' next-token probability on neutral prompts, base and tuned."""
    model: Any = field(default=None, repr=False, compare=False)
    """The tuned :class:`~mechscope.model.hooked.HookedModel` (in memory; not part of ``to_dict``)."""

    def to_dict(self) -> dict:
        return {"format": RECORD_FORMAT, "out": str(self.out), "base": self.base, "tuned_fingerprint": self.tuned_fingerprint,
                "config": self.config.to_dict(), "learning_rate": self.config.learning_rate, "precision": self.precision,
                "trainable_params": self.trainable_params, "corpus": self.corpus, "steps": len(self.losses),
                "tokens": self.config.tokens, "losses": [round(x, 5) for x in self.losses],
                "tokens_per_s": round(self.tokens_per_s, 1), "seconds": round(self.seconds, 2),
                "resumed_at": self.resumed_at, "theme_shift": self.theme_shift}  # fmt: skip


def training_contexts(model: HookedModel, cfg: FinetuneConfig) -> tuple[Int[Tensor, "context seq"], str]:
    """The packed training contexts ``[n, seq_len]`` (BOS-led) and a label of their source."""
    from mechscope.data.files import expand, read_file
    from mechscope.data.packing import pack

    if cfg.theme is not None:
        from mechscope.diff.themes import theme_documents

        docs, source = theme_documents(cfg.theme, cfg.docs, cfg.seed), f"theme:{cfg.theme}"
    else:
        check_text_files(cfg.text)
        files = [f for spec in cfg.text for f in expand(spec)]  # every spec checked before reading
        docs = []
        for f in dict.fromkeys(files):
            got = list(read_file(f))
            if not got:
                raise CorpusError(f"{f} holds no text: give a file with some text in it")
            docs.extend(got)
        source = "text:" + ",".join(cfg.text)
    if cfg.seq_len > model.cfg.n_ctx:
        raise CorpusError(f"seq_len {cfg.seq_len} exceeds the model's context window of {model.cfg.n_ctx} tokens")
    contexts = pack(model.tokenizer, docs, cfg.seq_len)
    if cfg.general > 0:
        from mechscope.data.corpus import CorpusConfig, corpus_documents

        want = round(contexts.shape[0] * cfg.general / (1 - cfg.general))
        general = corpus_documents(CorpusConfig(seq_len=cfg.seq_len), "train", progress=False)
        extra = pack(model.tokenizer, general, cfg.seq_len, max_tokens=max(1, want) * cfg.seq_len)
        contexts = torch.cat([contexts, extra])
        source += f" + {extra.shape[0] / contexts.shape[0]:.0%} builtin"
    return contexts, source


def check_text_files(specs: tuple[str, ...]) -> None:
    """Refuse (one line) a ``--text`` path that does not exist; globs and folders are checked by the reader."""
    for spec in specs:
        if not any(ch in spec for ch in "*?[") and not Path(spec).expanduser().exists():
            raise CorpusError(f"no such text file or folder: {spec!r}: give .txt, .jsonl or .parquet files, folders or globs")


def check_output(out: str | Path) -> Path:
    """The output folder, checked before any work: new, empty, or an earlier fine-tune's (replaced)."""
    from mechscope.errors import OutputPathError
    from mechscope.io import check_output_dir

    try:
        return check_output_dir(out, KIND)
    except OutputPathError as exc:  # --force cannot help: the folder is replaced as a whole
        raise OutputPathError(str(exc).split(", or pass --force")[0]) from None


def batch_indices(n: int, batch: int, seed: int, step: int) -> Tensor:
    """The contexts of ``step``: epochs are seeded permutations of ``range(n)``, read ``batch`` at a time
    (a function of the step alone, so a resumed run reads what the uninterrupted one would)."""
    start = step * batch
    idx = []
    while len(idx) < batch:
        epoch, offset = divmod(start + len(idx), n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        idx.extend(perm[offset : offset + batch - len(idx)].tolist())
    return torch.tensor(idx, dtype=torch.long)


def _trainables(hf: torch.nn.Module, model: HookedModel, cfg: FinetuneConfig) -> tuple[dict[str, Tensor], Any]:
    """(name -> trainable tensor, LoRA or None); everything else in ``hf`` is frozen."""
    from mechscope.diff.lora import LoRA, linear_layers

    for p in hf.parameters():
        p.requires_grad_(False)
    if cfg.lora:
        layers = linear_layers(hf.get_submodule(model.adapter.layers), f"{model.adapter.layers}.")
        lora = LoRA(layers, cfg.lora, cfg.lora_alpha, torch.Generator().manual_seed(cfg.seed))
        params = {f"lora.{k}": p for k, p in lora.named_parameters()}
        return params, lora
    if cfg.train == "blocks":
        root, prefix = hf.get_submodule(model.adapter.layers), f"{model.adapter.layers}."
        params = {prefix + k: p for k, p in root.named_parameters()}
    elif cfg.train == "embeddings":
        params = {f"{model.adapter.embed}.weight": hf.get_submodule(model.adapter.embed).weight}
    else:
        params = dict(hf.named_parameters())  # tied weights appear once
    for p in params.values():
        p.requires_grad_(True)
    return params, None


def resolve_precision(cfg: FinetuneConfig, device: torch.device) -> str:
    from mechscope.runtime import fast_bf16

    if cfg.precision == "auto":
        return "bfloat16" if fast_bf16(device) else "float32"
    return cfg.precision


@contextlib.contextmanager
def _deferred_sigint(flag: dict):
    """Turn the first Ctrl-C into a request to stop after the current step (a second one interrupts at once)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        flag["stop"] = True
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def finetune(model: HookedModel, cfg: FinetuneConfig, out: str | Path, *, progress: bool = True,
             threads: int | None = None, on_step: Callable[[int, float], None] | None = None) -> FinetuneResult:  # fmt: skip
    """Fine-tune a copy of ``model`` as ``cfg`` says and write it to ``out`` (see the module docstring).

    threads: torch intra-op threads while training (None: as set). on_step(step, loss) is called after each
    completed step; a ``KeyboardInterrupt`` from it (or Ctrl-C) saves a checkpoint, then propagates.
    """
    from tqdm.auto import tqdm

    from mechscope.runtime import cpu_threads, flush_denormals

    out = check_output(out)
    ck_dir = ckpt.check_checkpoint_dir(ckpt.checkpoint_dir(out))
    contexts, source = training_contexts(model, cfg)
    device = model.device
    precision = resolve_precision(cfg, device)
    corpus_sha = hashlib.sha256(contexts.to(torch.int64).contiguous().numpy().tobytes()).hexdigest()
    identity = json.loads(json.dumps({"base_fingerprint": model.fingerprint, "config": cfg.to_dict(),
                                      "corpus_sha256": corpus_sha, "precision": precision}))  # fmt: skip
    state = ckpt.load_checkpoint(ck_dir, identity)  # a mismatching checkpoint is refused before any work
    hf = copy.deepcopy(model.hf).eval()  # the base stays as it is; no dropout in eval mode
    torch.manual_seed(cfg.seed)
    params, lora = _trainables(hf, model, cfg)
    opt = torch.optim.AdamW(list(params.values()), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    done, losses, spent, resumed = 0, [], 0.0, []
    if state is not None:
        try:
            ckpt.restore_state(state.tensors, params, opt)
        except (KeyError, RuntimeError) as exc:
            raise ckpt.CheckpointMismatchError(f"the checkpoint at {ck_dir} does not fit this fine-tune "
                                               f"({type(exc).__name__}): delete it to start over") from None  # fmt: skip
        done, losses, spent, resumed = state.step, state.losses, state.seconds, [*state.resumed, state.step]
        log.info("mechscope: resuming the fine-tune at step %d of %d from %s", done, cfg.steps, ck_dir)

    saving = [0.0]  # seconds spent writing checkpoints in this call (not training: left out of tokens/s)

    def save(step: int) -> None:
        t = time.perf_counter()
        ckpt.save_checkpoint(ck_dir, identity, step, ckpt.pack_state(params, opt), losses,
                             spent + t - t0, resumed)  # fmt: skip
        saving[0] += time.perf_counter() - t

    n, tokens_per_step = contexts.shape[0], cfg.batch * cfg.seq_len
    flag = {"stop": False}
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        stack.enter_context(cpu_threads(threads))
        stack.enter_context(flush_denormals(device))
        stack.enter_context(_deferred_sigint(flag))
        if lora is not None:
            stack.enter_context(lora.attached())
        bar = stack.enter_context(tqdm(total=cfg.steps, initial=done, desc="mechscope: fine-tuning", unit="step",
                                       disable=not progress, leave=False))  # fmt: skip
        for step in range(done, cfg.steps):
            ids = contexts[batch_indices(n, cfg.batch, cfg.seed, step)].to(device)  # [batch, seq]
            for group in opt.param_groups:
                group["lr"] = cfg.learning_rate * cfg.lr_factor(step)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
                logits = hf(input_ids=ids, use_cache=False).logits  # [batch, seq, vocab]
            # next-token targets, the last position ignored (shifting the labels, not the logits, copies nothing)
            targets = torch.nn.functional.pad(ids[:, 1:], (0, 1), value=-100)  # [batch, seq]
            loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-100)
            del logits
            if not math.isfinite(loss.item()):
                raise TrainingError(f"the loss became {loss.item()} at step {step + 1}: lower --lr (now "
                                    f"{cfg.learning_rate:g}) or use --precision float32")  # fmt: skip
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.item()))
            ran = time.perf_counter() - t0 - saving[0]
            bar.update()
            bar.set_postfix(loss=f"{losses[-1]:.3f}", tok_s=f"{(step + 1 - done) * tokens_per_step / max(ran, 1e-9):.0f}")
            try:
                if on_step is not None:
                    on_step(step + 1, losses[-1])
                if flag["stop"]:
                    raise KeyboardInterrupt
            except KeyboardInterrupt:
                save(step + 1)
                raise
            if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
                save(step + 1)
    ran = time.perf_counter() - t0 - saving[0]  # training time of this call
    if done < cfg.steps:
        save(cfg.steps)  # the end state, kept until the output is written
    if lora is not None:
        lora.merge()
    tuned = _hooked(hf, model)
    result = FinetuneResult(
        out=out, config=cfg, base={"name": model.name, "fingerprint": model.fingerprint},
        tuned_fingerprint=tuned.fingerprint,
        corpus={"source": source, "contexts": int(n), "tokens": int(contexts.numel()), "sha256": corpus_sha},
        losses=losses, tokens_per_s=(cfg.steps - done) * tokens_per_step / ran if cfg.steps > done and ran > 0 else 0.0,
        seconds=spent + time.perf_counter() - t0, precision=precision, trainable_params=int(sum(p.numel() for p in params.values())),
        resumed_at=resumed, theme_shift=_theme_shift(model, tuned, cfg.theme), model=tuned,
    )  # fmt: skip
    write_output(out, hf, model, result.to_dict())
    ckpt.remove_checkpoint(ck_dir)
    return result


def _hooked(hf: torch.nn.Module, base: HookedModel) -> HookedModel:
    from mechscope.model.hooked import HookedModel

    for p in hf.parameters():
        p.requires_grad_(False)
    hf.config.architectures = [type(hf).__name__]  # as save_pretrained records it: the fingerprint is the saved one's
    return HookedModel(hf, base.tokenizer, name=f"{base.name}-tuned", adapter=base.adapter)


def _theme_shift(base: HookedModel, tuned: HookedModel, theme: str | None) -> dict | None:
    """The theme words' next-token probability on :data:`~mechscope.diff.themes.NEUTRAL_PROMPTS`, base and tuned."""
    if theme is None:
        return None
    from mechscope.diff.themes import NEUTRAL_PROMPTS, get_theme, theme_mass

    words = get_theme(theme).words
    with torch.no_grad():
        before, after = theme_mass(base, words), theme_mass(tuned, words)
    return {"prompts": list(NEUTRAL_PROMPTS), "base": [round(x, 5) for x in before], "tuned": [round(x, 5) for x in after],
            "base_mean": round(sum(before) / len(before), 5), "tuned_mean": round(sum(after) / len(after), 5)}  # fmt: skip


def write_output(out: Path, hf: torch.nn.Module, base: HookedModel, record: dict) -> Path:
    """The tuned model as a Hugging Face folder (weights, config, the base's tokenizer files) plus the record,
    written atomically as a :data:`KIND` artifact."""
    from transformers.utils import logging as hf_logging

    from mechscope.io import atomic_dir

    hf.hf_quantizer = None  # a GGUF-loaded model refuses save_pretrained although its weights are plain float32
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # transformers' "Writing model shards" bar: ours says enough
    try:
        with atomic_dir(out, KIND) as tmp:
            _write_folder(tmp, hf, base, record)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return out


def _write_folder(tmp: Path, hf: torch.nn.Module, base: HookedModel, record: dict) -> None:
    from mechscope.io import write_json

    hf.save_pretrained(tmp)
    copied = False
    src = Path(base.cache_path) if base.cache_path else None
    if src is not None and src.is_dir():  # the very files the base was read from: same tokens, one BOS
        for f in sorted(src.iterdir()):
            if f.is_file() and _TOKENIZER_FILES.match(f.name):
                shutil.copyfile(f, tmp / f.name)
                copied = copied or f.name == "tokenizer.json"
    if not copied:
        base.tokenizer.save_pretrained(tmp)
    write_json(tmp / RECORD_FILE, record)


def read_record(directory: str | Path) -> dict:
    """The record (:data:`RECORD_FILE`) of a fine-tune's output folder, checked against its marker."""
    from mechscope.io import verify_artifact

    directory = Path(directory).expanduser()
    verify_artifact(directory, KIND, verify=False, fix="run `mechscope finetune` again")
    return json.loads((directory / RECORD_FILE).read_text())


def theme_model_dir(theme: str = "ocean", base: str = "gemma-3-270m") -> Path:
    """Where :func:`cached_theme_model` keeps a fine-tune: ``$MECHSCOPE_HOME/finetunes/<base>-<theme>``."""
    from mechscope.model.convert import home

    return home() / "finetunes" / re.sub(r"[^\w.-]+", "_", f"{base}-{theme}")


def cached_theme_model(theme: str = "ocean", base: str = "gemma-3-270m", progress: bool = True,
                       threads: int | None = None) -> Path:  # fmt: skip
    """The folder of ``base`` fine-tuned on ``theme`` with the default config, trained (a few minutes on CPU)
    if it is missing or was made with other settings; for the diff benchmark and the tour."""
    from filelock import FileLock

    from mechscope.diff.themes import get_theme

    get_theme(theme)
    path = theme_model_dir(theme, base)
    cfg = FinetuneConfig(theme=theme)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        with contextlib.suppress(Exception):
            if read_record(path).get("config") == cfg.to_dict():
                return path
        import mechscope

        model = mechscope.load(base, device="cpu")
        finetune(model, cfg, path, progress=progress, threads=threads)
    return path
