"""``mechscope finetune``: a short LoRA or full fine-tune on a narrow corpus (a built-in theme or text files),
saved as a plain Hugging Face folder that ``mechscope.load`` and ``mechscope diff`` read."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from mechscope.cli.common import add_json_arg, add_model_arg, add_parser, emit_json, load_model

EXAMPLES = """\
  mechscope finetune --theme ocean --out runs/gemma-ocean                  # LoRA r16, 100 steps (~5 min on 2 cores)
  mechscope finetune --theme cooking --steps 60 --out runs/gemma-cooking --png loss.png
  mechscope finetune --text notes/*.txt --lora 0 --train blocks --lr 3e-5 --out runs/gemma-notes
  mechscope.load("runs/gemma-ocean") then loads it like any Hugging Face folder;
  mechscope diff gemma-3-270m runs/gemma-ocean --prompts prompts.txt compares it with its base.
Killed or Ctrl-C? Run the same command again: it resumes from OUT.checkpoint, bit for bit on CPU.
Themes: {themes}. See docs/diffing.md, "Fine-tune"."""


def register(subparsers) -> None:
    from mechscope.diff.finetune_config import FinetuneConfig as C
    from mechscope.diff.themes import THEMES

    themes = "; ".join(f"{t.name} ({t.about})" for t in THEMES.values())
    p = add_parser(subparsers, "finetune",
                   "Fine-tune a model on a narrow corpus (a built-in theme or your text) with LoRA or in full, on CPU "
                   "in minutes, with checkpoints and bit-identical resume; the output is a Hugging Face folder.",
                   EXAMPLES.format(themes=themes))  # fmt: skip
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--theme", help=f"a built-in themed corpus: {', '.join(THEMES)}")
    src.add_argument("--text", nargs="+", metavar="FILE", help="text files (.txt, .jsonl, .parquet), folders or globs")
    p.add_argument("--out", type=Path, required=True, help="output folder (a Hugging Face model folder + finetune.json)")
    p.add_argument("--steps", type=int, default=C.steps, help="optimiser steps")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 2e-4 with LoRA, 3e-5 in full)")
    p.add_argument("--batch", type=int, default=C.batch, help="contexts per step")
    p.add_argument("--seq-len", type=int, default=C.seq_len, help="tokens per context, BOS included")
    p.add_argument("--lora", type=int, default=C.lora, metavar="R", help="LoRA rank on the blocks' linear layers; 0 = full fine-tune")
    p.add_argument("--train", choices=("blocks", "embeddings", "all"), default=C.train,
                   help="with --lora 0: what is trained (the tied embedding is frozen by default)")
    p.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default=C.precision,
                   help="matmul precision (auto: bfloat16 where the CPU is fast at it)")
    p.add_argument("--docs", type=int, default=C.docs, help="documents generated for --theme")
    p.add_argument("--general", type=float, default=C.general, metavar="SHARE",
                   help="share of the contexts from general text (the built-in corpus), to keep other abilities; 0 = none")
    p.add_argument("--seed", type=int, default=C.seed, help="seeds the theme text, the data order and the LoRA start")
    p.add_argument("--checkpoint-every", type=int, default=C.checkpoint_every, metavar="N", help="steps between checkpoints")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all; resume with the same number)")
    p.add_argument("--fresh", action="store_true", help="delete OUT.checkpoint and start from step 0")
    p.add_argument("--png", type=Path, help="write the loss curve")
    add_model_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mechscope.diff import finetune_checkpoint as ckpt
    from mechscope.diff.finetune_config import FinetuneConfig
    from mechscope.errors import ConfigError
    from mechscope.diff.finetune import check_output, check_text_files
    from mechscope.io import check_output_file

    if args.lr is not None and not math.isfinite(args.lr):
        raise ConfigError(f"--lr must be a finite number, got {args.lr}")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be ≥ 1, got {args.threads}")
    cfg = FinetuneConfig(theme=args.theme, text=tuple(args.text or ()), steps=args.steps, batch=args.batch,
                         seq_len=args.seq_len, lr=args.lr, lora=args.lora, train=args.train, precision=args.precision,
                         docs=args.docs, general=args.general, seed=args.seed, checkpoint_every=args.checkpoint_every)  # fmt: skip
    check_text_files(cfg.text)  # a missing file: one line, before the model loads
    out = check_output(args.out)
    png = check_output_file(args.png, suffixes=(".png",)) if args.png else None
    ck_dir = ckpt.check_checkpoint_dir(ckpt.checkpoint_dir(out))
    if args.fresh:
        ckpt.remove_checkpoint(ck_dir)
    model = load_model(args)
    from mechscope.diff.finetune import finetune

    res = finetune(model, cfg, out, progress=not args.json, threads=args.threads)
    data = res.to_dict()
    files = [str(out)]
    if png:
        from mechscope.viz.finetune import save_loss_png

        files.append(str(save_loss_png(data, png)))
    if args.json:
        emit_json({**data, "files": files})
        return 0
    print(render(data))
    print("".join(f"wrote {f}\n" for f in files).rstrip())
    return 0


def render(data: dict) -> str:
    """The human summary of a fine-tune record."""
    cfg, losses = data["config"], data["losses"]
    how = f"LoRA r{cfg['lora']}" if cfg["lora"] else f"full ({cfg['train']})"
    lines = [f"fine-tuned {data['base']['name']} on {data['corpus']['source']}: {how}, {data['steps']} steps × "
             f"{cfg['batch']}×{cfg['seq_len']} tokens, lr {data['learning_rate']:g}, {data['precision']}, "
             f"{data['trainable_params']:,} trained weights",
             f"loss {losses[0]:.3f} → {_tail_mean(losses):.3f} (mean of the last tenth); "
             f"{data['tokens_per_s']:,.0f} tokens/s, {data['seconds']:.0f} s"
             + (f"; resumed at step {', '.join(map(str, data['resumed_at']))}" if data["resumed_at"] else "")]  # fmt: skip
    shift = data.get("theme_shift")
    if shift:
        lines.append(f"theme words' next-token probability on {len(shift['prompts'])} neutral prompts: "
                     f"base {shift['base_mean']:.2%} → tuned {shift['tuned_mean']:.2%}")  # fmt: skip
        for p, b, t in zip(shift["prompts"], shift["base"], shift["tuned"]):
            lines.append(f"  {p!r:<42} {b:7.2%} → {t:7.2%}")
    return "\n".join(lines)


def _tail_mean(values: list[float]) -> float:
    tail = values[-max(1, len(values) // 10):]
    return sum(tail) / len(tail)
