"""Losses: pure functions, tensors in, scalar out; each docstring gives its equation and source."""

from .center import center_penalty
from .contrastive import info_nce, spectral_contrastive
from .duality import dimension_contrastive, sample_contrastive
from .redundancy import barlow_twins, off_diagonal, vicreg
from .siamese import negative_cosine

__all__ = [
    "barlow_twins", "center_penalty", "dimension_contrastive", "info_nce", "negative_cosine", "off_diagonal",
    "sample_contrastive", "spectral_contrastive", "vicreg",
]
