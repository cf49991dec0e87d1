"""sslab's settings against the official implementations' formulas and behaviour (issue: reproduce the papers)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sslab import losses
from sslab.methods import build_method
from sslab.nets import create_backbone


def official_spectral_d(z1, z2, mu=1.0):
    """``D`` of jhaochenz96/spectral_contrastive_learning models/spectral.py, line for line."""
    mask1 = (torch.norm(z1, p=2, dim=1) < np.sqrt(mu)).float().unsqueeze(1)
    mask2 = (torch.norm(z2, p=2, dim=1) < np.sqrt(mu)).float().unsqueeze(1)
    z1 = mask1 * z1 + (1 - mask1) * F.normalize(z1, dim=1) * np.sqrt(mu)
    z2 = mask2 * z2 + (1 - mask2) * F.normalize(z2, dim=1) * np.sqrt(mu)
    loss_part1 = -2 * torch.mean(z1 * z2) * z1.shape[1]
    square_term = torch.matmul(z1, z2.T) ** 2
    loss_part2 = torch.mean(torch.triu(square_term, diagonal=1) + torch.tril(square_term, diagonal=-1)) * \
        z1.shape[0] / (z1.shape[0] - 1)
    return (loss_part1 + loss_part2) / mu


@pytest.mark.parametrize("mu", [1.0, 10.0])
def test_spectral_loss_equals_the_official_one_inside_and_outside_the_ball(mu):
    g = torch.Generator().manual_seed(0)
    scale = torch.tensor([0.2, 0.5, 1.0, 2.0, 5.0, 0.1, 3.0, 0.7], dtype=torch.float64).unsqueeze(1) * math.sqrt(mu)
    z1 = F.normalize(torch.randn(8, 6, generator=g, dtype=torch.float64), dim=1) * scale  # some rows inside the ball
    z2 = torch.randn(8, 6, generator=g, dtype=torch.float64) * math.sqrt(mu)
    a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    ours = losses.spectral_contrastive(a, b, mu=mu)
    ours.backward()
    c, d = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    official = official_spectral_d(c, d, mu)
    official.backward()
    assert torch.allclose(ours, official, atol=1e-12)
    assert torch.allclose(a.grad, c.grad, atol=1e-12) and torch.allclose(b.grad, d.grad, atol=1e-12)
    assert losses.spectral_contrastive(z1, z2, mu=None) != pytest.approx(float(official.detach()))  # raw ones differ
    m = build_method("spectral_contrastive", create_backbone("convnet", in_channels=1, width=0.25))
    assert m.mu == 1.0  # the official CIFAR value by default


def small(name, **kw):
    args = dict(proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16) if name in ("byol", "simsiam") else \
        dict(proj_hidden_dim=16, proj_dim=8)
    return build_method(name, create_backbone("convnet", in_channels=1, width=0.25), **{**args, **kw})


def test_byol_loss_scale_equals_the_official_two_minus_two_cos_sum_with_its_gradient():
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(16, 1, 28, 28, generator=g) for _ in range(2)]
    torch.manual_seed(0)
    m = small("byol", loss_scale="byol").train()
    loss = m(views).loss
    loss.backward()
    ours = m.projector[0].weight.grad.clone()
    m.zero_grad()
    # official (deepmind byol_experiment.py / luckmatters): Σ over the two directions of mean_i ‖p̂_i − ẑ'_i‖²
    z = [m.projector(m.backbone(v)) for v in views]
    p = [m.predictor(zi) for zi in z]
    with torch.no_grad():
        t = m.target(views)
    official = sum(((F.normalize(a, dim=1) - F.normalize(b, dim=1)) ** 2).sum(1).mean() for a, b in ((p[0], t[1]), (p[1], t[0])))
    official.backward()
    assert torch.allclose(loss, official, atol=1e-5)
    assert torch.allclose(ours, m.projector[0].weight.grad, atol=1e-6)
    # the default (SimSiam's scale, the mean of −cos) has the same minimiser and a quarter of the gradient
    m.zero_grad()
    torch.manual_seed(0)
    d = small("byol").train()
    d.load_state_dict(m.state_dict())
    d(views).loss.backward()
    assert torch.allclose(4 * d.projector[0].weight.grad, ours, atol=1e-6)


def test_fix_pred_lr_keeps_the_predictors_learning_rate_while_the_rest_decays():
    from sslab.config import OptimConfig
    from sslab.data import view_pipeline
    from sslab.engine.module import SSLModule

    m = small("simsiam", fix_pred_lr=True)
    opt_cfg = OptimConfig(name="sgd", lr=0.05, warmup_epochs=0)
    module = SSLModule(m, view_pipeline("byol", "mnist"), opt_cfg, num_classes=10, steps_per_epoch=5, epochs=2,
                       global_batch=256, online_probe=False)
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    pred_ids = {id(p) for p in m.predictor.parameters()}
    is_pred = [all(id(p) in pred_ids for p in g["params"]) for g in opt.param_groups]
    seen = []
    for _ in range(8):
        opt.step()
        sched.step()
        seen.append([g["lr"] for g in opt.param_groups])
    for i, pred in enumerate(is_pred):
        lrs = [row[i] for row in seen]
        if pred:
            assert lrs == [0.05] * 8  # SimSiam --fix-pred-lr: param_group['lr'] = init_lr every epoch
        else:
            assert lrs[-1] < lrs[0] < 0.05  # cosine decay
    assert any(is_pred) and not all(is_pred)


def test_directpred_target_can_start_as_an_independent_random_initialisation():
    from sslab.nets import reinitialize

    torch.manual_seed(0)
    copy = small("directpred")
    online = torch.cat([p.flatten() for p in list(copy.backbone.parameters()) + list(copy.projector.parameters())])
    target = lambda m: torch.cat([p.flatten() for p in m.target.network.parameters()])  # noqa: E731
    assert torch.equal(target(copy), online)  # BYOL's start: the target is a copy
    rand = small("directpred", target_init="random")  # luckmatters: the copy-to-target call is commented out
    assert not torch.allclose(target(rand)[: online.numel()], online)
    # drawn as at construction: each conv's weight std matches a freshly built backbone's He fan-out init
    fresh = create_backbone("convnet", in_channels=1, width=0.25)
    for a, b in zip(rand.target.network[0].modules(), fresh.modules()):
        if isinstance(a, torch.nn.Conv2d):
            assert a.weight.std().item() == pytest.approx(b.weight.std().item(), rel=0.2)
    resnet = reinitialize(create_backbone("resnet18", zero_init_residual=True))
    assert float(resnet.layer1[0].bn2.weight.detach().abs().sum()) == 0  # the network's own scheme, not only reset_parameters
    with pytest.raises(ValueError, match="unknown target init 'zeros'; valid choices: copy, random"):
        small("directpred", target_init="zeros")


def test_moco_v2_queue_starts_as_random_unit_vectors_as_the_official_builder():
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(16, 1, 28, 28, generator=g) for _ in range(2)]
    m = small("moco_v2", queue_size=64).train()
    assert m.queue.full and torch.allclose(m.queue.keys.norm(dim=1), torch.ones(64))  # moco/builder.py: randn, normalize
    assert m(views).loss > 1.0  # 64 negatives from the first step: about log(65)
    empty = small("moco_v2", queue_size=64, queue_init="zeros").train()
    assert float(empty(views).loss.detach()) == 0.0  # an empty queue and no batch negatives: log(1), nothing to learn


def test_w_mse_projects_both_views_in_one_batch_as_the_official_head():
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(16, 1, 28, 28, generator=g) for _ in range(2)]
    m = small("w_mse", w_size=16).train()
    _, z = m.embed_views(views)
    feats = [m.backbone(v) for v in views]
    joint = m.projector(torch.cat(feats))  # official: BN statistics over both views (2N samples)
    assert torch.allclose(torch.cat(z), joint, atol=1e-6)
    assert not torch.allclose(z[0], m.projector(feats[0]), atol=1e-4)  # per-view BN would differ


def test_bias_and_norm_groups_follow_each_recipe():
    from sslab.optim import build_optimizer

    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
    params = [{"params": list(net.parameters())}, {"params": [torch.nn.Parameter(torch.zeros(3))], "lr": 0.01}]
    # Barlow Twins (main.py): LARS, weights lr 0.2, biases and BN lr 0.0048, neither decayed nor adapted
    opt = build_optimizer("lars", params, lr=0.2, weight_decay=1.5e-6, bias_lr_ratio=0.0048 / 0.2)
    by_kind = {(len(g["params"][0].shape), g["lr"] == 0.01): g for g in opt.param_groups}
    weights, vectors, probe = by_kind[(2, False)], by_kind[(1, False)], by_kind[(1, True)]
    assert weights["lr"] == pytest.approx(0.2) and weights["weight_decay"] == 1.5e-6 and not weights["lars_exclude"]
    assert vectors["lr"] == pytest.approx(0.0048) and vectors["weight_decay"] == 0.0 and vectors["lars_exclude"]
    assert probe["lr"] == 0.01  # a group with its own lr keeps it
    # SimSiam / MoCo v2 / luckmatters: weight decay on every parameter, one learning rate
    opt = build_optimizer("sgd", [{"params": list(net.parameters())}], lr=0.05, weight_decay=1e-4, exclude_bias_norm=False)
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["weight_decay"] == 1e-4


def test_sync_batchnorm_conversion_keeps_the_ema_target_following_the_online_network():
    """``sync_batchnorm=true`` makes Lightning convert every BatchNorm with ``convert_sync_batchnorm``
    under DDP; the EMA target must still follow the converted online modules. (SyncBatchNorm itself
    needs a GPU when more than one process runs: the 2-process check belongs to the GPU suite.)"""
    from sslab.config import resolve

    assert resolve(None, ["sync_batchnorm=true"]).sync_batchnorm
    m = torch.nn.SyncBatchNorm.convert_sync_batchnorm(small("byol", momentum=0.5, momentum_final=0.5))
    bns = [x for x in m.modules() if isinstance(x, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and all(isinstance(x, torch.nn.SyncBatchNorm) for x in bns)
    online = [x for x in m.target.online[1].modules() if isinstance(x, torch.nn.SyncBatchNorm)]
    assert online and all(any(x is y for y in bns) for x in online)  # the target's list holds the converted modules
    with torch.no_grad():
        for p in m.projector.parameters():
            p.add_(1.0)
    before = [p.clone() for p in m.target.network[1].parameters()]
    m.after_step(1, 10)
    for t, o, b in zip(m.target.network[1].parameters(), m.projector.parameters(), before):
        assert torch.allclose(t, 0.5 * b + 0.5 * o)


def test_optimal_predictor_solves_the_table1_equation():
    """Tian et al. Table 1 (luckmatters minimal_space): F Wp + Wp F = F_a + F_aᵀ, Wp symmetric; with F = I, Wp = sym(F_a)."""
    from sslab.methods.parts.direct import optimal_predictor

    g = torch.Generator().manual_seed(3)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64)
    f = a @ a.T + 0.5 * torch.eye(6, dtype=torch.float64)
    fa = torch.randn(6, 6, generator=g, dtype=torch.float64)
    w = optimal_predictor(f, fa, reg=0.0)
    assert torch.allclose(f @ w + w @ f, fa + fa.T, atol=1e-10) and torch.allclose(w, w.T, atol=1e-12)
    assert torch.allclose(optimal_predictor(torch.eye(6, dtype=torch.float64), fa, reg=0.0), (fa + fa.T) / 2, atol=1e-12)
    # reg shifts the denominators: with F = I, entries are divided by (2 + reg)/2
    assert torch.allclose(optimal_predictor(torch.eye(6, dtype=torch.float64), fa, reg=0.5), (fa + fa.T) / 2 / 1.25, atol=1e-12)


def test_optimal_predictor_method_uses_online_and_target_correlations():
    """After one step, Wp is the solution for the batch's own F̂ = mean f fᵀ (both views) and
    F̂_a = ½[mean t2 f1ᵀ + mean t1 f2ᵀ], computed here by hand from the forward's outputs."""
    from sslab.methods.parts.direct import optimal_predictor

    torch.manual_seed(0)
    m = build_method("directpred", create_backbone("convnet", in_channels=1), direct="optimal", proj_hidden_dim=32,
                     proj_dim=8, reg=0.1)
    views = [torch.randn(16, 1, 28, 28), torch.randn(16, 1, 28, 28)]
    out = m(views)
    z1, z2 = (z.detach() for z in out.embeddings)
    t1, t2 = m.target(views, out.embeddings)  # the EMA target's embeddings of the same views
    m.after_step(1, 10)
    f = torch.cat([z1, z2])
    corr = f.T @ f / f.shape[0]
    cross = (t2.detach().T @ z1 + t1.detach().T @ z2) / (2 * 16)
    assert torch.allclose(m.predictor.net.weight, optimal_predictor(corr, cross, 0.1), atol=1e-5)


def test_solo_learn_lars_clip_step_by_hand():
    """solo-learn's LARS (clip_lr): q = eta|w|/(|g| + wd|w| + 1e-8), lr_eff = min(q/lr, 1) * lr on g + wd*w."""
    from sslab.optim import build_optimizer

    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))  # |w| = 5
    w.grad = torch.tensor([[0.0, 1.0]])  # |g| = 1
    opt = build_optimizer("lars", [{"params": [w]}], lr=0.5, weight_decay=0.1, momentum=0.0, eta=0.02, lars_clip=True)
    opt.step()
    q = min(0.02 * 5 / (1 + 0.1 * 5 + 1e-8) / 0.5, 1.0)  # 0.1333
    expected = torch.tensor([[3.0, 4.0]]) - 0.5 * q * (torch.tensor([[0.0, 1.0]]) + 0.1 * torch.tensor([[3.0, 4.0]]))
    assert torch.allclose(w.detach(), expected, atol=1e-6)
    w2 = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))
    w2.grad = torch.tensor([[0.0, 1e-4]])  # tiny gradient: the ratio would exceed 1, the clip keeps the plain lr
    build_optimizer("lars", [{"params": [w2]}], lr=0.5, weight_decay=0.0, momentum=0.0, eta=0.02, lars_clip=True).step()
    assert torch.allclose(w2.detach(), torch.tensor([[3.0, 4.0 - 0.5e-4]]), atol=1e-8)


def test_adam_couples_weight_decay_and_adamw_decouples_it():
    from sslab.optim import build_optimizer

    out = {}
    for name in ("adam", "adamw"):
        w = torch.nn.Parameter(torch.tensor([[1.0, -2.0]]))
        w.grad = torch.zeros_like(w)  # only the weight decay acts
        build_optimizer(name, [{"params": [w]}], lr=0.1, weight_decay=0.5, exclude_bias_norm=False).step()
        out[name] = w.detach()
    # Adam: g = wd*w, first step moves by lr*sign(g); AdamW: w *= (1 - lr*wd), no gradient step
    assert torch.allclose(out["adam"], torch.tensor([[0.9, -1.9]]), atol=1e-6)
    assert torch.allclose(out["adamw"], torch.tensor([[0.95, -1.9]]), atol=1e-6)


def test_barlow_scale_loss_and_byol_luckmatters_heads():
    z1, z2 = torch.randn(16, 8), torch.randn(16, 8)
    assert torch.allclose(losses.barlow_twins(z1, z2, scale=0.1), 0.1 * losses.barlow_twins(z1, z2))
    m = build_method("byol", create_backbone("convnet", in_channels=1), proj_hidden_dim=32, proj_dim=8, pred_hidden_dim=16,
                     bn_affine=False, target_init="random")
    bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm1d)]
    assert bns and all(not bn.affine for bn in bns)  # projector and predictor: affine-free (luckmatters)
    online = [p for mod in (m.backbone, m.projector) for p in mod.parameters()]
    target = list(m.target.network.parameters())
    assert len(online) == len(target) and not any(torch.equal(a, b) for a, b in zip(online, target) if a.ndim > 1)
