"""A small ConvNet for CPU runs on 28-px (MNIST) or 32-px images.

One ``conv3x3 -> BN -> ReLU`` block per stage, 2x2 max-pooling between stages and global
average pooling at the end: ``channels=(32, 64, 128)`` gives 93 k parameters and 128-d features.
It is sized for the 2-core laptop: a BYOL epoch over the 4,000 MNIST digits takes seconds, and
the features learn digit identity well beyond what the same network computes at random
initialisation (see the README's accuracy table).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ConvNet(nn.Module):
    """``in_channels -> c1 -> pool -> c2 -> pool -> ... -> c_last -> global pool``; ``width`` scales every ``c``."""

    def __init__(
        self, in_channels: int = 1, width: float = 1.0, channels: Sequence[int] = (32, 64, 128), grid: int = 1
    ) -> None:
        super().__init__()
        chans = [max(4, int(round(c * width))) for c in channels]
        layers: list[nn.Module] = []
        cin = in_channels
        for i, c in enumerate(chans):
            layers += [nn.Conv2d(cin, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            if i < len(chans) - 1:
                layers.append(nn.MaxPool2d(2))
            cin = c
        # grid > 1 keeps a coarse spatial layout (grid x grid average pools): where a stroke is
        # matters for digits, and a global pool throws that away
        layers += [nn.AdaptiveAvgPool2d(grid), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.out_dim = chans[-1] * grid * grid
        self.init_weights()

    def init_weights(self) -> None:
        """He (fan-out) initialisation of the convolutions; the other layers keep PyTorch's default."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
