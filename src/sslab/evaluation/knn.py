"""Weighted k-nearest-neighbour classification on cosine similarity (Wu et al. 2018; DINO's eval_knn).

Each test feature votes with its k most similar training features; a neighbour with cosine
similarity s adds exp(s / T) to its class. Defaults k=20, T=0.07 (InstDisc, DINO).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def knn_predict(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    chunk: int = 1024,
) -> torch.Tensor:
    """Predicted labels ``(M,)`` for ``test_features (M, D)`` from a labelled bank ``(N, D)``."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    bank = F.normalize(train_features.float(), dim=1)
    num_classes = int(num_classes or int(train_labels.max()) + 1)
    k = min(k, bank.shape[0])
    preds = []
    for start in range(0, test_features.shape[0], chunk):
        q = F.normalize(test_features[start : start + chunk].float(), dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)
        votes = torch.zeros(q.shape[0], num_classes, device=q.device)
        votes.scatter_add_(1, train_labels[idx], (sim / temperature).exp())
        preds.append(votes.argmax(1))
    return torch.cat(preds)


def knn_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
) -> float:
    """Top-1 accuracy of :func:`knn_predict` on labelled test features."""
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    pred = knn_predict(train_features, train_labels, test_features, k, temperature, num_classes)
    return float((pred == test_labels.to(pred.device)).float().mean())
