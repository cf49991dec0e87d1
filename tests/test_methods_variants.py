"""Closed-form predictors, ablation switches, queues, DINO/SwAV mechanics and the ViT backbone."""

import pytest
import torch
from torch import nn

import sslab
from sslab.methods import METHODS, build_method
from sslab.methods.parts import CorrelationEstimate, directcopy_predictor, directset_predictor
from sslab.nets import create_backbone
from sslab.optim import build_optimizer


def known_corr(seed=0, d=6):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    s = torch.tensor([4.0, 2.0, 1.0, 0.5, 0.1, 0.0], dtype=torch.float64)[:d]
    return q, s, q @ torch.diag(s) @ q.T


def test_directpred_predictor_is_q_diag_sqrt_s_over_smax_plus_eps():
    q, s, corr = known_corr()
    expected = q @ torch.diag(torch.sqrt(s / s.max()) + 0.1) @ q.T
    assert torch.allclose(directset_predictor(corr, power=0.5, eps=0.1), expected, atol=1e-10)
    inside = q @ torch.diag(torch.sqrt(s / s.max() + 0.1)) @ q.T
    assert torch.allclose(directset_predictor(corr, power=0.5, eps=0.1, eps_inside=True), inside, atol=1e-10)
    # DirectSet(α=1) through the eigendecomposition is F̂/s_max + εI; negative eigenvalues are clamped to 0
    assert torch.allclose(directset_predictor(corr, power=1.0, eps=0.2), corr / 4 + 0.2 * torch.eye(6), atol=1e-10)
    neg = corr - 0.05 * q[:, 5:] @ q[:, 5:].T  # eigenvalue -0.05
    p = torch.linalg.eigvalsh(directset_predictor(neg, power=0.5, eps=0.0))
    assert p.min() == pytest.approx(1e-4)  # official clamp(min=1e-4) after clamping s at 0


def test_directcopy_predictor_norms():
    _, s, corr = known_corr(1)
    eye = torch.eye(6, dtype=torch.float64)
    assert torch.allclose(directcopy_predictor(corr, 0.3, "spectral"), corr / 4.0 + 0.3 * eye, atol=1e-10)
    assert torch.allclose(directcopy_predictor(corr, 0.3, "fro"), corr / s.norm() + 0.3 * eye, atol=1e-10)
    assert torch.allclose(directcopy_predictor(corr, 0.3, "none"), corr + 0.3 * eye, atol=1e-10)
    with pytest.raises(ValueError, match="valid choices: spectral, fro, none"):
        directcopy_predictor(corr, 0.3, "l1")


def test_correlation_estimate_first_batch_ema_zeros_and_zero_mean():
    f1, f2 = torch.randn(10, 3), torch.randn(10, 3) + 1
    est = CorrelationEstimate(3, rho=0.3)
    est.update(f1)
    assert torch.allclose(est.corr, f1.T @ f1 / 10, atol=1e-6)  # the first batch sets F̂ (luckmatters Accumulator)
    est.update(f2)
    assert torch.allclose(est.corr, 0.3 * f1.T @ f1 / 10 + 0.7 * f2.T @ f2 / 10, atol=1e-6)
    z = CorrelationEstimate(3, rho=0.3, init="zeros")
    z.update(f1)
    assert torch.allclose(z.corr, 0.7 * f1.T @ f1 / 10, atol=1e-6)
    c = CorrelationEstimate(3, rho=0.0, zero_mean=True)
    c.update(f2)
    assert torch.allclose(c.value(), torch.cov(f2.T, correction=0), atol=1e-5)


def small(name, **kw):
    args = dict(proj_hidden_dim=16) if name == "dino" else dict(proj_hidden_dim=16, proj_dim=8)
    if name in ("byol", "simsiam", "moco_v3", "nnclr") and kw.get("predictor", "mlp") == "mlp":
        args["pred_hidden_dim"] = 16  # an MLP predictor's width: with another predictor it would do nothing (refused)
    args.update(kw)
    return build_method(name, create_backbone("convnet", in_channels=1, width=0.25), **args)


def views(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 1, 28, 28, generator=g) for _ in range(2)]


def train_steps(m, steps, lr=0.05, callback=None, start=1):
    """Steps ``start`` .. ``start + steps - 1`` (1-based) through ``sslab.step``; a method whose test configured no
    schedule gets one step per epoch and ``steps`` in all."""
    if not m.schedule_configured:
        m.configure_schedule(steps_per_epoch=1, total_steps=steps)
    opt = build_optimizer("sgd", m.parameter_groups(), lr=lr, weight_decay=4e-4)
    for step in range(start, start + steps):
        sslab.step(m, opt, views(seed=step), step - 1)
        if callback:
            callback(step, m)


def test_a_step_needs_its_schedule_and_calls_the_hooks_in_order():
    m = small("byol")
    opt = build_optimizer("sgd", m.parameter_groups(), lr=0.05)
    with pytest.raises(ValueError, match=r"^BYOL has no schedule: call method.configure_schedule\(steps_per_epoch, "):
        sslab.step(m, opt, views(), 0)
    m.configure_schedule(steps_per_epoch=2, total_steps=6)
    calls, after, update = [], m.after_step, opt.step

    def before(step):
        calls.append(("before", step, all(p.grad is not None for p in m.projector.parameters())))

    m.before_optimizer_step = before
    opt.step = lambda: (calls.append(("update",)), update())
    m.after_step = lambda step, total: (calls.append(("after", step, total)), after(step, total))
    out = sslab.step(m, opt, views(), 4)  # the fifth step: 4 done before it
    assert calls == [("before", 4, True), ("update",), ("after", 5, 6)]  # gradients there before the hook
    assert isinstance(out, sslab.StepOutput) and out.loss.grad_fn is not None and out.scalars == {}
    assert len(out.targets) == 2 and all(not t.requires_grad for t in out.targets)  # the EMA target's, per direction


def test_directpred_resets_every_freq_steps_with_gradient_steps_between():
    m = small("directpred", freq=3)
    seen = {}

    def check(step, m):
        closed = directset_predictor(m.predictor.correlation(), 0.5, 0.1)
        seen[step] = torch.allclose(m.predictor.matrix(), closed, atol=1e-5)

    train_steps(m, 7, callback=check)
    # reset after steps 1, 4, 7 (luckmatters: niter % freq == 0); SGD moved Wp off the closed form in between
    assert seen == {1: True, 2: False, 3: False, 4: True, 5: False, 6: False, 7: True}
    assert m.predictor.net.bias is None and isinstance(m.predictor.net, nn.Linear)
    c = small("directcopy", freq=1)
    train_steps(c, 2)
    assert torch.allclose(c.predictor.matrix(), directcopy_predictor(c.predictor.correlation(), 0.3, "spectral"), atol=1e-6)


def test_closed_form_predictor_takes_in_the_current_batch_after_the_step():
    m = small("directpred").train()
    v = views()
    feats = [m.projector(m.backbone(x)) for x in v]  # BN in train mode: the same statistics as in forward
    m(v)
    assert int(m.predictor.corr.count) == 0  # forward only shows the batch to the predictor ...
    m.after_step(1, 1)  # ... which takes it into F̂ after the step
    f = torch.cat(feats).detach()
    assert torch.allclose(m.predictor.corr.corr, f.T @ f / f.shape[0], atol=1e-5)
    with pytest.raises(ValueError, match="unknown option 'predictor' for method 'directpred'"):  # always linear
        small("directpred", predictor="mlp")


def test_symmetric_predictor_switch():
    m = small("byol", predictor="linear", symmetric_predictor=True)
    train_steps(m, 2)
    w = m.predictor.matrix()
    assert torch.allclose(w, w.T)
    m = small("byol", symmetric_predictor=True)
    train_steps(m, 1)
    lin = [x for x in m.predictor.modules() if isinstance(x, nn.Linear)]
    assert torch.allclose(lin[1].weight, lin[0].weight.T)  # luckmatters 2-layer rule W1 = W0ᵀ


def test_predictor_lr_ratio_weight_decay_on_predictor_and_bias():
    m = small("byol", pred_lr_ratio=10.0, weight_decay_on="predictor", predictor="linear", pred_bias=True)
    opt = build_optimizer("sgd", m.parameter_groups(), lr=0.1, weight_decay=4e-4, exclude_bias_norm=False)
    pred_ids = {id(p) for p in m.predictor.parameters()}
    for g in opt.param_groups:
        is_pred = all(id(p) in pred_ids for p in g["params"])
        assert g["lr"] == pytest.approx(1.0 if is_pred else 0.1)
        assert g["weight_decay"] == pytest.approx(4e-4 if is_pred else 0.0)
    assert m.predictor.net.bias is not None


def test_stop_gradient_switch_changes_gradients_and_needs_no_ema():
    grads = {}
    for sg in (True, False):
        torch.manual_seed(0)
        m = small("simsiam", stop_gradient=sg)
        m(views()).loss.backward()
        grads[sg] = m.projector[0].weight.grad.clone()
    assert not torch.allclose(grads[True], grads[False])
    with pytest.raises(ValueError, match="stop_gradient=false needs momentum=0"):
        small("byol", stop_gradient=False)


def test_moco_queue_wraps_and_is_used_after_filling():
    m = small("moco_v2", queue_size=40)
    assert m.predictor.net.__class__ is nn.Identity and not m.symmetric
    train_steps(m, 3)
    assert int(m.queue.filled) == 40 and int(m.queue.ptr) == 48 % 40
    assert torch.allclose(m.queue.keys.norm(dim=1), torch.ones(40))  # normalised keys
    v3 = small("moco_v3")
    assert v3.temperature_scale and v3.queue is None and isinstance(v3.projector[-1], nn.BatchNorm1d)


def test_dino_freezes_last_layer_and_centers():
    m = small("dino", out_dim=12, bottleneck_dim=4, freeze_last_layer=1)
    m.configure_schedule(steps_per_epoch=2, total_steps=6)
    v0 = m.head.last_v.detach().clone()
    train_steps(m, 2)  # epoch 0: last layer frozen
    assert torch.equal(m.head.last_v, v0)
    assert not m.head.last_g.requires_grad  # norm_last_layer: g fixed at 1
    train_steps(m, 1, start=3)
    assert not torch.equal(m.head.last_v, v0)
    assert m.center.center.abs().sum() > 0


def test_swav_prototypes_frozen_then_trained_or_fixed():
    m = small("swav", num_prototypes=10, freeze_prototypes_steps=2)
    p0 = m.prototypes.weight.detach().clone()
    train_steps(m, 2)
    assert torch.allclose(m.prototypes.weight, torch.nn.functional.normalize(p0, dim=1))
    train_steps(m, 1, start=3)
    assert not torch.allclose(m.prototypes.weight, torch.nn.functional.normalize(p0, dim=1))
    fixed = small("swav", num_prototypes=10, fixed_prototypes=True)
    assert not fixed.prototypes.weight.requires_grad


def test_vit_sizes_patch_option_and_interpolated_positions():
    vs = create_backbone("vit_small")
    # timm's vit_small_patch16_224 has 22,050,664 parameters, 385,000 of them in its 1000-class head
    assert sum(p.numel() for p in vs.parameters()) == 22_050_664 - 385_000
    vt = create_backbone("vit_tiny", in_channels=1, img_size=28, patch_size=4).eval()
    assert vt.out_dim == 192 and vt.num_patches == 49
    assert vt(torch.randn(2, 1, 28, 28)).shape == (2, 192)
    assert vt(torch.randn(2, 1, 12, 12)).shape == (2, 192)  # a multi-crop local view
    assert vt.position_embedding(7, 7) is vt.pos_embed


def test_every_method_listed_with_a_family_and_builds():
    expected = {"simclr", "moco_v2", "moco_v3", "dcl", "spectral_contrastive", "simclr_abs", "simclr_sq", "vicreg_ctr",
                "barlow_twins", "vicreg", "vicreg_exp", "w_mse", "byol", "simsiam", "directpred", "directcopy",
                "swav", "dino", "center", "nnclr"}
    assert expected <= set(METHODS)
    v = views(32)
    for name in expected:
        kw = {"w_size": 32} if name == "w_mse" else {"queue_size": 64} if name in ("moco_v2", "nnclr") else {}
        kw |= {"out_dim": 32, "bottleneck_dim": 8} if name == "dino" else {}
        kw |= {"num_prototypes": 10} if name == "swav" else {}
        m = small(name, **kw)
        out = m(v)
        assert torch.isfinite(out.loss) and out.features.shape == (32, m.feature_dim), name
