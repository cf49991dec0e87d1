"""kNN and the linear probe on constructed features with known answers."""

import math

import pytest
import torch

from sslab.evaluation import knn_accuracy, knn_predict, linear_probe


def test_knn_weighted_vote_hand_computed():
    bank = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    q = torch.tensor([[1.0, 0.1]])
    # k=3, T=1: class 0 gets e^{cos(q,b0)}, class 1 gets e^{cos(q,b1)} + e^{cos(q,b2)}
    qn = q / q.norm()
    s = (qn @ torch.nn.functional.normalize(bank, dim=1).T)[0]
    votes1 = math.exp(s[1]) + math.exp(s[2])
    assert votes1 > math.exp(s[0])
    assert knn_predict(bank, labels, q, k=3, temperature=1.0).item() == 1
    # k=1 picks the nearest neighbour alone
    assert knn_predict(bank, labels, q, k=1).item() == 0
    # a sharp temperature lets the nearest neighbour outvote two farther ones
    assert knn_predict(bank, labels, q, k=3, temperature=0.01).item() == 0


def test_knn_separable_clusters_perfect_and_random_chance():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(5, 16, generator=g) * 5
    y = torch.arange(500) % 5
    x = centers[y] + torch.randn(500, 16, generator=g) * 0.1
    assert knn_accuracy(x[:400], y[:400], x[400:], y[400:]) == 1.0
    noise = torch.randn(500, 16, generator=g)
    assert knn_accuracy(noise[:400], y[:400], noise[400:], y[400:]) < 0.4


def test_linear_probe_learns_linear_labels_but_not_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1200, 10, generator=g)
    y = (x @ torch.randn(10, 4, generator=g)).argmax(1)  # linearly separable classes
    assert linear_probe(x[:1000], y[:1000], x[1000:], y[1000:], epochs=50, lr=1e-2) > 0.93
    yr = torch.randint(0, 4, (1200,), generator=g)
    assert linear_probe(x[:1000], yr[:1000], x[1000:], yr[1000:], epochs=30, lr=1e-2) < 0.4


def test_linear_probe_best_epoch_report():
    """``report="best"`` (luckmatters) is the best test accuracy over the epochs: >= the last, equal with one epoch."""
    from sslab.evaluation import linear_probe

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 10, generator=g), torch.randint(0, 3, (200,), generator=g)
    xt, yt = torch.randn(100, 10, generator=g), torch.randint(0, 3, (100,), generator=g)
    last = linear_probe(x, y, xt, yt, epochs=5)
    best = linear_probe(x, y, xt, yt, epochs=5, report="best")
    assert best >= last
    assert linear_probe(x, y, xt, yt, epochs=1, report="best") == linear_probe(x, y, xt, yt, epochs=1)
    with pytest.raises(ValueError, match="valid choices: last, best"):
        linear_probe(x, y, xt, yt, report="max")
