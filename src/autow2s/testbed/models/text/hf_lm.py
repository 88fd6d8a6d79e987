"""stub"""
from dataclasses import dataclass
@dataclass(frozen=True)
class HFLMBackend:
    name: str = "hf-lm"
    kinds: tuple = ("binary", "pairwise")
