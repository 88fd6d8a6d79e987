"""Tiny random Qwen2/Qwen3-architecture models with a word-level tokenizer, built offline.

Tests and `benchmarks/gpu_lora.py --tiny` use them to run the real hf-lm code (from_pretrained,
peft LoRA, label tokens) with no hub and in seconds. Their predictions mean nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from autow2s.testbed.models.text.common import LABEL_WORDS

SPECIAL = ("<pad>", "<eos>", "[UNK]")
_WORD = re.compile(r"\w+|[^\w\s]")


def build_word_tokenizer(texts: Iterable[str]) -> Any:
    """A PreTrainedTokenizerFast whose vocabulary is every word and symbol in `texts`."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {token: i for i, token in enumerate(SPECIAL)}
    words = [w for pair in LABEL_WORDS.values() for w in pair] + ["Question", "Answer", "Label", ":"]
    for text in texts:
        words.extend(_WORD.findall(text))
    for word in words:
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="<pad>", eos_token="<eos>")


def tiny_config(arch: str, vocab_size: int, *, hidden: int = 64, layers: int = 2, heads: int = 4,
                kv_heads: int = 2, intermediate: int = 128, max_positions: int = 1024) -> Any:
    """A small Qwen2 or Qwen3 config (the anchor's weak and strong families)."""
    from transformers import Qwen2Config, Qwen3Config

    common: dict[str, Any] = dict(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=intermediate,
                  num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                  max_position_embeddings=max_positions, tie_word_embeddings=False, pad_token_id=0, eos_token_id=1)
    if arch == "qwen2":
        return Qwen2Config(**common)
    if arch == "qwen3":
        return Qwen3Config(head_dim=hidden // heads, **common)
    raise ValueError(f"unknown tiny arch {arch!r}; use qwen2 or qwen3")


def build_tiny_lm(directory: str | Path, texts: Iterable[str], *, arch: str = "qwen3", seed: int = 0,
                  **shape: int) -> Path:
    """Write a random tiny causal LM and its tokenizer to `directory`; returns the directory."""
    import torch
    from transformers import AutoModelForCausalLM

    directory = Path(directory)
    tokenizer = build_word_tokenizer(texts)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(arch, len(tokenizer), **shape))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
