"""Stability diagnostics of the four papers: pure functions of embeddings (and of F̂, Wp), distributed-aware.

* :mod:`.center` -- the center-vector framework of Jha et al. (center norm, augmentation-mean norm, spread);
* :mod:`.spectrum` -- spectra and rank (effective rank, RankMe, α-ReQ, per-dimension std, alignment/uniformity);
* :mod:`.duality` -- Garrido et al.'s L_c / L_nc, the Lemma 3.4 bounds, off-diagonal Gram statistics;
* :mod:`.predictor` -- predictor dynamics of Tian et al. (eigen-alignment, commutator, symmetry, parabola);
* :mod:`.verdict` -- the ``collapse`` verdict from those numbers;
* :mod:`.probe` -- all of them on a method's two-view embeddings, the fixed probe set, the trace record
  (what the training monitor, ``sslab analyze`` and the overhead benchmark call).
"""

from .center import aug_mean_norm, center_norm, center_stats
from .duality import duality_stats
from .predictor import predictor_stats
from .probe import (
    DUALITY_KEYS,
    embedding_stats,
    predictor_modes,
    predictor_summary,
    probe_diagnostics,
    probe_embeddings,
    probe_views,
    trace_record,
)
from .spectrum import alignment, alpha_req, effective_rank, embedding_std, rankme, spectrum, uniformity
from .verdict import VERDICTS, collapse_verdict

__all__ = [
    "DUALITY_KEYS", "VERDICTS", "alignment", "alpha_req", "aug_mean_norm", "center_norm", "center_stats", "collapse_verdict",
    "duality_stats", "effective_rank", "embedding_std", "embedding_stats", "predictor_modes", "predictor_stats",
    "predictor_summary", "probe_diagnostics", "probe_embeddings", "probe_views", "rankme", "spectrum", "trace_record",
    "uniformity",
]
