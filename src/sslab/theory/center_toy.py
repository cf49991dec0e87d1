"""Jha et al.'s toy experiment (spec §C): low-dimensional data, alignment alone vs alignment + a center penalty.

Data: a mixture of ``clusters`` Gaussians in 2-D (centres on a circle of radius 2, std 0.3);
a view adds N(0, σ_aug²) noise. Encoder: a 2-64-64-3 ReLU MLP, outputs ℓ2-normalised onto the
sphere S². Objectives, both on the two views' unit embeddings u¹, u²:

* ``alignment``: −E u¹ᵀu² (maximise ‖μ(x)‖ only) -- nothing stops every input mapping to one point;
* ``center``:    −E u¹ᵀu² + λ ‖s‖² with the unbiased batch estimate of ‖s‖² (sslab.losses.center_penalty),
  Jha et al.'s "simplified objective": maximise the augmentation-mean norm, minimise the center norm.

Every ``record_every`` steps the center norm ‖s‖ and E‖μ(x)‖ are measured on a fixed evaluation set
with sslab.diagnostics.center_stats.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..diagnostics import center_stats
from ..figures import panels, save
from ..losses import center_penalty

DEFAULTS = {"objectives": ["alignment", "center"], "lambda_center": 1.0, "clusters": 4, "aug_sigma": 0.3, "steps": 600,
            "batch": 256, "lr": 0.003, "record_every": 10, "eval_size": 2000, "seed": 0}
OBJECTIVES = ("alignment", "center")


def sample(n: int, clusters: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    label = torch.randint(0, clusters, (n,), generator=g)
    angle = 2 * math.pi * label.double() / clusters
    centre = 2 * torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    return (centre + 0.3 * torch.randn(n, 2, generator=g, dtype=torch.float64)).float(), label


def encoder() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))


def train_toy(objective: str, prm: dict) -> dict:
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective '{objective}'; choose from {', '.join(OBJECTIVES)}")
    torch.manual_seed(prm["seed"])
    net = encoder()
    opt = torch.optim.Adam(net.parameters(), lr=prm["lr"])
    g = torch.Generator().manual_seed(prm["seed"])
    x_eval, y_eval = sample(prm["eval_size"], prm["clusters"], torch.Generator().manual_seed(prm["seed"] + 1))
    ge = torch.Generator().manual_seed(prm["seed"] + 2)
    v1 = x_eval + prm["aug_sigma"] * torch.randn(x_eval.shape, generator=ge)
    v2 = x_eval + prm["aug_sigma"] * torch.randn(x_eval.shape, generator=ge)
    history: dict[str, list[float]] = {"step": [], "center_norm": [], "aug_mean_norm": [], "loss": []}
    loss = torch.tensor(float("nan"))
    for step in range(prm["steps"] + 1):
        if step % prm["record_every"] == 0 or step == prm["steps"]:
            with torch.no_grad():
                st = center_stats(net(v1), net(v2), gather_distributed=False)
            for key, value in (("step", step), ("center_norm", st["center_norm"]), ("aug_mean_norm", st["aug_mean_norm"]),
                               ("loss", loss.item())):
                history[key].append(value)
        if step == prm["steps"]:
            break
        x, _ = sample(prm["batch"], prm["clusters"], g)
        u1 = F.normalize(net(x + prm["aug_sigma"] * torch.randn(x.shape, generator=g)), dim=1)
        u2 = F.normalize(net(x + prm["aug_sigma"] * torch.randn(x.shape, generator=g)), dim=1)
        loss = -(u1 * u2).sum(1).mean()
        if objective == "center":
            loss = loss + prm["lambda_center"] * center_penalty(torch.cat([u1, u2]), gather_distributed=False)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        u = F.normalize(net(x_eval), dim=1).numpy()
    return {"history": history, "embeddings": u, "labels": y_eval.numpy()}


def run_center_toy(prm: dict, out: Path) -> dict:
    objectives = list(prm["objectives"])
    runs = {name: train_toy(name, prm) for name in objectives}
    fig, axes = panels(2 + len(objectives), width=4.2)
    for i, (name, r) in enumerate(runs.items()):
        h = r["history"]
        axes[0].plot(h["step"], h["center_norm"], color=f"C{i}", label=name)
        axes[1].plot(h["step"], h["aug_mean_norm"], color=f"C{i}", label=name)
        u = r["embeddings"]
        ax = axes[2 + i]
        lon, lat = np.degrees(np.arctan2(u[:, 1], u[:, 0])), np.degrees(np.arcsin(np.clip(u[:, 2], -1, 1)))
        ax.scatter(lon, lat, c=r["labels"], cmap="tab10", s=3)
        ax.set(xlim=(-180, 180), ylim=(-90, 90), xlabel="longitude", ylabel="latitude",
               title=f"{name}: final embeddings on S² (colour = cluster)")
    axes[0].set(title="center norm ‖s‖ (1 = collapsed)", xlabel="step", ylim=(-0.02, 1.02))
    axes[1].set(title="augmentation-mean norm E‖μ(x)‖", xlabel="step", ylim=(-0.02, 1.02))
    axes[0].legend(fontsize=8)
    return {name: {"final_center_norm": r["history"]["center_norm"][-1], "final_aug_mean_norm": r["history"]["aug_mean_norm"][-1],
                   "history": r["history"]} for name, r in runs.items()} | {"figures": [save(fig, out, "center_toy.png")]}
