"""The activation store: a model's activations at some hooks over a corpus, sharded on disk, resumable.

Layout of a store directory:

- ``shard-00000.safetensors`` … (:data:`SHARD_NAME`): ``tokens`` int32 ``[contexts, seq_len]`` (BOS
  first) and one ``acts.<hook>`` per hook, ``[contexts, positions, d]`` in the store's dtype
  (float32 or bfloat16), where positions are ``first_position .. seq_len - 1`` (BOS left out by
  default: Gemma's residual at BOS is ~17x larger than elsewhere). Shard ``j`` holds contexts
  ``j·shard_contexts .. (j+1)·shard_contexts - 1`` of the corpus stream.
- ``mechscope.json``: the marker (kind :data:`KIND`) and manifest at once: model name and fingerprint,
  the :class:`HarvestConfig`, each hook's width, the shards with their context ranges, sizes and
  SHA-256, and ``complete``.

Each shard is written to a temporary name and renamed, so a shard that exists is whole. A killed
harvest resumes by running the same command again: the corpus stream is deterministic, shards
already on disk are skipped, and no token is missing or duplicated (tested). Under ``torchrun`` the
shards are divided among ranks (shard ``j`` on rank ``j mod world``); rank 0 writes the manifest.

Reading: :class:`ActivationStore` verifies the marker, then :meth:`ActivationStore.batches` streams
``(x, y)`` batches of tokens for training, shuffled within a shard with the shard order permuted per
epoch: memory holds one shard at a time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor

from mechscope.errors import ArtifactError, ConfigError, OutputPathError
from mechscope.runtime import rank_world
from mechscope.sae.config import DTYPE_NAMES, HarvestConfig  # noqa: F401  (HarvestConfig re-exported)

KIND = "activation-store"
SHARD_NAME = "shard-{:05d}.safetensors"
VERSION = 1
DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}


def _manifest(model, cfg: HarvestConfig, dims: dict[str, int], shards: dict[str, dict], complete: bool,
              seconds: float) -> dict:  # fmt: skip
    from mechscope.io import marker

    return marker(KIND, {n: {"size": r["size"], "sha256": r["sha256"]} for n, r in shards.items()},
                  fingerprint=model.fingerprint, version=VERSION, model=model.name, config=cfg.to_dict(), dims=dims,
                  shards={n: r["contexts"] for n, r in shards.items()}, complete=complete,
                  seconds=round(seconds, 2))  # fmt: skip


def harvest(model, cfg: HarvestConfig, out: str | Path, *, progress: bool = True, force: bool = False) -> ActivationStore:
    """Run ``model`` over the corpus and write the store at ``out`` (resuming one left there by a kill)."""
    from mechscope.sae.train import forward_autocast
    from mechscope.data.corpus import corpus_batches
    from mechscope.io import MARKER_FILE, check_output_dir, read_marker, sha256_file, write_json, write_safetensors

    for h in cfg.hooks:
        model.spec(h)
    names = model.resolve_names(list(cfg.hooks))
    shapes = model.hook_shapes()
    for h in names:
        spec = model.spec(h)
        if spec.shape[:2] != ("batch", "pos") or len(spec.shape) != 3:
            raise ConfigError(f"{h} has shape {spec.shape}: a store holds [batch, pos, d] hooks (residual, "
                              "attn_out, mlp_out, mlp.hook_post, ln*.hook_normalized)")  # fmt: skip
    if cfg.corpus.seq_len > model.cfg.n_ctx:
        raise ConfigError(f"seq_len {cfg.corpus.seq_len} exceeds the model's context window {model.cfg.n_ctx}")
    dims = {h: int(shapes[h][-1]) for h in names}
    out = check_output_dir(out, KIND, force=force)
    rank, world = rank_world()
    old = read_marker(out) if out.is_dir() else None
    shards: dict[str, dict] = {}
    seconds = 0.0
    if old is not None:
        if old.get("fingerprint") != model.fingerprint:
            raise OutputPathError(f"{out} holds a store of another model ({old.get('model')}): choose another --out")
        if old.get("config") != cfg.to_dict():
            raise OutputPathError(f"{out} holds a store harvested with other settings: choose another --out, or rerun "
                                  "with the same flags to resume it")  # fmt: skip
        for n, rec in old.get("files", {}).items():
            if (out / n).is_file():
                shards[n] = {**rec, "contexts": old["shards"][n]}
        seconds = float(old.get("seconds", 0.0))
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0 and old is None:
        write_json(out / MARKER_FILE, _manifest(model, cfg, dims, {}, False, 0.0))
    # a shard written by a run killed before it updated the manifest is whole (renamed into place): adopt it
    for j in range(cfg.n_shards):
        name = SHARD_NAME.format(j)
        if name not in shards and (out / name).is_file():
            start = j * cfg.shard_contexts
            shards[name] = {"size": (out / name).stat().st_size, "sha256": sha256_file(out / name),
                            "contexts": [start, min(start + cfg.shard_contexts, cfg.contexts)]}  # fmt: skip
    todo = [j for j in range(cfg.n_shards) if j % world == rank and SHARD_NAME.format(j) not in shards]
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        done_ctx = sum(r["contexts"][1] - r["contexts"][0] for r in shards.values())
        bar = tqdm(total=cfg.contexts * cfg.corpus.seq_len, initial=done_ctx * cfg.corpus.seq_len,
                   desc=f"mechscope: harvest {', '.join(names)}", unit="tok", unit_scale=True)  # fmt: skip
    t0 = time.perf_counter()
    batches = corpus_batches(model.tokenizer, cfg.corpus, cfg.split, cfg.shard_contexts,
                             cfg.contexts * cfg.corpus.seq_len, progress=progress and rank == 0)  # fmt: skip
    dtype = DTYPES[cfg.dtype]
    todo_set = set(todo)
    n_seen = 0
    for j, contexts in enumerate(batches):
        if j not in todo_set:
            n_seen += contexts.shape[0]
            continue
        acts = {h: [] for h in names}
        with torch.no_grad():
            for s in range(0, contexts.shape[0], cfg.batch_contexts):
                chunk = contexts[s:s + cfg.batch_contexts]
                with forward_autocast(model, cfg.forward_dtype):
                    cache = model.collect(chunk, names, prepend_bos=False)
                for h in names:
                    acts[h].append(cache[h][:, cfg.first_position:].to("cpu", dtype))
                if bar is not None:
                    bar.update(chunk.numel() * (world if world > 1 else 1))
        tensors = {"tokens": contexts.to(torch.int32)}
        for h in names:
            a = torch.cat(acts[h])
            if not torch.isfinite(a).all():
                raise ArtifactError(f"the model produced non-finite activations at {h} in contexts "
                                    f"{n_seen}..{n_seen + contexts.shape[0] - 1}: the model or its weights are broken")  # fmt: skip
            tensors[f"acts.{h}"] = a
        name = SHARD_NAME.format(j)
        write_safetensors(out / name, tensors, {"contexts": f"{n_seen},{n_seen + contexts.shape[0]}"})
        shards[name] = {"size": (out / name).stat().st_size, "sha256": sha256_file(out / name),
                        "contexts": [n_seen, n_seen + contexts.shape[0]]}  # fmt: skip
        n_seen += contexts.shape[0]
        if rank == 0:
            write_json(out / MARKER_FILE, _manifest(model, cfg, dims, dict(sorted(shards.items())), False,
                                                     seconds + time.perf_counter() - t0))  # fmt: skip
    if bar is not None:
        bar.close()
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    if rank == 0:
        for j in range(cfg.n_shards):  # other ranks' shards
            name = SHARD_NAME.format(j)
            if name not in shards and (out / name).is_file():
                start = j * cfg.shard_contexts
                shards[name] = {"size": (out / name).stat().st_size, "sha256": sha256_file(out / name),
                                "contexts": [start, min(start + cfg.shard_contexts, cfg.contexts)]}  # fmt: skip
        complete = len(shards) >= cfg.n_shards or n_seen < cfg.contexts  # the corpus may hold fewer contexts
        write_json(out / MARKER_FILE, _manifest(model, cfg, dims, dict(sorted(shards.items())), complete,
                                                 seconds + time.perf_counter() - t0))  # fmt: skip
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return ActivationStore(out, model)


class ActivationStore:
    """A store on disk, checked on open (marker, model fingerprint when a model is given, completeness)."""

    def __init__(self, path: str | Path, model=None, *, verify: bool = False, allow_incomplete: bool = False):
        from mechscope.io import verify_artifact

        self.path = Path(path).expanduser()
        fix = "harvest it again with `mechscope sae harvest`"
        self.marker = verify_artifact(self.path, KIND, getattr(model, "fingerprint", None), verify=verify, fix=fix)
        try:
            self.config = HarvestConfig.from_dict(self.marker["config"])
            self.dims: dict[str, int] = {k: int(v) for k, v in self.marker["dims"].items()}
            self.shard_contexts: dict[str, list[int]] = dict(self.marker["shards"])
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise ArtifactError(f"the store at {self.path} has an unreadable manifest ({exc}): {fix}") from None
        if not self.marker.get("complete") and not allow_incomplete:
            raise ArtifactError(f"the store at {self.path} is incomplete (its harvest was interrupted): run the same "
                                "`mechscope sae harvest` command again to finish it")  # fmt: skip
        self._verified: set[str] = set()
        self.fingerprint: str | None = self.marker.get("fingerprint")
        self.model_name: str | None = self.marker.get("model")

    @property
    def hooks(self) -> list[str]:
        return list(self.dims)

    @property
    def shard_names(self) -> list[str]:
        return sorted(self.shard_contexts)

    @property
    def n_contexts(self) -> int:
        return sum(b - a for a, b in self.shard_contexts.values())

    @property
    def positions(self) -> int:
        """Stored positions per context."""
        return self.config.corpus.seq_len - self.config.first_position

    @property
    def n_tokens(self) -> int:
        """Activation rows (contexts x stored positions)."""
        return self.n_contexts * self.positions

    def check_hook(self, hook: str) -> None:
        if hook not in self.dims:
            raise ArtifactError(f"the store at {self.path} holds {', '.join(self.dims)}, not {hook}: harvest {hook} "
                                "or train on a hook it holds")  # fmt: skip

    def shard(self, name: str, hooks: list[str] | None = None, verify: bool = True) -> tuple[Int[Tensor, "context seq"], dict[str, Tensor]]:
        """``(tokens, {hook: acts [contexts, positions, d]})`` of one shard, its checksum verified on first read
        (later epochs only check the size: a shard is written once, by rename)."""
        from mechscope.io import sha256_file

        path = self.path / name
        fix = "harvest the store again with `mechscope sae harvest`"
        rec = self.marker["files"].get(name)
        if rec is None or not path.is_file():
            raise ArtifactError(f"the store at {self.path} lacks {name}: {fix}")
        if path.stat().st_size != rec["size"] or (verify and name not in self._verified and sha256_file(path) != rec["sha256"]):
            raise ArtifactError(f"the store at {self.path} is corrupted ({name} fails its checksum): {fix}")
        if verify:
            self._verified.add(name)
        want = hooks if hooks is not None else self.hooks
        try:
            t = read_tensors(path, ["tokens", *(f"acts.{h}" for h in want)])
        except (OSError, ValueError, KeyError) as exc:
            raise ArtifactError(f"the store at {self.path} is corrupted ({name}: {exc}): {fix}") from None
        return t["tokens"], {h: t[f"acts.{h}"] for h in want}

    def batches(self, hook: str, target: str | None = None, batch_tokens: int = 2048, *, seed: int = 0,
                start_batch: int = 0, rank: int = 0, world: int = 1,
                dtype: torch.dtype = torch.float32) -> Iterator[tuple[Float[Tensor, "batch d_in"], Float[Tensor, "batch d_out"]]]:  # fmt: skip
        """An endless stream of ``(x, y)`` token batches for training, deterministic in ``seed``.

        Epoch ``e`` visits the shards in a permutation drawn from ``(seed, e)`` and each shard's rows in
        a permutation drawn from ``(seed, e, shard)``; a batch never spans two shards' leftovers (they
        carry over). ``start_batch`` skips that many batches without loading their data twice (for
        resume). With ``world > 1`` every global batch of ``batch_tokens · world`` rows is split and
        rank ``rank`` gets its slice, so the union over ranks equals the one-rank stream of the global batch.
        """
        target = target or hook
        self.check_hook(hook)
        self.check_hook(target)
        names = self.shard_names
        if not names:
            raise ArtifactError(f"the store at {self.path} holds no shard: harvest it again")
        global_batch = batch_tokens * world
        pair = [hook] if target == hook else [hook, target]

        def permuted(si: int, epoch: int) -> tuple[Tensor, Tensor | None, Tensor]:
            """The shard's rows as loaded (never copied whole) and the permutation that orders them."""
            _, acts = self.shard(names[si], pair)
            x = acts[hook].reshape(-1, acts[hook].shape[-1])
            y = acts[target].reshape(-1, acts[target].shape[-1]) if target != hook else None
            perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(hash_seed(seed, epoch, si)))
            return x, y, perm

        emitted, epoch = 0, 0
        carry: list[tuple[Tensor, Tensor | None]] = []  # rows left over from earlier shards (< one global batch)
        pending: list[tuple[int, int, int]] = []  # the same, for skipped shards: (epoch, shard, rows from its end)
        while True:
            g = torch.Generator().manual_seed(hash_seed(seed, epoch))
            for si in torch.randperm(len(names), generator=g).tolist():
                a, b = self.shard_contexts[names[si]]
                rows_here = (b - a) * self.positions
                have = sum(c[0].shape[0] for c in carry) + sum(p[2] for p in pending)
                n = (have + rows_here) // global_batch
                left = (have + rows_here) % global_batch
                if emitted + n <= start_batch and not carry:  # no batch of this shard is emitted: skip, unread
                    emitted += n
                    keep = []  # the tail that carries into the next batch, as (epoch, shard, rows from its end)
                    for ep, sj, r in reversed([*pending, (epoch, si, rows_here)]):
                        if left <= 0:
                            break
                        keep.append((ep, sj, min(r, left)))
                        left -= r
                    pending = keep[::-1]
                    continue
                for ep, sj, r in pending:  # resume: read back the tails of skipped shards this batch needs
                    px, py, pp = permuted(sj, ep)
                    carry.append((px[pp[-r:]], py[pp[-r:]] if py is not None else None))
                pending = []
                x, y, perm = permuted(si, epoch)
                cx = torch.cat([c[0] for c in carry]) if carry else x[:0]
                cy = (torch.cat([c[1] for c in carry]) if carry else y[:0]) if y is not None else None
                c = cx.shape[0]

                def rows(lo: int, hi: int, src: Tensor, head: Tensor) -> Tensor:
                    """Rows ``lo..hi-1`` of (carried rows, then this shard in permuted order)."""
                    parts = [head[lo:min(hi, c)]] if lo < c else []
                    if hi > c:
                        parts.append(src[perm[max(lo, c) - c:hi - c]])
                    return torch.cat(parts) if len(parts) > 1 else parts[0]

                for i in range(n):
                    if emitted >= start_batch:
                        lo = i * global_batch + rank * batch_tokens
                        xb = rows(lo, lo + batch_tokens, x, cx).to(dtype)
                        yield xb, (rows(lo, lo + batch_tokens, y, cy).to(dtype) if y is not None else xb)
                    emitted += 1
                end = c + rows_here
                carry = [(rows(n * global_batch, end, x, cx).clone(),
                          rows(n * global_batch, end, y, cy).clone() if y is not None else None)] if left else []  # fmt: skip
                del x, y, perm, cx, cy
            epoch += 1


_ST_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "I32": torch.int32,
              "I64": torch.int64, "U8": torch.uint8}


def read_tensors(path: Path, keys: list[str]) -> dict[str, Tensor]:
    """Some tensors of a safetensors file, each read straight into its own buffer (``readinto``): memory holds
    one copy of what is asked for, not a mapped file plus a copy (``safetensors.load_file``) — the store's
    training stream keeps one shard in memory and nothing more."""
    import json
    import struct

    out = {}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if not 2 <= n <= 1 << 24:
            raise ValueError("bad safetensors header length")
        header = json.loads(f.read(n))
        base = 8 + n
        for key in keys:
            rec = header[key]
            dtype = _ST_DTYPES[rec["dtype"]]
            a, b = rec["data_offsets"]
            t = torch.empty(rec["shape"], dtype=dtype)
            raw = t.view(-1).view(torch.uint8) if t.numel() else t.view(torch.uint8)
            if raw.numel() != b - a:
                raise ValueError(f"{key}: {b - a} bytes for a {tuple(rec['shape'])} {rec['dtype']} tensor")
            f.seek(base + a)
            if f.readinto(memoryview(raw.numpy())) != b - a:
                raise ValueError(f"{key} is truncated")
            out[key] = t
    return out


def hash_seed(*parts: int | str) -> int:
    """A 63-bit seed from integers and strings (stable across processes, unlike ``hash``)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 1
