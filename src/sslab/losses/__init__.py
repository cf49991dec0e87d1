"""Losses: pure functions, tensors in, scalar out; each docstring gives its equation and source."""

from .contrastive import info_nce
from .siamese import negative_cosine

__all__ = ["info_nce", "negative_cosine"]
