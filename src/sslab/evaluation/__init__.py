"""Evaluation of frozen features: weighted kNN and the offline linear probe."""

from .features import extract_features, gather_shards, sharded_features
from .knn import knn_accuracy, knn_predict
from .linear import linear_probe

__all__ = ["extract_features", "gather_shards", "sharded_features", "knn_accuracy", "knn_predict", "linear_probe"]
