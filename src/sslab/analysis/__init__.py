"""After training: read runs back and explain them (``sslab analyze``).

* :mod:`.run` -- a run folder or checkpoint as a :class:`Run` (config, summary, metrics, diagnostics trace),
  and its probe-set embedding matrix for the theory lab (:func:`probe_embedding_matrix`);
* :mod:`.plots` -- the figures (training, center vector, rank, spectra, duality, predictor);
* :mod:`.explain` -- the verdict and the comparison in plain words;
* :mod:`.report` -- Markdown/HTML report and ``analysis.json``.
"""

from .explain import compare, explain
from .report import analyze
from .run import Run, load_run, probe_embedding_matrix

__all__ = ["Run", "analyze", "compare", "explain", "load_run", "probe_embedding_matrix"]
