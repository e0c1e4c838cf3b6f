"""Tiny random models for every supported architecture, with a small byte-level BPE tokenizer."""

from __future__ import annotations

import functools

import torch

TEXT = (
    "The capital of France is Paris. The reliability of Wikipedia is very questionable. "
    "Mechanistic interpretability reads the residual stream of a transformer layer by layer. "
    "Sparse autoencoders find features; attention heads move information between positions. "
) * 4

VOCAB = 400


@functools.lru_cache(maxsize=1)
def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )  # fmt: skip
    tok.train_from_iterator([TEXT], trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def _configs():
    from transformers import (Gemma2Config, Gemma3TextConfig, GPT2Config, GPTNeoXConfig, LlamaConfig,
                              MistralConfig, Qwen2Config, Qwen3Config)  # fmt: skip

    common = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                  initializer_range=0.1, pad_token_id=0, bos_token_id=2, eos_token_id=1)  # fmt: skip
    return {
        "gemma3": lambda: Gemma3TextConfig(**common, head_dim=16, query_pre_attn_scalar=16, sliding_window=5,
                                           layer_types=["sliding_attention", "full_attention", "sliding_attention"]),
        "gemma2": lambda: Gemma2Config(**common, head_dim=16, query_pre_attn_scalar=16, sliding_window=5,
                                       final_logit_softcapping=3.0, attn_logit_softcapping=5.0),
        "llama": lambda: LlamaConfig(**common),
        "mistral": lambda: MistralConfig(**common, sliding_window=6),
        "qwen2": lambda: Qwen2Config(**common),
        "qwen3": lambda: Qwen3Config(**common, head_dim=16),
        "gpt2": lambda: GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=3, n_head=4, n_positions=128,
                                   initializer_range=0.1, bos_token_id=2, eos_token_id=1),
        "gpt-neox": lambda: GPTNeoXConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=96,
                                          num_hidden_layers=3, num_attention_heads=4, max_position_embeddings=128,
                                          rotary_pct=0.5, use_parallel_residual=True, initializer_range=0.1,
                                          bos_token_id=2, eos_token_id=1),
        "gpt-neox-serial": lambda: GPTNeoXConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=96,
                                                 num_hidden_layers=3, num_attention_heads=4,
                                                 max_position_embeddings=128, use_parallel_residual=False,
                                                 initializer_range=0.1, bos_token_id=2, eos_token_id=1),
    }  # fmt: skip


TINY_ARCHS = tuple(_configs())


def tiny_hf(arch: str, seed: int = 0, attn_implementation: str | None = None):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    cfg = _configs()[arch]()
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation=attn_implementation)
    with torch.no_grad():  # norms start at 0/1; give them some spread so tests see real numerics
        for name, p in model.named_parameters():
            if "norm" in name or "ln" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def tiny_model(arch: str, seed: int = 0):
    from mechscope.model.hooked import HookedModel

    return HookedModel(tiny_hf(arch, seed), tiny_tokenizer(), name=f"tiny-{arch}")


def save_tiny_dir(path, arch: str = "gemma3") -> str:
    """A tiny model saved as a Hugging Face directory (what ``--model DIR`` loads); returns the path."""
    tiny_hf(arch).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return str(path)


def save_tiny_corpus(directory, repeats: int = 6) -> str:
    """A .jsonl corpus of many short documents (both train and held-out splits get some); returns the path."""
    import json
    from pathlib import Path

    lines = [json.dumps({"text": s.strip() + f" ({i})"}) for i, s in enumerate(TEXT.split(". ") * repeats) if s.strip()]
    path = Path(directory) / "text.jsonl"
    path.write_text("\n".join(lines))
    return str(path)
