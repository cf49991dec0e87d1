"""The theory lab: the four papers' linear-network dynamics and toy models, integrated and checked.

* :mod:`.tian` -- Tian, Chen & Ganguli 2021: matrix flow (Eqns 2-4), per-mode ODE (Eqns 11-13),
  fixed points, Eqn 14, Theorems 1-3;
* :mod:`.linear_net` -- SGD on real linear BYOL/SimSiam networks with sampled, augmented data;
* :mod:`.directset` -- DirectSet(α) (Wang et al. 2021): weight decay as an augmentation-variance threshold;
* :mod:`.duality` -- Garrido et al. 2023: Theorem 3.3 / Corollary 3.4.1 on any embedding matrix;
* :mod:`.center_toy` -- Jha et al. 2024: alignment with and without the center penalty;
* :mod:`.lab` -- the named experiments behind ``sslab theory``.
"""

from . import tian
from .lab import EXPERIMENTS, run_experiment

__all__ = ["EXPERIMENTS", "run_experiment", "tian"]
