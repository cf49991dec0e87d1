"""Methods, grouped by what keeps them from collapsing (see docs/methods.md).

Each entry of :data:`METHODS` is a class plus preset keyword arguments; ``build_method(name,
backbone, **overrides)`` makes one. Where methods differ by a switch they share a class.
"""

from __future__ import annotations

import inspect

from torch import nn

from .asymmetric import AsymmetricSiamese
from .base import SSLMethod
from .center import CenterVector
from .clustering import SwAV
from .contrastive import SimCLR
from .dimension import DimensionContrastive
from .distillation import DINO
from .momentum import cosine_momentum

#: DirectPred's official setting (luckmatters README command, Table 8 ρ=0.3 ε=0.1): a bias-free
#: linear predictor reset every step, constant EMA 0.996, projector 512-128 with affine-free BN
DIRECT = {"predictor": "linear", "pred_bias": False, "direct": "pred", "rho": 0.3, "eps": 0.1, "freq": 1,
          "momentum": 0.996, "momentum_final": 0.996, "proj_hidden_dim": 512, "proj_dim": 128, "proj_bn_affine": False}

#: name -> (family, class, preset kwargs, one-line description)
METHODS: dict[str, tuple[str, type[SSLMethod], dict, str]] = {
    "simclr": ("sample-contrastive", SimCLR, {}, "SimCLR, InfoNCE over the batch (Chen et al. 2020)"),
    "simclr_abs": ("sample-contrastive", SimCLR, {"negatives": "abs"},
                   "SimCLR with |cos| of the negatives (Garrido et al. 2023)"),
    "simclr_sq": ("sample-contrastive", SimCLR, {"negatives": "sq"},
                  "SimCLR with squared cosines of the negatives (Garrido et al. 2023)"),
    "dcl": ("sample-contrastive", SimCLR, {"decoupled": True},
            "decoupled contrastive learning, positive out of the denominator (Yeh et al. 2022)"),
    "spectral_contrastive": ("sample-contrastive", SimCLR, {"loss": "spectral"},
                             "spectral contrastive loss -2E[zᵀz⁺] + E[(zᵀz⁻)²] (HaoChen et al. 2021)"),
    "byol": ("asymmetric", AsymmetricSiamese, {"momentum": 0.996, "momentum_final": 1.0},
             "BYOL, EMA target + MLP predictor (Grill et al. 2020)"),
    "simsiam": ("asymmetric", AsymmetricSiamese,
                {"momentum": 0.0, "momentum_final": 0.0, "proj_layers": 3, "proj_last_bn": True,
                 "proj_hidden_dim": 2048, "proj_dim": 2048, "pred_hidden_dim": 512},
                "SimSiam, stop-gradient without EMA (Chen & He 2021)"),
    "directpred": ("asymmetric", AsymmetricSiamese, DIRECT,
                   "BYOL with the linear predictor set from F̂'s eigendecomposition (Tian et al. 2021)"),
    "directset": ("asymmetric", AsymmetricSiamese, {**DIRECT, "power": 0.5},
                  "DirectSet(α): Wp = (F̂/s_max)^α + εI, α=power (Wang et al. 2021)"),
    "directcopy": ("asymmetric", AsymmetricSiamese, {**DIRECT, "direct": "copy", "rho": 0.5, "eps": 0.3},
                   "Wp = F̂/‖F̂‖ + εI, no eigendecomposition (Wang et al. 2021)"),
    "moco_v2": ("sample-contrastive", AsymmetricSiamese,
                {"loss": "info_nce", "temperature": 0.2, "queue_size": 65536, "batch_negatives": False,
                 "predictor": "none", "momentum": 0.999, "momentum_final": 0.999, "proj_hidden_dim": 2048,
                 "proj_dim": 128, "proj_bn": False, "symmetric": False},
                "MoCo v2, momentum encoder + queue of negative keys (Chen et al. 2020)"),
    "moco_v3": ("sample-contrastive", AsymmetricSiamese,
                {"loss": "info_nce", "temperature": 1.0, "temperature_scale": True, "momentum": 0.99,
                 "momentum_final": 1.0, "proj_last_bn": True, "pred_bias": False},
                "MoCo v3, momentum encoder + predictor, batch keys as negatives (Chen et al. 2021)"),
    "barlow_twins": ("dimension-contrastive", DimensionContrastive, {"loss": "barlow_twins"},
                     "Barlow Twins, cross-correlation to identity (Zbontar et al. 2021)"),
    "vicreg": ("dimension-contrastive", DimensionContrastive, {"loss": "vicreg"},
               "VICReg, variance-invariance-covariance (Bardes et al. 2022)"),
    "vicreg_exp": ("dimension-contrastive", DimensionContrastive, {"loss": "vicreg_exp"},
                   "VICReg with a LogSumExp covariance term (Garrido et al. 2023, Eqn 11-12)"),
    "vicreg_ctr": ("sample-contrastive", DimensionContrastive, {"loss": "vicreg_ctr"},
                   "VICReg-exp on the transposed embeddings (Garrido et al. 2023, Eqn 13)"),
    "w_mse": ("dimension-contrastive", DimensionContrastive,
              {"loss": "w_mse", "proj_hidden_dim": 1024, "proj_dim": 64, "proj_layers": 2, "w_size": 128},
              "whitening MSE: Cholesky-whitened views pulled together (Ermolov et al. 2021)"),
    "swav": ("clustering", SwAV, {}, "SwAV, swapped prediction of Sinkhorn cluster codes (Caron et al. 2020)"),
    "dino": ("distillation", DINO, {}, "DINO, self-distillation from a centred EMA teacher (Caron et al. 2021)"),
    "center": ("explicit center", CenterVector, {},
               "alignment + penalty on the center vector ‖E_x z‖² (Jha et al. 2024)"),
}


def method_arguments(name: str) -> dict[str, object]:
    """Every keyword the method accepts, with its default after the preset is applied."""
    _, cls, preset, _ = _entry(name)
    params = inspect.signature(cls.__init__).parameters
    out = {k: p.default for k, p in params.items() if k not in ("self", "backbone")}
    out.update(preset)
    return out


def _entry(name: str):
    if name not in METHODS:
        raise ValueError(f"unknown method '{name}'; valid choices: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def build_method(name: str, backbone: nn.Module, **overrides) -> SSLMethod:
    """Instantiate method ``name`` on ``backbone``; ``overrides`` replace preset values."""
    _, cls, preset, _ = _entry(name)
    valid = method_arguments(name)
    bad = [k for k in overrides if k not in valid]
    if bad:
        raise ValueError(f"unknown option '{bad[0]}' for method '{name}'; valid choices: {', '.join(sorted(valid))}")
    return cls(backbone, **{**preset, **overrides})


__all__ = [
    "DINO", "METHODS", "AsymmetricSiamese", "CenterVector", "SwAV", "DimensionContrastive", "SSLMethod", "SimCLR", "build_method",
    "cosine_momentum", "method_arguments",
]
