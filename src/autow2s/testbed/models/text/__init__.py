"""Text backends: a frozen sentence encoder with a head, a TF-IDF linear model, and HF causal LMs.

Importing this package is cheap: transformers, sentence-transformers, peft and scikit-learn are
imported only when a model is built, so `autow2s --help` stays fast.
"""

from __future__ import annotations

from autow2s.testbed.models.text.encoder import EncoderBackend
from autow2s.testbed.models.text.hf_lm import HFLMBackend
from autow2s.testbed.models.text.tfidf import TfidfBackend


def text_backends() -> dict[str, object]:
    """The text backends under their registry names (see docs/text_backends.md)."""
    return {
        "encoder": EncoderBackend(name="encoder"),
        "encoder-trunc": EncoderBackend(name="encoder-trunc", layers=1),
        "tfidf": TfidfBackend(name="tfidf"),
        "hf-lm": HFLMBackend(name="hf-lm"),
    }


__all__ = ["EncoderBackend", "HFLMBackend", "TfidfBackend", "text_backends"]
