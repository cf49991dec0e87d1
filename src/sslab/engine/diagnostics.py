"""The diagnostics monitor: every K steps, the stability numbers of sslab.diagnostics, logged.

On the current batch (the embeddings the loss saw) and on a fixed probe set (the first
``probe_size`` train images, two views drawn once with a fixed seed, embedded in eval mode), it
logs the center-vector statistics, effective rank, RankMe, α-ReQ, z_std, alignment and
uniformity, and -- for a linear predictor -- its alignment with F̂ (the method's own F̂ for
DirectPred/-Copy, else the batch correlation), the relative commutator and the asymmetry.
The last probe-set values and the collapse verdict go to ``summary.json``; with
``stop_on_collapse`` training ends at a complete collapse, with a message saying so.
"""

from __future__ import annotations

import sys

import lightning.pytorch as pl
import torch
from torch import nn

from .. import diagnostics as dg
from ..losses.distributed import world_size


def embedding_stats(z1: torch.Tensor, z2: torch.Tensor, center_threshold: float = 0.9,
                    dimensional_fraction: float = 0.1) -> dict[str, float | str]:
    """Every embedding diagnostic of a two-view batch, and the verdict."""
    out: dict[str, float | str] = dict(dg.center_stats(z1, z2))
    rank = dg.effective_rank(z1)
    out |= {"effective_rank": rank, "rankme": dg.rankme(z1), "alpha_req": dg.alpha_req(z1), "z_std": dg.embedding_std(z1),
            "alignment": dg.alignment(z1, z2), "uniformity": dg.uniformity(z1)}
    out["verdict"] = dg.collapse_verdict(out["center_norm"], rank, z1.shape[1], z1.shape[0] * world_size(),
                                         center_threshold, dimensional_fraction=dimensional_fraction)
    return out


def predictor_summary(method: nn.Module, z: torch.Tensor) -> dict[str, float]:
    """Alignment / commutator / asymmetry of a linear predictor against F̂ (empty for other predictors)."""
    pred = getattr(method, "predictor", None)
    if not isinstance(pred, nn.Linear):
        return {}
    corr = method.corr.value() if hasattr(method, "corr") else (z.T @ z / z.shape[0])
    st = dg.predictor_stats(corr, pred.weight)
    return {"pred_alignment": float(st["alignment"].mean()), "pred_commutator": st["commutator"],
            "pred_asymmetry": st["asymmetry"]}


class DiagnosticsMonitor(pl.Callback):
    def __init__(self, probe_images: torch.Tensor, cfg) -> None:  # cfg: config.DiagnosticsConfig
        self.probe_images, self.cfg = probe_images, cfg
        self.probe_views: list[torch.Tensor] | None = None
        self.collapsed_at: int | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        g = torch.Generator(device=pl_module.device).manual_seed(12345)
        self.probe_views = pl_module.views(self.probe_images.to(pl_module.device), g)[:2]

    @torch.no_grad()
    def probe(self, pl_module: pl.LightningModule) -> dict[str, float | str]:
        method = pl_module.method
        was_training = method.training
        method.eval()
        try:
            z1, z2 = method(self.probe_views)["embeddings"][:2]
        finally:
            method.train(was_training)
        return embedding_stats(z1, z2, self.cfg.center_threshold, self.cfg.dimensional_fraction) | predictor_summary(method, z1)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if not self.cfg.every or step % self.cfg.every:
            return
        batch_stats = embedding_stats(*pl_module.last_embeddings[:2])
        probe = self.probe(pl_module)
        for prefix, stats in (("diag_batch", batch_stats), ("diag_probe", probe)):
            for k, v in stats.items():
                if not isinstance(v, str):
                    pl_module.log(f"{prefix}/{k}", float(v), on_step=True, on_epoch=False)
        pl_module.log("diag_probe/collapsed", float(probe["verdict"] == "complete"), on_step=True, on_epoch=False)
        if probe["verdict"] == "complete" and self.cfg.stop_on_collapse and self.collapsed_at is None:
            self.collapsed_at = step
            trainer.should_stop = True
            if trainer.is_global_zero:
                print(f"sslab: stopping at step {step}: the embeddings have completely collapsed (probe center norm "
                      f"{probe['center_norm']:.3f}, effective rank {probe['effective_rank']:.2f}); "
                      "see docs/methods.md for the ablations that do this", file=sys.stderr)

    def final(self, pl_module: pl.LightningModule) -> dict[str, float | str]:
        """The probe-set diagnostics of the trained model (recomputed now, so it reflects the end state)."""
        if self.probe_views is None:
            return {}
        return self.probe(pl_module) | {"step": int(pl_module.global_step),
                                        "stopped_on_collapse_at": self.collapsed_at}
