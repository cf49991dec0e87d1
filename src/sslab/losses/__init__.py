"""Losses: pure functions, tensors in, scalar out; each docstring gives its equation and source."""

from .center import center_penalty
from .clustering import sinkhorn_knopp, swav
from .contrastive import info_nce, momentum_contrast, spectral_contrastive
from .distillation import dino
from .duality import dimension_contrastive, sample_contrastive, standardize_dimensions
from .redundancy import barlow_twins, off_diagonal, vicreg, vicreg_exp
from .siamese import negative_cosine
from .whitening import w_mse, whiten

__all__ = [
    "barlow_twins", "center_penalty", "dimension_contrastive", "dino", "info_nce", "momentum_contrast",
    "negative_cosine", "off_diagonal", "sample_contrastive", "sinkhorn_knopp", "spectral_contrastive",
    "standardize_dimensions", "swav", "vicreg", "vicreg_exp", "w_mse", "whiten",
]
