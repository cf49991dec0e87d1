"""Offline linear probe on frozen features (the luckmatters ``linear_feature_eval.py`` protocol).

Features are standardised with the training split's mean and std (scikit-learn's
``StandardScaler``), then a logistic-regression layer is trained with Adam (lr 3e-4, weight decay
1e-3, batch 128, 50 epochs). sslab reports the accuracy after the last epoch; the luckmatters
code reports the best test accuracy over epochs, which selects on the test set -- ``report="best"``
reproduces it for the Tian et al. recipes, and says so in their headers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    epochs: int = 50,
    lr: float = 3e-4,
    weight_decay: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    report: str = "last",
) -> float:
    """Top-1 test accuracy of a linear classifier trained on standardised frozen features: after the
    last epoch (``report="last"``) or the best over the epochs (``"best"``, luckmatters)."""
    if report not in ("last", "best"):
        raise ValueError(f"unknown linear report '{report}'; valid choices: last, best")
    g = torch.Generator().manual_seed(seed)
    x, xt = train_features.double(), test_features.double()
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-8)
    x, xt = ((x - mean) / std).float(), ((xt - mean) / std).float()
    y = train_labels.long()
    num_classes = int(max(y.max(), test_labels.max())) + 1
    layer = torch.nn.Linear(x.shape[1], num_classes).to(x.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer.reset_parameters()
    opt = torch.optim.Adam(layer.parameters(), lr=lr, weight_decay=weight_decay)
    test_labels = test_labels.to(xt.device)
    best = 0.0
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=g).to(x.device)
            for i in range(0, len(x), batch_size):
                idx = order[i : i + batch_size]
                loss = F.cross_entropy(layer(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            if report == "best":
                with torch.no_grad():
                    best = max(best, float((layer(xt).argmax(1) == test_labels).float().mean()))
    if report == "best":
        return best
    with torch.no_grad():
        return float((layer(xt).argmax(1) == test_labels).float().mean())
