"""Tokenised prompts and the three ways a batch reaches the label position of a causal LM.

- "padded": the plain HF path, the reference: right padding, the full forward with logits at
  every position, then a gather at each row's last token. Simple and memory-hungry.
- "left": left padding, the decoder only, and the LM head applied at the last position alone
  (what logits_to_keep=1 does). Combined with length-grouped batches there is little padding.
- "packed": every sequence of the batch in one row, positions restarting at each sequence and no
  padding at all; attention stays within a sequence (flash-attention varlen on CUDA, a
  block-causal mask elsewhere). The LM head runs at the label positions only.
All three give the same numbers up to float rounding (tests/test_hf_lm_paths.py checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from autow2s.errors import AutoW2SError
from autow2s.testbed.models.text.common import LABEL_WORDS, prompt_text

IMPLS: tuple[str, ...] = ("padded", "left", "packed")
THINK_STUB = "<think>\n\n</think>\n\n"


@dataclass(frozen=True)
class PromptCodec:
    """Turns rows into token ids ending at 'Label:' and knows the two label tokens."""

    tokenizer: Any
    use_chat: bool
    max_length: int

    def label_token_ids(self, kind: str) -> tuple[int, int]:
        """Token ids of the (negative, positive) label words, encoded as the anchor does (no leading space)."""
        ids = []
        for word in LABEL_WORDS[kind]:
            encoded = self.tokenizer.encode(word, add_special_tokens=False)
            if not encoded:
                raise AutoW2SError(f"the tokenizer encodes label word {word!r} to nothing; use another tokenizer")
            ids.append(int(encoded[0]))
        if ids[0] == ids[1]:
            raise AutoW2SError(f"label words {LABEL_WORDS[kind]} share their first token; they must differ")
        return ids[0], ids[1]

    def encode(self, row: dict[str, Any]) -> list[int]:
        text = prompt_text(row)
        if self.use_chat:
            text = self.tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                      add_generation_prompt=True)
            text = text.replace(THINK_STUB, "")
            ids = self.tokenizer.encode(text, add_special_tokens=False)
        else:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            if self.tokenizer.bos_token_id is not None:
                ids = [self.tokenizer.bos_token_id] + ids
        if len(ids) > self.max_length:
            # Keep the start (the question) and the end (the answer and 'Label:'); drop the middle.
            head = self.max_length // 4
            ids = ids[:head] + ids[len(ids) - (self.max_length - head):]
        return ids

    def encode_all(self, rows: Sequence[dict[str, Any]]) -> list[list[int]]:
        return [self.encode(row) for row in rows]


def length_grouped_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Batches of similar length: shuffle, sort within mega-batches of 16, split, shuffle the batches.

    With rng=None (inference) it is a plain sort by length.
    """
    n = len(lengths)
    lengths_array = np.asarray(lengths)
    if rng is None:
        order = np.argsort(-lengths_array, kind="stable")
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    order = rng.permutation(n)
    mega = batch_size * 16
    batches: list[np.ndarray] = []
    for start in range(0, n, mega):
        chunk = order[start : start + mega]
        chunk = chunk[np.argsort(-lengths_array[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def random_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def collate(sequences: Sequence[list[int]], impl: str, pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Tensors for one batch under `impl`; 'label_index' says where each sequence's label position is."""
    lengths = [len(s) for s in sequences]
    if impl == "packed":
        flat = [token for seq in sequences for token in seq]
        positions = [p for length in lengths for p in range(length)]
        ends = np.cumsum(lengths) - 1
        return {"input_ids": torch.tensor([flat], device=device),
                "position_ids": torch.tensor([positions], device=device),
                "label_index": torch.tensor(ends, device=device)}
    width = max(lengths)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if impl == "left":
            ids[row, width - len(seq):] = torch.tensor(seq)
            mask[row, width - len(seq):] = 1
        else:
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
    batch = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
    if impl == "left":
        batch["position_ids"] = (mask.cumsum(-1) - 1).clamp_min(0).to(device)
        batch["label_index"] = torch.full((len(sequences),), width - 1, device=device)
    else:
        batch["label_index"] = torch.tensor([length - 1 for length in lengths], device=device)
    return batch


def label_hidden(causal_lm: Any, batch: dict[str, torch.Tensor], impl: str, decoder: Any = None) -> torch.Tensor:
    """The last-layer hidden state at each sequence's label position, shape (batch, hidden).

    `decoder` may be a compiled copy of causal_lm's decoder (torch.compile); default: the decoder.
    """
    decoder = decoder if decoder is not None else causal_lm.get_decoder()
    if impl == "packed":
        out = decoder(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False)
        return out.last_hidden_state[0, batch["label_index"]]
    out = decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                  position_ids=batch.get("position_ids"), use_cache=False)
    rows = torch.arange(batch["input_ids"].shape[0], device=batch["input_ids"].device)
    return out.last_hidden_state[rows, batch["label_index"]]


def label_logits(causal_lm: Any, batch: dict[str, torch.Tensor], impl: str, decoder: Any = None) -> torch.Tensor:
    """Full-vocabulary logits at the label positions, shape (batch, vocab), in float32."""
    if impl not in IMPLS:
        raise AutoW2SError(f"unknown batch impl {impl!r}; use one of {', '.join(IMPLS)}")
    if impl == "padded":
        logits = causal_lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
        rows = torch.arange(logits.shape[0], device=logits.device)
        return logits[rows, batch["label_index"]].float()
    head = causal_lm.get_output_embeddings()
    return head(label_hidden(causal_lm, batch, impl, decoder)).float()


def binary_logit_and_penalty(logits: torch.Tensor, label_ids: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """logit(positive) - logit(negative), and the log-mass outside the two label tokens.

    The anchor's full-vocabulary cross-entropy with a target on the two label tokens equals the
    two-way cross-entropy on the first value plus the second; keeping them apart lets any
    pluggable binary loss (xent, logconf, product) act on the first.
    """
    pair = logits[:, list(label_ids)]
    penalty = torch.logsumexp(logits, dim=-1) - torch.logsumexp(pair, dim=-1)
    return pair[:, 1] - pair[:, 0], penalty
