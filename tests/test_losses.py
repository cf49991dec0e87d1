"""Losses against hand-computed cases and direct transcriptions of the official formulas (float64)."""

import math

import pytest
import torch

from sslab.losses import info_nce, negative_cosine, spectral_contrastive


def nt_xent_reference(z1, z2, t, negatives="none", decoupled=False):
    """Loop transcription of NT-Xent (and its abs / sq / decoupled variants) over the 2N anchors."""
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    n = len(z1)
    f = {"none": lambda c: c, "abs": abs, "sq": lambda c: c * c}[negatives]
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        num = math.exp(float(z[i] @ z[pos]) / t)
        neg = sum(math.exp(f(float(z[i] @ z[k])) / t) for k in range(2 * n) if k not in (i, pos))
        total += -math.log(num / (neg if decoupled else neg + num))
    return total / (2 * n)


def test_info_nce_hand_computed_two_pairs():
    # two orthogonal images, views identical: positives cos 1, negatives cos 0
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    z2 = z1.clone()
    t = 0.5
    # each anchor: candidates = {positive (cos 1), two negatives (cos 0)}
    expected = -math.log(math.exp(2) / (math.exp(2) + 2))
    assert abs(info_nce(z1, z2, temperature=t).item() - expected) < 1e-12


def test_info_nce_matches_loop_reference():
    z1, z2 = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    for t in (0.1, 0.5, 1.0):
        assert abs(info_nce(z1, z2, t).item() - nt_xent_reference(z1, z2, t)) < 1e-9


@pytest.mark.parametrize("negatives,decoupled", [("abs", False), ("sq", False), ("none", True), ("sq", True)])
def test_info_nce_variants_match_loop_reference(negatives, decoupled):
    z1, z2 = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    got = info_nce(z1, z2, 0.2, negatives=negatives, decoupled=decoupled).item()
    assert abs(got - nt_xent_reference(z1, z2, 0.2, negatives, decoupled)) < 1e-9


def test_spectral_contrastive_hand_computed():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    z2 = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    # positives: z1_0.z2_0 = 1, z1_1.z2_1 = 0 ; negatives: z1_0.z2_1 = 1, z1_1.z2_0 = 2
    expected = -2 * (1 + 0) / 2 + (1**2 + 2**2) / 2
    assert abs(spectral_contrastive(z1, z2).item() - expected) < 1e-12


def test_info_nce_scale_invariant_and_symmetric():
    z1, z2 = torch.randn(8, 4, dtype=torch.float64), torch.randn(8, 4, dtype=torch.float64)
    a = info_nce(z1, z2)
    assert torch.allclose(a, info_nce(3 * z1, 0.5 * z2))
    assert torch.allclose(a, info_nce(z2, z1))


def test_negative_cosine_hand_computed_and_stop_gradient():
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    z = torch.tensor([[2.0, 0.0], [0.0, 3.0]], dtype=torch.float64, requires_grad=True)
    loss = negative_cosine(p, z)
    assert abs(loss.item() - (-(1.0 + 1 / math.sqrt(2)) / 2)) < 1e-12
    loss.backward()
    assert z.grad is None or torch.count_nonzero(z.grad) == 0  # stop-gradient on the target
    assert p.grad is not None and torch.count_nonzero(p.grad) > 0
