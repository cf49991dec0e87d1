"""A 2-process (gloo, CPU) InfoNCE equals the 1-process loss on the whole batch.

Each rank holds half the batch and gathers the other half as negatives. The mean of the ranks'
losses is the full-batch loss; each rank's gradient on its own embeddings is world x the
full-batch gradient, so DDP's averaging of parameter gradients gives exactly the full-batch
gradient (solo-learn #206 / the "divided by world size" DDP pitfall).
"""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sslab.losses import info_nce

N, D, WORLD = 8, 5, 2


def _worker(rank: int, init: str, z1: torch.Tensor, z2: torch.Tensor, out: dict) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD)
    try:
        n = N // WORLD
        a = z1[rank * n : (rank + 1) * n].clone().requires_grad_(True)
        b = z2[rank * n : (rank + 1) * n].clone().requires_grad_(True)
        loss = info_nce(a, b, temperature=0.3)
        loss.backward()
        out[rank] = (loss.detach(), a.grad.clone(), b.grad.clone())
    finally:
        dist.destroy_process_group()


def test_two_process_info_nce_equals_one_process(tmp_path):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(N, D, generator=g, dtype=torch.float64), torch.randn(N, D, generator=g, dtype=torch.float64)
    full1, full2 = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    full = info_nce(full1, full2, temperature=0.3)
    full.backward()
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_worker, args=(f"file://{tmp_path / 'store'}", z1, z2, out), nprocs=WORLD, join=True)
    losses = torch.stack([out[r][0] for r in range(WORLD)])
    assert torch.allclose(losses.mean(), full.detach(), atol=1e-12)
    g1 = torch.cat([out[r][1] for r in range(WORLD)])
    g2 = torch.cat([out[r][2] for r in range(WORLD)])
    assert torch.allclose(g1, WORLD * full1.grad, atol=1e-12)
    assert torch.allclose(g2, WORLD * full2.grad, atol=1e-12)
