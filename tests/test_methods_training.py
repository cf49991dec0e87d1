"""Every method trains (finite, decreasing loss on mnist5k views), and the ablations the papers predict to collapse do.

A tiny ConvNet and small heads keep each run to a few seconds on a CPU; the full-size runs
with accuracies are ``benchmarks/methods.py`` (docs/methods.md).
"""

import pytest
import torch
import torch.nn.functional as F

import sslab
from sslab.data import dataset_info, load_split, view_pipeline
from sslab.methods import METHODS, build_method
from sslab.nets import create_backbone
from sslab.optim import build_optimizer

SMALL = {  # heads sized for a 32-wide ConvNet; everything else is the method's preset
    "dino": dict(out_dim=256, proj_hidden_dim=64, bottleneck_dim=32, momentum=0.9),
    "swav": dict(proj_hidden_dim=64, proj_dim=32, num_prototypes=30, freeze_prototypes_steps=2),
    "w_mse": dict(proj_hidden_dim=64, proj_dim=16, w_size=32),
    # a slow key encoder (official: 0.999): with 0.9 the keys drift faster than 20 steps of learning,
    # and the loss against the queue (which starts as random unit vectors, as the official one) rises
    "moco_v2": dict(proj_hidden_dim=64, proj_dim=32, queue_size=64, momentum=0.99, momentum_final=0.99),
    "nnclr": dict(proj_hidden_dim=64, proj_dim=32, pred_hidden_dim=64, queue_size=256),
}


@pytest.fixture(scope="module")
def images():
    data = load_split("mnist5k", "train")
    return data.images[:640]


def run(name, images, steps, seed=0, lr=2e-3, **overrides):
    torch.manual_seed(seed)
    kw = SMALL.get(name, dict(proj_hidden_dim=64, proj_dim=32))
    if name in ("byol", "simsiam", "moco_v3") and overrides.get("predictor", "mlp") == "mlp":
        kw = {**kw, "pred_hidden_dim": 64}  # an MLP predictor's width (refused with another predictor)
    if name.startswith("direct") or name in ("byol", "moco_v3"):
        kw = {**kw, "momentum": 0.9, "momentum_final": 0.9}
    m = build_method(name, create_backbone("convnet", in_channels=1, width=0.25, grid=2), **{**kw, **overrides})
    info = dataset_info("mnist5k")
    pipe = view_pipeline(METHODS[name].views, info.resolution, mean=info.mean, std=info.std,
                         local_crops=2 if name in ("dino", "swav") else None)
    m.configure_schedule(steps_per_epoch=5, total_steps=steps)
    opt = build_optimizer("adamw", m.parameter_groups(), lr=lr, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    losses = []
    for step in range(1, steps + 1):
        batch = images[torch.randperm(len(images), generator=g)[:64]]
        out = sslab.step(m, opt, pipe(batch, g), step - 1)
        # DINO's cross-entropy includes the teacher's entropy, which rises as the teacher sharpens
        # away from its uniform start; what it minimises for a given teacher is the KL (DINO Fig. 7)
        losses.append((out.scalars["kl"] if name == "dino" else out.loss).item())
    return m, pipe, losses


@pytest.mark.parametrize("name", sorted(METHODS))
def test_short_run_gives_finite_decreasing_loss(name, images):
    # W-MSE's loss on whitened 32-sample chunks is noisy: 20 steps do not show its trend, 40 do
    _, _, losses = run(name, images, steps=40 if name == "w_mse" else 20)
    assert all(torch.isfinite(torch.tensor(losses))), losses
    # from step 2: MoCo v2's queue (one batch long here) is full, so its number of negatives is fixed
    first, last = sum(losses[1:6]) / 5, sum(losses[-5:]) / 5
    assert last < first, f"{name}: loss went {first:.4f} -> {last:.4f}"


def collapse_measures(m, pipe, images):
    """Center norm ‖mean of ℓ2-normalised projections‖ (→ 1 when every input maps to one point) and
    effective rank exp(entropy of normalised singular values) (→ 1 when they lie on one line, the
    collapse a BatchNorm'd output such as SimSiam's can still reach), on held-out images."""
    m.eval()
    with torch.no_grad():
        u = F.normalize(m.projector(m.backbone(pipe(images, torch.Generator().manual_seed(1))[0])), dim=1)
    s = torch.linalg.svdvals(u)
    p = s / s.sum()
    return u.mean(0).norm().item(), torch.exp(-(p * torch.log(p.clamp(min=1e-12))).sum()).item()


# SimSiam's projector ends in an affine-free BatchNorm, which holds every dimension's batch variance
# at 1: without the stop-gradient its loss still goes to -1 but the collapse is slow and degenerate
# (a few outliers carry the variance). Tian et al. Thm 2 has no BN; both SimSiam runs drop it.
@pytest.mark.parametrize("name,ablation,common", [("byol", dict(predictor="none"), {}),
                                                  ("simsiam", dict(stop_gradient=False), dict(proj_last_bn=False))])
def test_collapse_ablations_collapse_and_healthy_presets_do_not(name, ablation, common, images):
    held_out = images[-256:]
    m, pipe, _ = run(name, images[:-256], steps=60, lr=5e-3, **ablation, **common)
    center, rank = collapse_measures(m, pipe, held_out)
    assert center > 0.95 or rank < 2, f"{name} {ablation}: center {center:.3f}, rank {rank:.2f}; expected collapse"
    m, pipe, _ = run(name, images[:-256], steps=60, lr=5e-3, **common)
    center, rank = collapse_measures(m, pipe, held_out)
    assert center < 0.9 and rank > 4, f"{name}: center {center:.3f}, rank {rank:.2f}; expected no collapse"


@pytest.mark.parametrize("name", sorted(METHODS))
def test_embed_views_are_the_embeddings_the_loss_sees(name, images):
    """The diagnostics probe calls ``embed_views`` (online network only); it must return exactly forward's embeddings."""
    torch.manual_seed(0)
    kw = SMALL.get(name, dict(proj_hidden_dim=64, proj_dim=32))
    m = build_method(name, create_backbone("convnet", in_channels=1, width=0.25, grid=2), **kw).eval()
    info = dataset_info("mnist5k")
    pipe = view_pipeline(METHODS[name].views, info.resolution, mean=info.mean, std=info.std)
    views = pipe(images[:32], torch.Generator().manual_seed(0))
    with torch.no_grad():
        forward = m(views).embeddings[:2]
        _, probe = m.embed_views(views)
    assert len(probe) == 2
    for a, b in zip(forward, probe):
        assert torch.equal(a, b)
