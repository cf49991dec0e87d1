"""One benchmark case: a method's training step at a real image shape, on synthetic uint8 data.

The shape picks the dataset whose recipe (backbone, heads, views, optimiser) the case uses:
28 px MNIST (the small convnet), 32 px CIFAR-10 (ResNet-18, CIFAR stem), 96 px STL-10 and 224 px
ImageNet-100 (ResNet-18). The images are random uint8 made on the device, so nothing is read or
decoded: the case measures the training step alone (the loader has its own benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..build import method_from_config, pipeline_from_config
from ..config import Config, resolve
from ..data import TensorImages, dataset_info
from ..engine.module import SSLModule
from ..engine.train import engine_module

#: image side -> the dataset whose recipe sets the networks and views at that size
DATASET_OF_SIZE = {28: "mnist5k", 32: "cifar10", 96: "stl10", 224: "imagenet100"}
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
POOL_BATCHES = 4  # distinct batches of synthetic images, cycled through


@dataclass(frozen=True)
class Case:
    method: str
    size: int
    batch: int
    precision: str = "32-true"

    @property
    def dataset(self) -> str:
        return DATASET_OF_SIZE[self.size]

    @property
    def name(self) -> str:
        return f"{self.method} {self.size}px b{self.batch} {self.precision}"


def check_case(case: Case) -> None:
    """One-line errors for a size or precision the benchmark does not know (method names: the registry's)."""
    if case.size not in DATASET_OF_SIZE:
        raise ValueError(f"unknown image size {case.size}; valid choices: {', '.join(map(str, DATASET_OF_SIZE))}")
    if case.precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{case.precision}'; valid choices: {', '.join(PRECISIONS)}")
    if case.batch < 2:
        raise ValueError(f"batch must be >= 2 (batch statistics need two samples), got {case.batch}")


def case_config(case: Case, overrides: tuple[str, ...] = ()) -> Config:
    """The method's recipe for the case's dataset, at the case's batch size and precision."""
    check_case(case)
    return resolve(None, [f"method={case.method}", f"dataset={case.dataset}", f"batch_size={case.batch}",
                          f"precision={case.precision}", *overrides])


def synthetic_images(case: Case, device: torch.device, seed: int = 0) -> TensorImages:
    """``POOL_BATCHES`` batches of random uint8 images at the case's shape (made on ``device``) with labels 0-9."""
    info = dataset_info(case.dataset)
    g = torch.Generator(device=device).manual_seed(seed)
    n = POOL_BATCHES * case.batch
    images = torch.randint(0, 256, (n, info.channels, case.size, case.size), generator=g, device=device,
                           dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,), generator=g, device=device)
    return TensorImages(images, labels, [str(i) for i in range(10)])


def case_module(cfg: Config, steps: int, device: torch.device) -> SSLModule:
    """The engine's module for ``cfg`` (method, views, optimiser, online probe) on ``device``, scheduled
    for ``steps`` steps in one epoch."""
    module = engine_module(cfg, method_from_config(cfg), pipeline_from_config(cfg), 10, steps, 1, cfg.batch_size)
    return module.to(device)
