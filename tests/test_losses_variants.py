"""The losses added for every method of the four papers, each against an independent transcription in float64."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sslab import losses


@pytest.fixture(autouse=True)
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_momentum_contrast_v3_and_v2_match_their_official_logits():
    q, k, queue = rand(6, 4, seed=1), rand(6, 4, seed=2), F.normalize(rand(10, 4, seed=3), dim=1)
    qn, kn, t = F.normalize(q, dim=1), F.normalize(k, dim=1), 0.2
    # MoCo v3 ctr_loss: CE(q kᵀ/τ, arange)
    v3 = -torch.stack([torch.log_softmax(qn[i] @ kn.T / t, 0)[i] for i in range(6)]).mean()
    assert torch.allclose(losses.momentum_contrast(q, k, t), v3, atol=1e-12)
    # MoCo v2: logits [q·k_i, q·queue], label 0
    v2 = -torch.stack([torch.log_softmax(torch.cat([(qn[i] @ kn[i]).view(1), queue @ qn[i]]) / t, 0)[0] for i in range(6)])
    assert torch.allclose(losses.momentum_contrast(q, k, t, queue=queue, batch_negatives=False), v2.mean(), atol=1e-12)
    # both: batch keys then the queue
    both = losses.momentum_contrast(q, k, t, queue=queue)
    ref = -torch.stack([torch.log_softmax(torch.cat([kn @ qn[i], queue @ qn[i]]) / t, 0)[i] for i in range(6)]).mean()
    assert torch.allclose(both, ref, atol=1e-12)


def test_standardize_dimensions_eqn14():
    z = rand(12, 5) * 3 + 1
    b = losses.standardize_dimensions(z)
    assert torch.allclose(b.mean(0), torch.zeros(5), atol=1e-12)
    assert torch.allclose(b.norm(dim=0), torch.full((5,), (12 / 5) ** 0.5))
    assert torch.allclose(b.pow(2).sum(1).mean(), torch.tensor(1.0))  # mean squared embedding norm 1
    assert torch.allclose(losses.standardize_dimensions(z, scale=False), z - z.mean(0))


def vicreg_exp_reference(z1, z2, sim, var, cov, tau):
    total = sim * ((z1 - z2) ** 2).mean()
    for z in (z1, z2):
        n, d = z.shape
        zc = z - z.mean(0)
        std = torch.sqrt(zc.var(0) + 1e-4)
        c = zc.T @ zc / (n - 1)
        lse = [torch.log(sum(torch.exp(c[i, j] / tau) for j in range(d) if j != i)) for i in range(d)]
        total = total + var * torch.relu(1 - std).mean() / 2 + cov * torch.stack(lse).mean()
    return total


def test_vicreg_exp_and_ctr_match_eqn_11_13_transcription():
    z1, z2 = rand(7, 4, seed=4), rand(7, 4, seed=5)
    assert torch.allclose(losses.vicreg_exp(z1, z2, 25, 25, 1, temperature=0.3),
                          vicreg_exp_reference(z1, z2, 25, 25, 1, 0.3), atol=1e-10)
    # VICReg-ctr read literally (Eqn 13) = VICReg-exp of the transposed matrices (hinge and LSE on Kᵀ)
    ctr = losses.vicreg_exp(z1, z2, 25, 25, 1, temperature=0.3, transpose=True, centering="embedding")
    ref = vicreg_exp_reference(z1.T, z2.T, 25, 25, 1, 0.3)
    assert torch.allclose(ctr, ref, atol=1e-10)


def test_vicreg_ctr_table1_reading_centres_dimensions_and_repels_cosines():
    """Table 1's VICReg-ctr row (dimension centring, embedding norm 1), written out by hand: dimensions
    centred over the batch, the LSE over the off-diagonal cosines of the centred embeddings, the
    hinge on each centred embedding's std over its dimensions."""
    z1, z2, tau = rand(6, 5, seed=14), rand(6, 5, seed=15), 0.4
    total = 25 * ((z1 - z2) ** 2).mean()
    for z in (z1, z2):
        n, d = z.shape
        zc = z - z.mean(0)
        std = torch.sqrt(zc.var(1) + 1e-4)
        cos = [[float(zc[i] @ zc[j] / (zc[i].norm() * zc[j].norm())) for j in range(n)] for i in range(n)]
        lse = [math.log(sum(math.exp(cos[i][j] / tau) for j in range(n) if j != i)) for i in range(n)]
        total = total + 25 * torch.relu(1 - std).mean() / 2 + sum(lse) / n
    got = losses.vicreg_exp(z1, z2, 25, 25, 1, temperature=tau, transpose=True)
    assert torch.allclose(got, total, atol=1e-9)
    # the two readings differ, and an unknown one is refused with the valid choices
    assert not torch.allclose(got, losses.vicreg_exp(z1, z2, 25, 25, 1, temperature=tau, transpose=True, centering="embedding"))
    with pytest.raises(ValueError, match="valid choices: dimension, embedding"):
        losses.vicreg_exp(z1, z2, transpose=True, centering="rows")


def test_whiten_gives_identity_covariance_and_w_mse_matches_official():
    z = rand(64, 6) @ rand(6, 6, seed=7) + 2
    w = losses.whiten(z)
    assert torch.allclose(w.T @ w / 63, torch.eye(6), atol=1e-10)
    z1, z2 = rand(32, 4, seed=8), rand(32, 4, seed=9)

    def official(x):  # Whitening2d: cov of centred rows, cholesky, triangular solve, conv with inv_sqrt
        xn = x - x.mean(0)
        cov = xn.T @ xn / (x.shape[0] - 1)
        inv = torch.linalg.solve_triangular(torch.linalg.cholesky(cov), torch.eye(4), upper=False)
        return xn @ inv.T

    ref = 2 - 2 * (F.normalize(official(z1), dim=1) * F.normalize(official(z2), dim=1)).sum(1).mean()
    assert torch.allclose(losses.w_mse(z1, z2), ref, atol=1e-10)
    # sub-batches of 16: whitening each half separately gives a different value than whitening all 32
    g = torch.Generator().manual_seed(0)
    halves = losses.w_mse(z1, z2, w_size=16, generator=g)
    perm = torch.randperm(32, generator=torch.Generator().manual_seed(0)).view(-1, 16)
    w1, w2 = torch.empty_like(z1), torch.empty_like(z2)
    for idx in perm:
        w1[idx], w2[idx] = official(z1[idx]), official(z2[idx])
    assert torch.allclose(halves, 2 - 2 * F.cosine_similarity(w1, w2).mean(), atol=1e-10)
    with pytest.raises(ValueError, match="multiple of w_size"):
        losses.w_mse(z1, z2, w_size=5)


def sinkhorn_reference(out, eps, iters):  # official distributed_sinkhorn on one process
    q = torch.exp(out / eps).t()
    b, k = q.shape[1], q.shape[0]
    q /= q.sum()
    for _ in range(iters):
        q /= q.sum(dim=1, keepdim=True)
        q /= k
        q /= q.sum(dim=0, keepdim=True)
        q /= b
    return (q * b).t()


def test_sinkhorn_matches_official_and_equipartitions():
    s = rand(12, 4) * 0.3
    q = losses.sinkhorn_knopp(s, 0.05, 3)
    assert torch.allclose(q, sinkhorn_reference(s.float(), 0.05, 3).to(q.dtype), atol=1e-5)
    assert torch.allclose(q.sum(1), torch.ones(12, dtype=q.dtype), atol=1e-5)  # each sample a distribution
    q = losses.sinkhorn_knopp(s, 0.5, 50)
    assert torch.allclose(q.sum(0), torch.full((4,), 3.0, dtype=q.dtype), atol=1e-4)  # equal cluster sizes B/K


def test_swav_loss_matches_swapped_prediction_formula():
    scores = [rand(8, 5, seed=i) * 0.5 for i in range(3)]  # two global crops and one local
    loss = losses.swav(scores, temperature=0.1, epsilon=0.05)
    ref = 0
    for a in (0, 1):
        q = sinkhorn_reference(scores[a].float(), 0.05, 3).to(torch.float64)
        others = [v for v in range(3) if v != a]
        ref += sum(-(q * torch.log_softmax(scores[v] / 0.1, 1)).sum(1).mean() for v in others) / 2
    assert torch.allclose(loss, torch.as_tensor(ref / 2), atol=1e-5)
    # a queue enlarges the Sinkhorn batch and so changes the codes
    queued = losses.swav(scores, 0.1, 0.05, queue_scores=[rand(16, 5, seed=9), rand(16, 5, seed=10)])
    assert not torch.allclose(queued, loss)


def test_dino_loss_matches_official_dinoloss():
    student = [rand(4, 6, seed=i) for i in range(4)]  # 2 global + 2 local crops
    teacher = [rand(4, 6, seed=10 + i) for i in range(2)]
    center = rand(1, 6, seed=20) * 0.1
    loss = losses.dino(student, teacher, center, student_temp=0.1, teacher_temp=0.04)
    # official: chunked outputs, pairs (iq, v) with v != iq, mean over pairs
    s_out = torch.cat(student) / 0.1
    t_out = torch.softmax((torch.cat(teacher) - center) / 0.04, dim=-1).chunk(2)
    total, n = 0, 0
    for iq, q in enumerate(t_out):
        for v, s in enumerate(s_out.chunk(4)):
            if v != iq:
                total += torch.sum(-q * torch.log_softmax(s, dim=-1), dim=-1).mean()
                n += 1
    assert torch.allclose(loss, total / n, atol=1e-12)
    assert n == 6


def test_teacher_temperature_schedule_is_officials_linspace():
    from sslab.methods import build_method
    from sslab.nets import create_backbone

    m = build_method("dino", create_backbone("convnet", in_channels=1, width=0.25), out_dim=8, proj_hidden_dim=8,
                     bottleneck_dim=4, warmup_teacher_temp=0.04, teacher_temp=0.07, warmup_teacher_temp_epochs=5)
    m.configure_schedule(steps_per_epoch=3, total_steps=30)
    expected = np.concatenate([np.linspace(0.04, 0.07, 5), np.ones(5) * 0.07])
    for epoch in range(10):
        m.after_step(epoch * 3 + 1, 30)  # what the engine calls: the step count and the temperature forward reads
        assert m.current_teacher_temp() == pytest.approx(expected[epoch])
        assert float(m.teacher_temp_now) == pytest.approx(expected[epoch])
