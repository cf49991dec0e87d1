"""``sslab bench``: the training step's speed and its host–device synchronisations, on synthetic data.

:mod:`.case` makes a method's step at a real image shape; :mod:`.timing` times it by phase, against
its floor and through the engine's Lightning loop; :mod:`.syncs` counts the host reads a step
makes; :mod:`.parts` times the image-folder loader and the diagnostics; :mod:`.run` runs a list of
cases and writes the tables and JSON (docs/benchmarks.md).
"""

from .case import Case
from .run import DEFAULT_METHODS, run_bench, run_case
from .syncs import SyncCounter

__all__ = ["DEFAULT_METHODS", "Case", "SyncCounter", "run_bench", "run_case"]
