"""Barlow Twins, VICReg, the duality criteria and the center penalty against independent computations."""

import torch
import torch.nn.functional as F
from torch import nn

from sslab.losses import barlow_twins, center_penalty, dimension_contrastive, sample_contrastive, vicreg

f64 = dict(dtype=torch.float64)


def test_barlow_twins_equals_official_batchnorm_transcription():
    z1, z2 = torch.randn(16, 6, **f64), torch.randn(16, 6, **f64)
    bn = nn.BatchNorm1d(6, affine=False).double().train()  # the official normaliser
    c = bn(z1).T @ bn(z2) / 16
    on = sum((c[i, i] - 1) ** 2 for i in range(6))
    off = sum(c[i, j] ** 2 for i in range(6) for j in range(6) if i != j)
    assert torch.allclose(barlow_twins(z1, z2, lambd=0.0051), on + 0.0051 * off, atol=1e-10)


def test_barlow_twins_perfect_views_of_decorrelated_dims_give_zero():
    a = torch.randn(32, 4, **f64)
    q, _ = torch.linalg.qr(a - a.mean(0))  # columns orthonormal and (spanning centred columns) centred
    z = q * 10  # standardised, the cross-correlation of z with itself is exactly I
    assert barlow_twins(z, z, eps=0.0).item() < 1e-8


def test_vicreg_equals_official_transcription():
    x, y = torch.randn(12, 5, **f64), torch.randn(12, 5, **f64)
    repr_loss = ((x - y) ** 2).mean()
    xc, yc = x - x.mean(0), y - y.mean(0)
    std_x = torch.sqrt(xc.var(0) + 1e-4)
    std_y = torch.sqrt(yc.var(0) + 1e-4)
    std_loss = torch.mean(F.relu(1 - std_x)) / 2 + torch.mean(F.relu(1 - std_y)) / 2
    cx, cy = xc.T @ xc / 11, yc.T @ yc / 11
    cov_loss = sum(cx[i, j] ** 2 + cy[i, j] ** 2 for i in range(5) for j in range(5) if i != j) / 5
    expected = 25 * repr_loss + 25 * std_loss + 1 * cov_loss
    assert torch.allclose(vicreg(x, y), expected, atol=1e-10)
    assert torch.allclose(vicreg(x, y, sim=1, var=0, cov=0), repr_loss)


def test_duality_theorem_3_3_identity_float64():
    for n, m in ((7, 3), (4, 9), (16, 16)):
        z = torch.randn(n, m, **f64)  # rows = embeddings K_{.,i}, columns = dimensions K_{j,.}
        lhs = dimension_contrastive(z) + (z.norm(dim=0) ** 4).sum()
        rhs = sample_contrastive(z) + (z.norm(dim=1) ** 4).sum()
        assert torch.allclose(lhs, rhs, rtol=1e-12)
        loop_c = sum(float(z[i] @ z[j]) ** 2 for i in range(n) for j in range(n) if i != j)
        assert abs(sample_contrastive(z).item() - loop_c) < 1e-9 * max(1.0, loop_c)


def test_duality_normalised_rows_and_columns_and_corollary_bounds():
    # rows and columns both unit norm (needs N = M): Sinkhorn-style alternating normalisation
    z = torch.rand(6, 6, **f64) + 0.1
    for _ in range(500):
        z = F.normalize(F.normalize(z, dim=1), dim=0)
    n, m = z.shape
    assert torch.allclose(dimension_contrastive(z), sample_contrastive(z) + n - m, atol=1e-9)
    # Corollary 3.4.1 with normalised embeddings: L_nc - N + N²/M <= L_c <= L_nc - N + N²
    for n, m in ((20, 5), (8, 32)):
        u = F.normalize(torch.randn(n, m, **f64), dim=1)
        lc, lnc = sample_contrastive(u), dimension_contrastive(u)
        assert lnc - n + n * n / m - 1e-9 <= lc <= lnc - n + n * n + 1e-9


def test_center_penalty_hand_cases_and_unbiasedness():
    assert abs(center_penalty(torch.tensor([[1.0, 0.0], [0.0, 2.0]], **f64)).item()) < 1e-12
    assert abs(center_penalty(torch.tensor([[3.0, 0.0], [1.0, 0.0], [2.0, 0.0]], **f64)).item() - 1.0) < 1e-12
    g = torch.Generator().manual_seed(0)
    population = F.normalize(torch.randn(5, 3, generator=g, **f64) + torch.tensor([1.0, 0.0, 0.0], **f64), dim=1)
    true = population.mean(0).pow(2).sum()
    batches = population[torch.randint(0, 5, (40000, 4), generator=g)]  # i.i.d. draws, B = 4
    est = torch.stack([center_penalty(b) for b in batches[:4000]]).mean()
    plug_in = batches.mean(1).pow(2).sum(1).mean()
    assert abs(est - true) < 0.02
    assert abs(plug_in - (true + (1 - true) / 4)) < 0.01  # the plug-in's bias, (1 - ‖s‖²)/B
    assert plug_in - true > 0.05
