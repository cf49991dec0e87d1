"""The parts methods are built from, each a small module with its own state and ``after_step``."""

from .count import HostMirror
from .direct import CorrelationEstimate, DirectPredictor, directcopy_predictor, directset_predictor
from .predictor import Predictor
from .queue import Queue
from .target import EMATarget, OnlineTarget, cosine_momentum, ema_update, frozen_copy, siamese_target

__all__ = [
    "CorrelationEstimate", "DirectPredictor", "EMATarget", "HostMirror", "OnlineTarget", "Predictor", "Queue", "cosine_momentum",
    "directcopy_predictor", "directset_predictor", "ema_update", "frozen_copy", "siamese_target",
]
