"""The diagnostics monitor: every K steps, the stability numbers of sslab.diagnostics, logged.

On the current batch (the embeddings the loss saw, from the step's output) and on a fixed probe set (the first
``probe_size`` train images, two views drawn once with a fixed seed, embedded in eval mode), it
logs the center-vector statistics, effective rank, RankMe, α-ReQ, z_std, alignment, uniformity
and the duality statistics, and -- for a linear predictor -- its alignment with F̂ (the method's
own F̂ for DirectPred/-Copy, else the batch correlation), the relative commutator and the
asymmetry. Scalars go to the CSV/TensorBoard loggers; the probe set's scalars together with its
covariance spectrum and the predictor's per-mode s_j, p_j, cos(u_j, Wp u_j) are appended, one
JSON object per line, to ``<run>/logs/diagnostics.jsonl`` (what ``sslab analyze`` plots).
The last probe-set values and the collapse verdict go to ``summary.json``; with
``stop_on_collapse`` training ends at a complete collapse, with a message saying so.

Only the Lightning callback lives here; what it measures are the pure functions of
:mod:`sslab.diagnostics.probe`, which ``sslab analyze`` calls too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch

from ..diagnostics.probe import embedding_stats, probe_diagnostics, probe_views, trace_record


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
        pl_module.raise_if_nonfinite()  # diagnostics read the model anyway: a non-finite one is an error, not a trace
        embeddings = outputs["step"].embeddings  # the step's StepOutput (SSLModule.training_step), detached
        batch_stats = embedding_stats(*embeddings[:2], center_threshold=self.cfg.center_threshold,
                                      dimensional_fraction=self.cfg.dimensional_fraction)
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
