"""2 processes (gloo, CPU) computing a batch-statistic loss equal 1 process on the whole batch.

Each rank holds half the batch and gathers the rest. The mean of the ranks' losses is the
full-batch loss, and each rank's gradient on its own embeddings is world x the full-batch
gradient, so DDP's averaging of parameter gradients gives exactly the full-batch gradient
(solo-learn #206 / the "divided by world size" DDP pitfall).
"""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sslab import losses

N, D, WORLD = 8, 5, 2
LOSSES = {
    "info_nce": lambda a, b: losses.info_nce(a, b, temperature=0.3),
    "barlow_twins": losses.barlow_twins,
    "vicreg": losses.vicreg,
    "center_penalty": lambda a, b: losses.center_penalty(torch.cat([a, b])),
    "dcl_sq": lambda a, b: losses.info_nce(a, b, temperature=0.3, negatives="sq", decoupled=True),
    "spectral_contrastive": losses.spectral_contrastive,
    "momentum_contrast": lambda a, b: losses.momentum_contrast(a, b, 0.3) + losses.momentum_contrast(b, a, 0.3),
    "vicreg_exp": lambda a, b: losses.vicreg_exp(a, b, temperature=0.5),
    "vicreg_ctr": lambda a, b: losses.vicreg_exp(a, b, temperature=0.5, transpose=True),
    "vicreg_ctr_literal": lambda a, b: losses.vicreg_exp(a, b, temperature=0.5, transpose=True, centering="embedding"),
    "simclr_b": lambda a, b: losses.info_nce(losses.standardize_dimensions(a), losses.standardize_dimensions(b), 0.3,
                                             normalize=False),
    "w_mse": lambda a, b: losses.w_mse(a[:, :3], b[:, :3]),
    "swav": lambda a, b: losses.swav([a, b], temperature=0.5, epsilon=0.5),
}


def _worker(rank: int, init: str, name: str, z1: torch.Tensor, z2: torch.Tensor, out: dict) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD)
    try:
        n = N // WORLD
        a = z1[rank * n : (rank + 1) * n].clone().requires_grad_(True)
        b = z2[rank * n : (rank + 1) * n].clone().requires_grad_(True)
        loss = LOSSES[name](a, b)
        loss.backward()
        out[rank] = (loss.detach(), a.grad.clone(), b.grad.clone())
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("name", list(LOSSES))
def test_two_process_loss_equals_one_process(tmp_path, name):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(N, D, generator=g, dtype=torch.float64), torch.randn(N, D, generator=g, dtype=torch.float64)
    full1, full2 = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    full = LOSSES[name](full1, full2)
    full.backward()
    out = mp.Manager().dict()
    mp.spawn(_worker, args=(f"file://{tmp_path / 'store'}", name, z1, z2, out), nprocs=WORLD, join=True)
    rank_losses = torch.stack([out[r][0] for r in range(WORLD)])
    assert torch.allclose(rank_losses.mean(), full.detach(), atol=1e-12)
    g1 = torch.cat([out[r][1] for r in range(WORLD)])
    g2 = torch.cat([out[r][2] for r in range(WORLD)])
    assert torch.allclose(g1, WORLD * full1.grad, atol=1e-12)
    assert torch.allclose(g2, WORLD * full2.grad, atol=1e-12)


def _diagnostics_worker(rank: int, init: str, z1: torch.Tensor, z2: torch.Tensor, out: dict) -> None:
    from sslab import diagnostics as dg

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD)
    try:
        n = N // WORLD
        a, b = z1[rank * n : (rank + 1) * n], z2[rank * n : (rank + 1) * n]
        out[rank] = (dg.center_stats(a, b), dg.effective_rank(a), dg.embedding_std(a), dg.duality_stats(a))
    finally:
        dist.destroy_process_group()


def test_two_process_diagnostics_equal_one_process(tmp_path):
    from sslab import diagnostics as dg

    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(N, D, generator=g, dtype=torch.float64), torch.randn(N, D, generator=g, dtype=torch.float64)
    out = mp.Manager().dict()
    mp.spawn(_diagnostics_worker, args=(f"file://{tmp_path / 'store'}", z1, z2, out), nprocs=WORLD, join=True)
    full = dg.center_stats(z1, z2)
    for r in range(WORLD):
        stats, rank_eff, std, duality = out[r]
        assert all(stats[k] == pytest.approx(full[k], abs=1e-12) for k in full)
        full_duality = dg.duality_stats(z1)
        assert all(duality[k] == pytest.approx(full_duality[k], rel=1e-10, abs=1e-12) for k in full_duality)
        assert rank_eff == pytest.approx(dg.effective_rank(z1), abs=1e-12)
        assert std == pytest.approx(dg.embedding_std(z1), abs=1e-12)


def _syncbn_worker(rank: int, init: str, x: torch.Tensor, weights: dict, out: dict) -> None:
    dist.init_process_group("nccl", init_method=init, rank=rank, world_size=WORLD)
    try:
        torch.cuda.set_device(rank)
        net = torch.nn.Sequential(torch.nn.Linear(D, 6), torch.nn.BatchNorm1d(6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
        net.load_state_dict(weights)
        net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net).cuda(rank)  # what sync_batchnorm=true does
        ddp = torch.nn.parallel.DistributedDataParallel(net, device_ids=[rank])
        n = len(x) // WORLD
        y = ddp(x[rank * n:(rank + 1) * n].cuda(rank))
        (y.pow(2).sum() / len(x) * WORLD).backward()  # the rank's share of the full-batch loss, DDP averages
        out[rank] = (y.detach().cpu(), net[0].weight.grad.cpu(), net[1].running_mean.cpu())
    finally:
        dist.destroy_process_group()


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < WORLD, reason="SyncBatchNorm runs on GPUs only (2 needed)")
def test_sync_batchnorm_two_processes_equal_one_process_on_the_full_batch(tmp_path):
    """sync_batchnorm=true: BatchNorm statistics over the global batch, so 2 ranks of N/2 give the outputs,
    gradients and running statistics of one process with plain BatchNorm on all N."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(D, 6), torch.nn.BatchNorm1d(6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(N, D)
    y = net(x)
    y.pow(2).sum().div(N).backward()
    out = mp.Manager().dict()
    mp.spawn(_syncbn_worker, args=(f"file://{tmp_path / 'store'}", x, weights, out), nprocs=WORLD, join=True)
    assert torch.allclose(torch.cat([out[r][0] for r in range(WORLD)]), y.detach(), atol=1e-5)
    assert torch.allclose(out[0][1], net[0].weight.grad, atol=1e-5)
    assert torch.allclose(out[0][2], net[1].running_mean, atol=1e-6)


def _features_worker(rank: int, init: str, data, weights: dict, limit, out: dict) -> None:
    from sslab.evaluation import sharded_features
    from sslab.nets import create_backbone

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(0)
        net = create_backbone("convnet", in_channels=1, width=0.25)
        net.load_state_dict(weights)
        f, y = sharded_features(net, data, 8, (0.5,), (0.25,), "cpu", limit=limit, batch_size=2)
        out[rank] = (f, y)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("limit", [None, 5])
def test_knn_features_split_over_two_ranks_equal_one_process(tmp_path, limit):
    """Each rank extracts every second image and both gather them in order: the same features and labels as
    one process extracting all (9 images: the ranks' shares differ in size)."""
    from sslab.data import TensorImages
    from sslab.evaluation import extract_features
    from sslab.nets import create_backbone

    g = torch.Generator().manual_seed(0)
    data = TensorImages(torch.randint(0, 256, (9, 1, 8, 8), generator=g, dtype=torch.uint8), torch.arange(9) % 4, [])
    torch.manual_seed(0)
    net = create_backbone("convnet", in_channels=1, width=0.25)
    full_f, full_y = extract_features(net, data, 8, (0.5,), (0.25,), limit=limit)
    out = mp.Manager().dict()
    mp.spawn(_features_worker, args=(f"file://{tmp_path / 'store'}", data, net.state_dict(), limit, out), nprocs=WORLD,
             join=True)
    for r in range(WORLD):
        f, y = out[r]
        assert f.shape == full_f.shape == ((limit or 9), net.out_dim)
        assert torch.allclose(f, full_f, atol=1e-6) and torch.equal(y, full_y)
