"""The method specs, the parts (targets, predictors, the queue), state changes only in after_step, and NNCLR."""

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
import yaml
from torch import nn

from sslab.config import RECIPE_DIR, load_recipe, recipe_names, resolve
from sslab.data import PIPELINES, dataset_info, load_split, view_pipeline
from sslab.losses import momentum_contrast
from sslab.methods import FAMILIES, METHODS, MethodSpec, SimCLR, build_method, method_spec
from sslab.methods.nnclr import nearest_neighbours
from sslab.methods.parts import Queue
from sslab.methods.spec import register
from sslab.nets import create_backbone
from sslab.reproduce import reproductions

DOCS = Path(__file__).resolve().parents[1] / "docs"
SMALL = {
    "dino": dict(out_dim=64, proj_hidden_dim=32, bottleneck_dim=16),
    "swav": dict(proj_hidden_dim=32, proj_dim=16, num_prototypes=12, queue_size=32, queue_start_epoch=0),
    "w_mse": dict(proj_hidden_dim=32, proj_dim=8, w_size=16),
    "moco_v2": dict(proj_hidden_dim=32, proj_dim=16, queue_size=40),
    "nnclr": dict(proj_hidden_dim=32, proj_dim=16, pred_hidden_dim=32, queue_size=40),
}


def small(name: str) -> nn.Module:
    kw = SMALL.get(name, dict(proj_hidden_dim=32, proj_dim=16))
    if name in ("byol", "simsiam", "moco_v3"):
        kw = {**kw, "pred_hidden_dim": 32}
    return build_method(name, create_backbone("convnet", in_channels=1, width=0.25, grid=2), **kw)


@pytest.fixture(scope="module")
def views():
    info = dataset_info("mnist5k")
    images = load_split("mnist5k", "train").images[:32]
    return view_pipeline("byol", info.resolution, mean=info.mean, std=info.std)(images, torch.Generator().manual_seed(0))


def test_every_spec_is_complete_and_claims_its_recipes():
    claimed = {}
    rows = reproductions()
    for name, spec in METHODS.items():
        assert spec.name == name and spec.family in FAMILIES and spec.views in PIPELINES, name
        assert spec.paper and spec.code and (DOCS / "methods" / spec.doc).is_file(), name
        for dataset, recipe in spec.recipes.items():
            data = load_recipe(recipe)
            datasets = {data["dataset"]} | {rows[n].config().dataset for n in rows if rows[n].recipe == recipe}
            assert data["method"] == name and dataset in datasets, recipe
            claimed.setdefault(recipe.split("@")[0], set()).add(name)
    # every recipe belongs to one method, except the papers' experiments (which vary the method by table)
    papers = {r.recipe for r in rows.values()} - set(claimed)
    assert all(len(owners) == 1 for owners in claimed.values())
    assert set(claimed) | papers == set(recipe_names()) and all(p.split("_")[0][-4:].isdigit() for p in papers), papers
    # `sslab train method=byol dataset=cifar100` gets solo-learn's recipe, on CIFAR-100
    cfg = resolve(None, ["method=byol", "dataset=cifar100"])
    assert cfg.dataset == "cifar100" and cfg.epochs == 1000 and cfg.optim.name == "lars" and cfg.method_args["momentum"] == 0.99
    assert {s.family for s in METHODS.values()} == set(FAMILIES)


def test_recipes_hold_only_what_differs_from_their_base():
    for recipe in recipe_names():
        own = yaml.safe_load((RECIPE_DIR / f"{recipe}.yaml").read_text())
        base = yaml.safe_load((RECIPE_DIR / "bases" / f"{own.pop('base')}.yaml").read_text())
        repeated = {k for k, v in own.items() if base.get(k) == v}
        repeated |= {f"{k}.{kk}" for k, v in own.items() if isinstance(v, dict) and isinstance(base.get(k), dict)
                     for kk, vv in v.items() if base[k].get(kk) == vv}
        assert not repeated, f"{recipe} repeats {repeated} from its base"


def test_register_refuses_incomplete_specs():
    def spec(**kw):
        return MethodSpec(**{"name": "x", "family": "asymmetric", "cls": SimCLR, "views": "simclr", "description": "d",
                             "paper": "p", "code": "c", **kw})

    with pytest.raises(ValueError, match="unknown view pipeline 'none'; valid choices: simclr"):
        register(spec(views="none"))
    with pytest.raises(ValueError, match="unknown family 'contrastive'"):
        register(spec(family="contrastive"))
    with pytest.raises(ValueError, match="preset option 'predictor' is not an option of SimCLR"):
        register(spec(preset={"predictor": "none"}))
    with pytest.raises(ValueError, match="registered twice"):
        register(spec(name="byol"))
    with pytest.raises(ValueError, match="unknown method 'directset'; valid choices: barlow_twins"):
        method_spec("directset")
    assert "x" not in METHODS


def test_options_users_type_keep_working():
    backbone = lambda: create_backbone("convnet", in_channels=1, width=0.25)  # noqa: E731
    assert isinstance(build_method("byol", backbone(), predictor="none").predictor.net, nn.Identity)
    assert not build_method("simsiam", backbone(), stop_gradient=False).target.stop_gradient
    assert not list(build_method("byol", backbone(), momentum=0, momentum_final=0).target.parameters())
    assert build_method("directpred", backbone(), direct="copy", freq=5).predictor.freq == 5
    assert build_method("directpred", backbone(), power=1.0).predictor.power == 1.0  # DirectSet(α)
    with pytest.raises(ValueError, match="unknown option 'queue' for method 'byol'; valid choices: .*momentum_final"):
        build_method("byol", backbone(), queue=3)


def _state(m: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers, except BatchNorm's running statistics (PyTorch updates them in any
    train-mode forward; they are not method state)."""
    bn = ("running_mean", "running_var", "num_batches_tracked")
    return {k: v.detach().clone() for k, v in m.state_dict().items() if not k.endswith(bn)}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_forward_changes_no_state_and_after_step_does(name, views):
    torch.manual_seed(0)
    m = small(name).train()
    m.configure_schedule(steps_per_epoch=1, total_steps=4)
    before = _state(m)
    for _ in range(2):
        m(views)
    after = _state(m)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f"{name}: forward changed {changed}"
    stateful = {"moco_v2": "queue.keys", "swav": "queues.0.keys", "dino": "center.center",
                "directpred": "predictor.corr.corr", "directcopy": "predictor.corr.corr", "nnclr": "support.keys"}
    if name in stateful:
        m.after_step(1, 4)
        assert not torch.equal(before[stateful[name]], m.state_dict()[stateful[name]]), name


def test_queue_is_a_fifo_that_wraps():
    q = Queue(5, 2)
    assert q.values().shape == (0, 2) and not q.full
    batches = [torch.full((2, 2), float(i)) for i in range(1, 5)]  # keys 1,1 2,2 3,3 4,4
    for b in batches[:2]:
        q.stage(b)
        assert int(q.filled) == (0 if b is batches[0] else 2)  # stage alone writes nothing
        q.after_step(1, 1)
    assert q.values()[:, 0].tolist() == [1, 1, 2, 2]
    for b in batches[2:]:
        q.stage(b)
        q.after_step(1, 1)
    # 8 keys through 5 slots: the 3 oldest (1, 1, 2) are gone, slot order follows the write pointer
    assert q.full and int(q.ptr) == 3 and q.keys[:, 0].tolist() == [3, 4, 4, 2, 3]
    q.push(torch.arange(14.0).view(7, 2))  # more than the queue holds: the last 5 stay
    assert sorted(q.keys[:, 0].tolist()) == [4, 6, 8, 10, 12]
    r = Queue(4, 3, init="random")
    assert r.full and torch.allclose(r.keys.norm(dim=1), torch.ones(4))


def test_nearest_neighbours_match_a_brute_force_loop():
    g = torch.Generator().manual_seed(0)
    z, support = F.normalize(torch.randn(9, 4, generator=g), dim=1), F.normalize(torch.randn(30, 4, generator=g), dim=1)
    found = nearest_neighbours(z, support)
    for i in range(9):
        best = max(range(30), key=lambda j: float(sum(z[i, d] * support[j, d] for d in range(4))))
        assert torch.equal(found[i], support[best])


def test_nnclr_loss_and_support_set_follow_the_paper(views):
    torch.manual_seed(0)
    m = small("nnclr").train()
    out = m(views)
    z = [m.projector(m.backbone(v)) for v in views[:2]]  # train mode: the same BN statistics as forward
    p = [m.predictor(zi) for zi in z]
    u = [F.normalize(zi.detach(), dim=1) for zi in z]
    support = m.support.keys.clone()
    t = m.temperature
    # NNCLR Eqn 2, one anchor at a time: -log softmax over the other view's predictions
    def eqn2(a, b):
        terms = []
        for i in range(a.shape[0]):
            nn_i = max(support, key=lambda s: float(s @ a[i]))
            logits = torch.stack([nn_i @ F.normalize(b[k], dim=0) / t for k in range(b.shape[0])])
            terms.append(-torch.log_softmax(logits, 0)[i])
        return torch.stack(terms).mean()

    assert torch.allclose(out.loss, (eqn2(u[0], p[1]) + eqn2(u[1], p[0])) / 2, atol=1e-5)
    m.after_step(1, 1)  # the first view's normalised projections enter the support set, FIFO
    n = u[0].shape[0]
    assert torch.allclose(m.support.keys[:n], u[0], atol=1e-6) and torch.equal(m.support.keys[n:], support[n:])
    assert int(m.support.ptr) == n


def _nnclr_worker(rank: int, init: str, z: torch.Tensor, p: torch.Tensor, support: torch.Tensor, out: dict) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        n = z.shape[0] // 2
        local = p[rank * n : (rank + 1) * n].clone().requires_grad_(True)
        loss = momentum_contrast(nearest_neighbours(z[rank * n : (rank + 1) * n], support), local, 0.2)
        loss.backward()
        q = Queue(support.shape[0], support.shape[1], gather_keys=True)
        q.stage(z[rank * n : (rank + 1) * n])
        q.after_step(1, 1)
        out[rank] = (loss.detach(), local.grad.clone(), q.keys.clone())
    finally:
        dist.destroy_process_group()


def test_nnclr_two_processes_equal_one(tmp_path):
    g = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(8, 5, generator=g, dtype=torch.float64), dim=1)
    p = torch.randn(8, 5, generator=g, dtype=torch.float64)
    support = F.normalize(torch.randn(12, 5, generator=g, dtype=torch.float64), dim=1)
    full_p = p.clone().requires_grad_(True)
    full = momentum_contrast(nearest_neighbours(z, support), full_p, 0.2)
    full.backward()
    out = mp.Manager().dict()
    mp.spawn(_nnclr_worker, args=(f"file://{tmp_path / 'store'}", z, p, support, out), nprocs=2, join=True)
    assert torch.allclose((out[0][0] + out[1][0]) / 2, full.detach(), atol=1e-12)
    assert torch.allclose(torch.cat([out[0][1], out[1][1]]), 2 * full_p.grad, atol=1e-12)  # DDP averages: the full gradient
    for r in range(2):  # every rank's support set holds the whole global batch, in rank order
        assert torch.allclose(out[r][2][:8].double(), z, atol=1e-6)


def test_docs_methods_table_is_generated_from_the_specs():
    from sslab.registry import methods_table

    assert methods_table() in (DOCS / "methods.md").read_text(), "regenerate with sslab.registry.methods_table()"


def test_multicrop_views_of_one_resolution_go_through_the_network_together():
    """Official DINO / SwAV MultiCropWrapper: one backbone call per resolution (BatchNorm statistics over those
    crops together), outputs split back per view; DINO's teacher sees its two global crops in one call."""
    from sslab.methods.base import by_resolution

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten())
    calls = []
    net.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(5, 3, 16, 16, generator=g) for _ in range(2)] + [torch.randn(5, 3, 8, 8, generator=g)
                                                                          for _ in range(3)]
    out = by_resolution(net, views)
    assert calls == [10, 15] and [o.shape for o in out] == [(5, 4)] * 5
    assert torch.allclose(torch.cat(out[:2]), net(torch.cat(views[:2])), atol=1e-6)
    assert not torch.allclose(out[0], net(views[0]), atol=1e-4)  # batch statistics over both global crops

    from sslab.methods import build_method
    from sslab.nets import create_backbone

    dino = build_method("dino", create_backbone("convnet", in_channels=3), out_dim=64, proj_hidden_dim=32,
                        bottleneck_dim=16)
    teacher_calls = []
    dino.teacher.network.register_forward_hook(lambda m, i, o: teacher_calls.append(i[0].shape[0]))
    dino([torch.randn(4, 3, 28, 28) for _ in range(2)] + [torch.randn(4, 3, 12, 12) for _ in range(2)])
    assert teacher_calls == [8]
