"""What the diagnostics monitor measures, as pure functions of a method and its views (no Lightning).

The monitor (:class:`sslab.engine.diagnostics.DiagnosticsMonitor`), ``sslab analyze``'s
recomputation from a checkpoint and the overhead benchmark all call these, so the three report
the same numbers:

* :func:`embedding_stats` -- every embedding diagnostic of a two-view batch, and the verdict;
* :func:`predictor_modes` / :func:`predictor_summary` -- a linear predictor against F̂;
* :func:`probe_views`, :func:`probe_embeddings`, :func:`probe_diagnostics` -- the fixed probe set;
* :func:`trace_record` -- one line of ``<run>/logs/diagnostics.jsonl``.

The verdict thresholds have one home, ``config.DiagnosticsConfig``: callers pass them.
"""

from __future__ import annotations

import torch
from torch import nn

from ..losses.distributed import world_size
from .center import center_stats
from .duality import duality_stats
from .predictor import live_alignment, predictor_stats
from .spectrum import alignment, alpha_req, effective_rank, embedding_std, rankme, spectrum, uniformity
from .verdict import collapse_verdict

#: the duality numbers worth a time series (the rest follow from N and M)
DUALITY_KEYS = ("l_c", "l_nc", "rows4_ratio", "gram_offdiag_mean", "gram_offdiag_var_ratio")


def embedding_stats(z1: torch.Tensor, z2: torch.Tensor, *, center_threshold: float,
                    dimensional_fraction: float) -> dict[str, float | str]:
    """Every embedding diagnostic of a two-view batch ``z1, z2`` ``(N, D)``, and the verdict (thresholds:
    ``config.DiagnosticsConfig``'s ``center_threshold`` and ``dimensional_fraction``)."""
    out: dict[str, float | str] = dict(center_stats(z1, z2))
    rank = effective_rank(z1)
    out |= {"effective_rank": rank, "rankme": rankme(z1), "alpha_req": alpha_req(z1), "z_std": embedding_std(z1),
            "alignment": alignment(z1, z2), "uniformity": uniformity(z1)}
    duality = duality_stats(z1)
    out |= {k: duality[k] for k in DUALITY_KEYS}
    out["verdict"] = collapse_verdict(out["center_norm"], rank, z1.shape[1], z1.shape[0] * world_size(),
                                      center_threshold=center_threshold, dimensional_fraction=dimensional_fraction)
    return out


def predictor_modes(method: nn.Module, z: torch.Tensor) -> dict | None:
    """:func:`sslab.diagnostics.predictor_stats` of a linear predictor against F̂ (None when the method has
    no linear predictor). The predictor is duck-typed: its matrix is ``predictor.matrix()`` where it has
    one (None: not linear), else the weight of an ``nn.Linear``; F̂ is ``predictor.correlation()`` where
    it keeps an estimate (DirectPred, DirectCopy), else the correlation ``zᵀz / N`` of the predictor's
    input ``z`` ``(N, D)`` (the online projections)."""
    pred = getattr(method, "predictor", None)
    if pred is None:
        return None
    wp = pred.matrix() if hasattr(pred, "matrix") else (pred.weight if isinstance(pred, nn.Linear) else None)
    if wp is None:
        return None
    corr = pred.correlation() if hasattr(pred, "correlation") else None
    if corr is None:
        corr = z.T @ z / z.shape[0]
    if not bool(torch.any(corr != 0)):  # DirectPred before its first batch: no F̂ yet, nothing to align with
        return None
    return predictor_stats(corr, wp)


def predictor_summary(modes: dict | None) -> dict[str, float]:
    """Mean eigen-alignment (over all modes and over the live ones), relative commutator and asymmetry
    (empty without a linear predictor)."""
    if modes is None:
        return {}
    return {"pred_alignment": float(modes["alignment"].mean()),
            "pred_alignment_live": live_alignment(modes["s"], modes["alignment"]), "pred_commutator": modes["commutator"],
            "pred_asymmetry": modes["asymmetry"]}


def _rounded(values: torch.Tensor) -> list[float]:
    return [float(f"{v:.6g}") for v in values.tolist()]


def trace_record(step: int, epoch: int | None, stats: dict, z: torch.Tensor, modes: dict | None) -> dict:
    """One line of ``diagnostics.jsonl``: the probe's scalars, the covariance spectrum of ``z`` ``(N, D)``
    and the predictor modes."""
    record = {"step": step, "epoch": epoch, **stats, "spectrum": _rounded(spectrum(z))}
    if modes is not None:
        record["predictor"] = {k: _rounded(modes[k]) for k in ("s", "p", "alignment", "wp_eigenvalues")}
    return record


@torch.no_grad()
def probe_embeddings(method: nn.Module, views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The two views' embeddings ``(N, D)`` (online network only), in eval mode: no BN batch statistics, no updates."""
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
    stats = embedding_stats(z1, z2, center_threshold=cfg.center_threshold,
                            dimensional_fraction=cfg.dimensional_fraction) | predictor_summary(modes)
    return stats, z1, modes


def probe_views(pipe, images: torch.Tensor, device) -> list[torch.Tensor]:
    """The probe set's two fixed views of uint8 ``images`` ``(n, C, H, W)`` (seeded, so every run and
    ``sslab analyze`` see the same ones). ``pipe``: a :class:`sslab.data.ViewPipeline`."""
    g = torch.Generator(device=device).manual_seed(12345)
    return pipe(images.to(device), g)[:2]


__all__ = ["DUALITY_KEYS", "embedding_stats", "predictor_modes", "predictor_summary", "probe_diagnostics",
           "probe_embeddings", "probe_views", "trace_record"]
