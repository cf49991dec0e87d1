"""Projector and predictor MLPs, configured like the official heads.

``mlp(in, hidden, out, num_layers)`` stacks ``Linear -> BN -> ReLU`` for the hidden layers and a
final ``Linear``; ``last_bn`` adds a BatchNorm after it (SimCLR v2 and SimSiam's projector; SimSiam
uses ``affine=False`` there) and ``last_bias`` keeps or drops its bias (VICReg drops it).
The method presets (``sslab.methods.METHODS``) use it for the official heads: BYOL
``Linear(4096) BN ReLU Linear(256)``; SimCLR ``Linear(2048) BN ReLU Linear(128)`` (+ BN in v2);
SimSiam's projector, 3 layers of 2048 with BN after every layer (the last affine-free), and its
bottleneck predictor ``Linear(512) BN ReLU Linear(2048)``.
"""

from __future__ import annotations

from torch import nn


def mlp(
    in_dim: int,
    hidden_dim: int,
    out_dim: int,
    num_layers: int = 2,
    bn: bool = True,
    last_bn: bool = False,
    last_bn_affine: bool = True,
    last_bias: bool = True,
    bn_affine: bool = True,
) -> nn.Sequential:
    """An MLP head. ``num_layers=1`` is a single linear map ``in_dim -> out_dim``."""
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(num_layers - 1):
        layers += [nn.Linear(d, hidden_dim, bias=not bn)]
        if bn:
            layers += [nn.BatchNorm1d(hidden_dim, affine=bn_affine)]
        layers += [nn.ReLU(inplace=True)]
        d = hidden_dim
    layers += [nn.Linear(d, out_dim, bias=last_bias and not last_bn)]
    if last_bn:
        layers += [nn.BatchNorm1d(out_dim, affine=last_bn_affine)]
    return nn.Sequential(*layers)
