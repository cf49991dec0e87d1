"""The diagnostics monitor: every K steps, the stability numbers of sslab.diagnostics, logged.

On the current batch (the embeddings the loss saw) and on a fixed probe set (the first
``probe_size`` train images, two views drawn once with a fixed seed, embedded in eval mode), it
logs the center-vector statistics, effective rank, RankMe, α-ReQ, z_std, alignment, uniformity
and the duality statistics, and -- for a linear predictor -- its alignment with F̂ (the method's
own F̂ for DirectPred/-Copy, else the batch correlation), the relative commutator and the
asymmetry. Scalars go to the CSV/TensorBoard loggers; the probe set's scalars together with its
covariance spectrum and the predictor's per-mode s_j, p_j, cos(u_j, Wp u_j) are appended, one
JSON object per line, to ``<run>/logs/diagnostics.jsonl`` (what ``sslab analyze`` plots).
The last probe-set values and the collapse verdict go to ``summary.json``; with
``stop_on_collapse`` training ends at a complete collapse, with a message saying so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn

from .. import diagnostics as dg
from ..losses.distributed import world_size

#: the duality numbers worth a time series (the rest follow from N and M)
DUALITY_KEYS = ("l_c", "l_nc", "rows4_ratio", "gram_offdiag_mean", "gram_offdiag_var_ratio")


def embedding_stats(z1: torch.Tensor, z2: torch.Tensor, center_threshold: float = 0.9,
                    dimensional_fraction: float = 0.1) -> dict[str, float | str]:
    """Every embedding diagnostic of a two-view batch, and the verdict."""
    out: dict[str, float | str] = dict(dg.center_stats(z1, z2))
    rank = dg.effective_rank(z1)
    out |= {"effective_rank": rank, "rankme": dg.rankme(z1), "alpha_req": dg.alpha_req(z1), "z_std": dg.embedding_std(z1),
            "alignment": dg.alignment(z1, z2), "uniformity": dg.uniformity(z1)}
    duality = dg.duality_stats(z1)
    out |= {k: duality[k] for k in DUALITY_KEYS}
    out["verdict"] = dg.collapse_verdict(out["center_norm"], rank, z1.shape[1], z1.shape[0] * world_size(),
                                         center_threshold, dimensional_fraction=dimensional_fraction)
    return out


def predictor_modes(method: nn.Module, z: torch.Tensor) -> dict | None:
    """:func:`sslab.diagnostics.predictor_stats` of a linear predictor against F̂ (None for other predictors):
    the method's own F̂ estimate where it keeps one (DirectPred, DirectCopy), else the correlation
    of the predictor's input ``z`` (the online projections)."""
    pred = getattr(method, "predictor", None)
    if not isinstance(pred, nn.Linear):
        return None
    corr = method.corr.value() if hasattr(method, "corr") else (z.T @ z / z.shape[0])
    if not bool(torch.any(corr != 0)):  # DirectPred before its first batch: no F̂ yet, nothing to align with
        return None
    return dg.predictor_stats(corr, pred.weight)


def predictor_summary(modes: dict | None) -> dict[str, float]:
    """Mean eigen-alignment, relative commutator and asymmetry (empty without a linear predictor)."""
    if modes is None:
        return {}
    return {"pred_alignment": float(modes["alignment"].mean()), "pred_commutator": modes["commutator"],
            "pred_asymmetry": modes["asymmetry"]}


def _rounded(values: torch.Tensor) -> list[float]:
    return [float(f"{v:.6g}") for v in values.tolist()]


def trace_record(step: int, epoch: int | None, stats: dict, z: torch.Tensor, modes: dict | None) -> dict:
    """One line of ``diagnostics.jsonl``: the probe's scalars, covariance spectrum and predictor modes."""
    record = {"step": step, "epoch": epoch, **stats, "spectrum": _rounded(dg.spectrum(z))}
    if modes is not None:
        record["predictor"] = {k: _rounded(modes[k]) for k in ("s", "p", "alignment", "wp_eigenvalues")}
    return record


@torch.no_grad()
def probe_embeddings(method: nn.Module, views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The two views' embeddings (online network only), in eval mode: no BN batch statistics, no updates."""
    was_training = method.training
    method.eval()
    try:
        z1, z2 = method.embed_views(views)[1]
    finally:
        method.train(was_training)
    return z1, z2


def probe_diagnostics(method: nn.Module, views: list[torch.Tensor], cfg) -> tuple[dict, torch.Tensor, dict | None]:
    """Everything the monitor measures on the probe views: (scalars with the verdict, the first view's
    embeddings, the predictor modes or None). ``cfg``: config.DiagnosticsConfig (the verdict thresholds)."""
    z1, z2 = probe_embeddings(method, views)
    modes = predictor_modes(method, z1)
    stats = embedding_stats(z1, z2, cfg.center_threshold, cfg.dimensional_fraction) | predictor_summary(modes)
    return stats, z1, modes


def probe_views(pipe, images: torch.Tensor, device) -> list[torch.Tensor]:
    """The probe set's two fixed views (seeded, so every run and ``sslab analyze`` see the same ones)."""
    g = torch.Generator(device=device).manual_seed(12345)
    return pipe(images.to(device), g)[:2]


class DiagnosticsMonitor(pl.Callback):
    def __init__(self, probe_images: torch.Tensor, cfg, trace: str | Path | None = None) -> None:
        # cfg: config.DiagnosticsConfig; trace: the JSON-lines file of probe records (None: not written)
        self.probe_images, self.cfg = probe_images, cfg
        self.trace = Path(trace) if trace is not None else None
        self.views: list[torch.Tensor] | None = None
        self.collapsed_at: int | None = None
        self.traced_step: int | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.views = probe_views(pl_module.views, self.probe_images, pl_module.device)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step == 0 and self.cfg.every:  # the untrained model: where every curve starts
            self.probe(pl_module, 0)

    @torch.no_grad()
    def probe(self, pl_module: pl.LightningModule, step: int | None = None) -> dict[str, float | str]:
        """The probe set's diagnostics now; with ``step``, also appended to the trace file (rank 0)."""
        stats, z1, modes = probe_diagnostics(pl_module.method, self.views, self.cfg)
        if step is not None and self.trace is not None:
            record = trace_record(step, pl_module.current_epoch, stats, z1, modes)  # every rank: the spectrum gathers
            if pl_module.trainer.is_global_zero:
                self.trace.parent.mkdir(parents=True, exist_ok=True)
                with self.trace.open("a") as f:
                    f.write(json.dumps(record) + "\n")
            self.traced_step = step
        return stats

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if not self.cfg.every or step % self.cfg.every:
            return
        batch_stats = embedding_stats(*pl_module.last_embeddings[:2])
        probe = self.probe(pl_module, step)
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
        """The probe-set diagnostics of the trained model (recomputed now, so it reflects the end state;
        traced too when the last step was not a multiple of ``every``)."""
        if self.views is None:
            return {}
        step = int(pl_module.global_step)
        stats = self.probe(pl_module, None if step == self.traced_step or not self.cfg.every else step)
        return stats | {"step": step, "stopped_on_collapse_at": self.collapsed_at}
