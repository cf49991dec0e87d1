"""Methods, grouped by what keeps them from collapsing (docs/architecture.md, docs/methods.md).

| family                  | module             | methods                                                        |
| ----------------------- | ------------------ | -------------------------------------------------------------- |
| sample-contrastive      | ``contrastive``    | simclr (+ abs, sq, dcl, spectral), moco_v2, moco_v3            |
|                         | ``nnclr``          | nnclr                                                          |
|                         | ``dimension``      | vicreg_ctr (VICReg-exp transposed)                             |
| dimension-contrastive   | ``dimension``      | barlow_twins, vicreg, vicreg_exp, w_mse                        |
| asymmetric              | ``asymmetric``     | byol, simsiam, directpred, directcopy                          |
| clustering/distillation | ``clustering``, ``distillation`` | swav, dino                                       |
| explicit center         | ``center``         | center                                                         |

Each module registers a :class:`~.spec.MethodSpec` per method beside its class; :data:`METHODS`
maps names to specs and ``build_method(name, backbone, **options)`` makes one. The parts methods
are built from (targets, predictors, the queue) are :mod:`.parts`.
"""

from __future__ import annotations

from . import asymmetric, center, clustering, contrastive, dimension, distillation, nnclr  # noqa: F401  (register)
from .asymmetric import BYOL, DirectPred, SimSiam
from .base import Part, SSLMethod, StepOutput
from .center import CenterVector
from .clustering import SwAV
from .contrastive import MoCo, SimCLR
from .dimension import DimensionContrastive
from .distillation import DINO
from .nnclr import NNCLR
from .siamese import Siamese
from .spec import FAMILIES, METHODS, MethodSpec, build_method, method_arguments, method_spec

__all__ = [
    "BYOL", "DINO", "FAMILIES", "METHODS", "NNCLR", "CenterVector", "DimensionContrastive", "DirectPred", "MethodSpec",
    "MoCo", "Part", "SSLMethod", "Siamese", "SimCLR", "SimSiam", "StepOutput", "SwAV", "build_method", "method_arguments",
    "method_spec",
]
