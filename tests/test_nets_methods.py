"""Backbones, heads, optimisers and the three methods of the foundation."""

import math

import pytest
import torch
from torch import nn

from sslab.methods import build_method, method_arguments
from sslab.methods.parts import EMATarget, OnlineTarget, cosine_momentum
from sslab.nets import create_backbone, mlp
from sslab.optim import LARS, build_optimizer, warmup_cosine


@pytest.mark.parametrize("name,dim", [("resnet18", 512), ("resnet34", 512), ("resnet50", 2048)])
def test_resnet_feature_dims_and_stems(name, dim):
    x = torch.randn(2, 3, 32, 32)
    for stem in ("cifar", "imagenet"):
        net = create_backbone(name, stem=stem).eval()
        assert net(x).shape == (2, dim) and net.out_dim == dim
    assert isinstance(create_backbone("resnet18", stem="cifar").maxpool, nn.Identity)
    assert create_backbone("resnet18", stem="cifar").conv1.kernel_size == (3, 3)
    assert create_backbone("resnet18", stem="imagenet").conv1.kernel_size == (7, 7)


def test_resnet18_parameter_count_matches_torchvision():
    net = create_backbone("resnet18")
    # torchvision resnet18 has 11,689,512 parameters, 513,000 of them in its fc layer
    assert sum(p.numel() for p in net.parameters()) == 11_689_512 - 513_000


def test_width_multiplier_and_convnet():
    assert create_backbone("resnet18", width=2).out_dim == 1024
    net = create_backbone("convnet", in_channels=1)
    assert net(torch.randn(3, 1, 28, 28)).shape == (3, 128)
    with pytest.raises(ValueError, match="valid choices"):
        create_backbone("resnet19")


def test_mlp_heads_follow_official_layouts():
    byol = mlp(512, 4096, 256, 2)
    assert [type(m) for m in byol] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert byol[0].bias is None and byol[3].bias is not None
    simsiam = mlp(512, 2048, 2048, 3, last_bn=True, last_bn_affine=False)
    assert isinstance(simsiam[-1], nn.BatchNorm1d) and not simsiam[-1].affine and simsiam[-2].bias is None
    assert isinstance(mlp(8, 8, 4, 1)[0], nn.Linear) and len(mlp(8, 8, 4, 1)) == 1


def test_cosine_momentum_schedule():
    assert cosine_momentum(0.996, 1.0, 0, 100) == pytest.approx(0.996)
    assert cosine_momentum(0.996, 1.0, 100, 100) == pytest.approx(1.0)
    assert cosine_momentum(0.996, 1.0, 50, 100) == pytest.approx(0.998)


def test_warmup_cosine():
    assert warmup_cosine(0, 100, 10) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(10, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 10) == pytest.approx(0.5)
    assert warmup_cosine(100, 100, 10, 0.01) == pytest.approx(0.01)


def test_lars_update_matches_formula_and_excludes_vectors():
    w = nn.Parameter(torch.tensor([[3.0, 4.0]]))  # ||w|| = 5
    b = nn.Parameter(torch.tensor([1.0]))
    opt = build_optimizer("lars", [{"params": [w, b]}], lr=0.1, weight_decay=0.5, momentum=0.9, eta=0.01)
    assert isinstance(opt, LARS)
    w.grad, b.grad = torch.tensor([[1.0, 0.0]]), torch.tensor([2.0])
    opt.step()
    g = torch.tensor([[1.0, 0.0]]) + 0.5 * torch.tensor([[3.0, 4.0]])  # grad + wd * w
    trust = 0.01 * 5.0 / g.norm()
    assert torch.allclose(w.detach(), torch.tensor([[3.0, 4.0]]) - 0.1 * trust * g, atol=1e-6)
    assert torch.allclose(b.detach(), torch.tensor([1.0 - 0.1 * 2.0]))  # plain SGD, no decay


def test_optimizer_unknown_name():
    with pytest.raises(ValueError, match="valid choices: sgd, lars, adam, adamw"):
        build_optimizer("adam9", [{"params": [nn.Parameter(torch.ones(1))]}], lr=0.1)


def small(method, **kw):
    args = dict(proj_hidden_dim=32, proj_dim=16)
    if method in ("byol", "simsiam"):
        args["pred_hidden_dim"] = 32
    args.update(kw)
    return build_method(method, create_backbone("convnet", in_channels=1, width=0.25), **args)


def test_byol_ema_update_and_simsiam_has_no_target():
    m = small("byol", momentum=0.5, momentum_final=0.5)
    with torch.no_grad():
        for p in m.backbone.parameters():
            p.add_(1.0)
    assert isinstance(m.target, EMATarget)
    target_backbone = m.target.network[0]
    before = [p.clone() for p in target_backbone.parameters()]
    m.after_step(1, 10)
    for t, o, b in zip(target_backbone.parameters(), m.backbone.parameters(), before):
        assert torch.allclose(t, 0.5 * b + 0.5 * o)
    assert not any(n.startswith("target.online") for n, _ in m.named_parameters())  # the online net is not registered twice
    s = small("simsiam")
    assert isinstance(s.target, OnlineTarget) and not list(s.target.parameters())
    assert "momentum" not in method_arguments("simsiam")
    assert isinstance(small("byol", momentum=0.0, momentum_final=0.0).target, OnlineTarget)  # BYOL without EMA


def test_methods_forward_backward_and_symmetric_loss():
    views = [torch.randn(8, 1, 28, 28), torch.randn(8, 1, 28, 28)]
    for name in ("simclr", "simclr_abs", "simclr_sq", "dcl", "spectral_contrastive", "byol", "simsiam", "barlow_twins",
                 "vicreg", "center"):
        m = small(name)
        out = m(views)
        assert out.loss.ndim == 0 and torch.isfinite(out.loss)
        assert out.features.shape == (8, m.feature_dim)
        out.loss.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.backbone.parameters())
    m = small("byol").eval()
    a = m(views).loss
    b = m(views[::-1]).loss
    assert torch.allclose(a, b, atol=1e-6)  # ½[D(p1, z2') + D(p2, z1')] is symmetric in the views
    bounded = small("simsiam")(views).loss.item()
    assert -1.0 <= bounded <= 1.0 and not math.isnan(bounded)


def test_unknown_method_option():
    with pytest.raises(ValueError, match="unknown option 'temprature'.*temperature"):
        small("simclr", temprature=0.1)
    with pytest.raises(ValueError, match="valid choices: .*byol.*simclr.*simsiam"):
        build_method("simclr2", create_backbone("convnet"))


def test_dimension_contrastive_uses_the_chosen_loss_and_center_method_terms():
    from sslab.losses import barlow_twins, center_penalty, vicreg

    views = [torch.randn(16, 1, 28, 28), torch.randn(16, 1, 28, 28)]
    for name, fn in (("barlow_twins", lambda a, b: barlow_twins(a, b, lambd=0.0051)), ("vicreg", vicreg)):
        m = small(name).eval()
        out = m(views)
        assert torch.allclose(out.loss, fn(*out.embeddings), atol=1e-6)
        assert isinstance(m.projector[-1], nn.Linear) and m.projector[-1].bias is None  # official last layer
    m = small("center", center_weight=2.0).eval()
    out = m(views)
    z1, z2 = out.embeddings
    cos = torch.nn.functional.cosine_similarity(z1, z2).mean()
    assert torch.allclose(out.loss, -cos + 2.0 * center_penalty(torch.cat([z1, z2])), atol=1e-6)
    # each loss is its own class with only its own options: no loss switch, no other loss's coefficients
    with pytest.raises(ValueError, match="unknown option 'loss' for method 'barlow_twins'; valid choices: lambd"):
        small("barlow_twins", loss="mse")
    with pytest.raises(ValueError, match="unknown option 'sim_coeff' for method 'barlow_twins'; valid choices: lambd"):
        small("barlow_twins", sim_coeff=1.0)


def test_simclr_presets_use_their_loss_variant():
    from sslab.losses import info_nce, spectral_contrastive

    views = [torch.randn(8, 1, 28, 28), torch.randn(8, 1, 28, 28)]
    cases = {"simclr_abs": dict(negatives="abs"), "simclr_sq": dict(negatives="sq"), "dcl": dict(decoupled=True)}
    for name, kw in cases.items():
        m = small(name).eval()
        out = m(views)
        assert torch.allclose(out.loss, info_nce(*out.embeddings, 0.5, **kw), atol=1e-6)
        if name != "simclr_abs":  # at random init all cosines may be positive, where abs changes nothing
            assert not torch.allclose(out.loss, info_nce(*out.embeddings, 0.5), atol=1e-6)
    m = small("spectral_contrastive").eval()
    out = m(views)
    assert torch.allclose(out.loss, spectral_contrastive(*out.embeddings), atol=1e-6)


def test_cosine_schedule_and_per_parameter_clipping():
    from sslab.optim import clip_per_parameter, cosine_schedule

    assert cosine_schedule(0.04, 0.4, 0, 10) == pytest.approx(0.04)  # DINO weight decay 0.04 -> 0.4
    assert cosine_schedule(0.04, 0.4, 5, 10) == pytest.approx(0.22)
    assert cosine_schedule(0.04, 0.4, 10, 10) == pytest.approx(0.4)
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    a.grad, b.grad = torch.tensor([3.0, 4.0]), torch.tensor([0.3, 0.4])  # norms 5 and 0.5
    clip_per_parameter([a, b], 1.0)
    assert torch.allclose(a.grad, torch.tensor([0.6, 0.8]), atol=1e-6)  # each parameter on its own
    assert torch.allclose(b.grad, torch.tensor([0.3, 0.4]))
