"""Diagnostics on constructed embeddings with known answers (issue 4's metric tests)."""

import math

import pytest
import torch

from sslab import diagnostics as dg
from sslab.config import DiagnosticsConfig

#: the verdict thresholds, from their one home (config.DiagnosticsConfig)
THRESHOLDS = {"center_threshold": DiagnosticsConfig().center_threshold,
              "dimensional_fraction": DiagnosticsConfig().dimensional_fraction}


def gauss(n, d, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_all_equal_embeddings_are_complete_collapse():
    z = torch.ones(64, 8) * torch.tensor([1.0, 2, 0, 0, 0, 0, 0, 3])
    assert float(dg.center_norm(z)) == pytest.approx(1.0)
    assert float(dg.center_norm(z, unbiased=True)) == pytest.approx(1.0)
    assert dg.embedding_std(z) == pytest.approx(0.0, abs=1e-9)
    stats = dg.center_stats(z, z)
    assert stats["total_spread"] == pytest.approx(0.0, abs=1e-9) and stats["aug_mean_sq"] == pytest.approx(1.0)
    assert dg.collapse_verdict(float(dg.center_norm(z)), 1.0, dim=8, batch=64, **THRESHOLDS) == "complete"
    line = gauss(64, 1) * torch.ones(1, 8)  # all on one line through 0: center ≈ 0 but rank 1
    assert dg.effective_rank(line) == pytest.approx(1.0, abs=1e-6)
    assert dg.collapse_verdict(float(dg.center_norm(line)), dg.effective_rank(line), 8, 64, **THRESHOLDS) == "complete"


def test_isotropic_gaussian_is_healthy_full_rank():
    z = gauss(20000, 16)
    assert float(dg.center_norm(z, unbiased=True)) < 0.02
    assert dg.effective_rank(z) == pytest.approx(16, rel=0.02)
    assert dg.rankme(z) == pytest.approx(16, rel=0.02)
    assert dg.embedding_std(z) == pytest.approx(1 / math.sqrt(16), rel=0.02)
    assert dg.alpha_req(z) == pytest.approx(0.0, abs=0.05)  # flat spectrum
    assert dg.collapse_verdict(float(dg.center_norm(z)), dg.effective_rank(z), 16, 20000, **THRESHOLDS) == "healthy"
    assert torch.allclose(dg.spectrum(z, correlation=True), torch.ones(16, dtype=torch.float64), atol=0.06)


def test_rank_k_subspace_is_dimensional():
    basis = torch.linalg.qr(gauss(64, 64, seed=1))[0][:, :3]  # 3 orthonormal directions in 64 dims
    z = gauss(5000, 3, seed=2) @ basis.T
    assert dg.effective_rank(z) == pytest.approx(3, rel=0.03)
    assert dg.collapse_verdict(float(dg.center_norm(z)), dg.effective_rank(z), 64, 5000, **THRESHOLDS) == "dimensional"


def test_alpha_req_recovers_a_power_law():
    k = torch.arange(1, 33, dtype=torch.float64)
    q = torch.linalg.qr(gauss(32, 32, seed=3))[0]
    z = gauss(40000, 32, seed=4) * k.pow(-0.5) @ q.T  # variances k^-1: α = 1
    assert dg.alpha_req(z) == pytest.approx(1.0, abs=0.05)


def test_unbiased_center_estimator_is_unbiased_and_decomposition_holds():
    # population: unit vectors around a known mean direction; ‖s‖² estimated from 3,000 batches of 8
    g = torch.Generator().manual_seed(5)
    mean = torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)
    population = torch.nn.functional.normalize(0.8 * mean + torch.randn(200000, 4, generator=g, dtype=torch.float64), dim=1)
    truth = float(population.mean(0).pow(2).sum())
    unbiased, plug_in = [], []
    for _ in range(3000):
        batch = population[torch.randint(0, 200000, (8,), generator=g)]
        unbiased.append(dg.center_stats(batch[:4], batch[4:])["center_sq"])
        plug_in.append(float(dg.center_norm(batch)) ** 2)
    se = torch.tensor(unbiased).std().item() / math.sqrt(3000)
    assert sum(unbiased) / 3000 == pytest.approx(truth, abs=4 * se)
    assert sum(plug_in) / 3000 - truth == pytest.approx((1 - truth) / 8, abs=4 * se)  # its (1 − ‖s‖²)/B bias
    s = dg.center_stats(population[:4000], population[4000:8000])
    assert s["aug_mean_sq"] - s["center_sq"] == pytest.approx(s["aug_mean_spread"])
    assert s["total_spread"] == pytest.approx(1 - s["center_sq"])


def test_alignment_and_uniformity_hand_cases():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert dg.alignment(z, z) == pytest.approx(0.0)
    assert dg.alignment(z, -z) == pytest.approx(4.0)  # ‖u − (−u)‖² = 4
    assert dg.uniformity(z) == pytest.approx(-4.0)  # ‖u1 − u2‖² = 2, log exp(−2·2)
    assert dg.uniformity(torch.ones(5, 3)) == pytest.approx(0.0)


def test_predictor_function_of_f_is_aligned_and_commutes():
    q = torch.linalg.qr(gauss(6, 6, seed=6))[0]
    s = torch.tensor([5.0, 3, 2, 1, 0.5, 0.1], dtype=torch.float64)
    f = q @ torch.diag(s) @ q.T
    wp = q @ torch.diag(torch.sqrt(s / s.max()) + 0.1) @ q.T  # DirectPred: a function of F̂
    st = dg.predictor_stats(f, wp)
    assert torch.allclose(st["alignment"], torch.ones(6, dtype=torch.float64), atol=1e-10)
    assert st["commutator"] == pytest.approx(0.0, abs=1e-12)
    assert st["asymmetry"] == pytest.approx(0.0, abs=1e-12)
    assert torch.allclose(st["s"], s, atol=1e-10)
    assert torch.allclose(st["p"], torch.sqrt(s / s.max()) + 0.1, atol=1e-10)
    assert torch.allclose(st["parabola"], st["p"] ** 2, atol=1e-12)
    skew = gauss(6, 6, seed=7)
    bad = dg.predictor_stats(f, wp + (skew - skew.T))
    assert bad["commutator"] > 0.01 and bad["asymmetry"] > 0.1 and bad["alignment"].min() < 0.99


def test_duality_stats_hand_cases_bounds_and_theorem():
    from sslab.losses import dimension_contrastive, sample_contrastive

    eye = dg.duality_stats(torch.eye(2))  # two orthogonal unit vectors: both criteria 0, rows⁴ at the lower bound
    assert (eye["l_c"], eye["l_nc"], eye["rows4"], eye["cols4"]) == (0.0, 0.0, 2.0, 2.0) and eye["rows4_ratio"] == 1.0
    z = gauss(300, 12, seed=8) + 0.5
    st = dg.duality_stats(z)
    u = torch.nn.functional.normalize(z, dim=1)
    assert st["l_c"] == pytest.approx(float(sample_contrastive(u)), rel=1e-12)
    assert st["l_nc"] == pytest.approx(float(dimension_contrastive(u)), rel=1e-12)
    assert st["identity_gap"] < 1e-12 and st["cols4"] == pytest.approx(300)
    assert st["rows4_lower"] <= st["rows4"] <= st["rows4_upper"]  # Lemma 3.4
    # Corollary 3.4.1 with normalised embeddings
    n, m = 300, 12
    assert st["l_nc"] - n + n * n / m <= st["l_c"] + 1e-9 <= st["l_nc"] - n + n * n + 1e-9
    iso = dg.duality_stats(gauss(4000, 16, seed=9))  # random directions: Prop. 3.1's healthy picture
    assert iso["gram_offdiag_mean"] == pytest.approx(0.0, abs=0.01)
    assert iso["gram_offdiag_var_ratio"] == pytest.approx(1.0, rel=0.03)
    assert iso["rows4_ratio"] == pytest.approx(1.0, abs=0.02)
    one = dg.duality_stats(torch.ones(50, 1) * torch.tensor([[0.0, 3.0, 0.0, 0.0]]))  # complete collapse on one axis
    assert one["gram_offdiag_mean"] == pytest.approx(1.0) and one["gram_offdiag_var"] == pytest.approx(0.0, abs=1e-12)
    assert one["rows4"] == pytest.approx(one["rows4_upper"]) and one["rows4_ratio"] == pytest.approx(4.0)


@pytest.mark.parametrize("n,d", [(48, 300), (20, 21)])
def test_gram_route_for_wide_batches_equals_the_covariance_route(n, d):
    """N < D: spectra, ranks and the duality criteria from the N x N Gram matrix equal the D x D
    covariance / SVD computations they replace (float64, 1e-8 of the largest value)."""
    from sslab.diagnostics.duality import duality_stats
    from sslab.diagnostics.spectrum import effective_rank, rankme, spectrum

    g = torch.Generator().manual_seed(0)
    z = (torch.randn(n, 6, generator=g, dtype=torch.float64) @ torch.randn(6, d, generator=g, dtype=torch.float64)
         + 0.05 * torch.randn(n, d, generator=g, dtype=torch.float64) + 0.3)  # a few strong directions, a centre
    cov = torch.cov(z.T)
    ref = torch.linalg.eigvalsh(cov).flip(0).clamp(min=0)
    ours = spectrum(z, gather_distributed=False)
    assert ours.shape == (d,) and torch.allclose(ours, ref, atol=1e-8 * float(ref[0]), rtol=0)
    sd = torch.diagonal(cov).sqrt()
    ref_corr = torch.linalg.eigvalsh(cov / torch.outer(sd, sd)).flip(0).clamp(min=0)
    assert torch.allclose(spectrum(z, correlation=True, gather_distributed=False), ref_corr, atol=1e-8 * float(ref_corr[0]))

    def entropy_rank(s, eps=0.0):
        p = s / s.sum() + eps
        p = p[p > 0]
        return float(torch.exp(-(p * p.log()).sum()))

    assert effective_rank(z, gather_distributed=False) == pytest.approx(
        entropy_rank(torch.linalg.svdvals(z - z.mean(0))), rel=1e-8)
    assert rankme(z, gather_distributed=False) == pytest.approx(entropy_rank(torch.linalg.svdvals(z), 1e-7), rel=1e-8)
    u = torch.nn.functional.normalize(z, dim=1)
    kkt = u.T @ u
    stats = duality_stats(z, gather_distributed=False)
    assert stats["l_nc"] == pytest.approx(float(kkt.pow(2).sum() - torch.diagonal(kkt).pow(2).sum()), rel=1e-10)
    assert stats["rows4"] == pytest.approx(float(torch.diagonal(kkt).pow(2).sum()), rel=1e-10)
