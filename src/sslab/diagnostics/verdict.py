"""The collapse verdict, from the center norm and the effective rank (documented thresholds).

* ``complete``: the embeddings meet in one point or one line -- plug-in center norm ‖mean u‖ ≥
  ``center_threshold`` (a collapsed batch has ‖s‖ → 1, a healthy one ‖s‖ ≈ 0) or effective
  rank < ``rank_one`` (1.5);
* ``dimensional``: effective rank below ``dimensional_fraction`` of min(D, N − 1), the most
  a batch of N samples in D dimensions can show -- most dimensions carry nothing (Jing et al. 2022);
* ``healthy`` otherwise.

The thresholds are ours (no paper fixes them). ``center_threshold`` and ``dimensional_fraction``
are required keyword arguments: their one home is ``config.DiagnosticsConfig`` (defaults and
documentation there), which every caller reads.
"""

from __future__ import annotations

VERDICTS = ("complete", "dimensional", "healthy")


def collapse_verdict(center_norm: float, effective_rank: float, dim: int, batch: int, *, center_threshold: float,
                     dimensional_fraction: float, rank_one: float = 1.5) -> str:
    """One of :data:`VERDICTS` for a batch of ``batch`` embeddings of dimension ``dim``."""
    if center_norm >= center_threshold or effective_rank < rank_one:
        return "complete"
    if effective_rank < dimensional_fraction * min(dim, batch - 1):
        return "dimensional"
    return "healthy"
