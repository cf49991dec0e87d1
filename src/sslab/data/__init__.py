"""Data: dataset registry, batched on-device views, and named view pipelines."""

from . import imagefolder, shifted  # noqa: F401  (register imagefolder, imagenet, imagenet100, shifted_mnist)
from .datasets import DATASETS, DataError, DatasetInfo, TensorImages, dataset_info, load_split
from .loaders import TensorBatches
from .pipelines import PIPELINES, view_pipeline
from .views import ViewPipeline, ViewSpec, augment, eval_view

__all__ = [
    "DATASETS", "DataError", "DatasetInfo", "TensorImages", "dataset_info", "load_split", "TensorBatches",
    "PIPELINES", "view_pipeline", "ViewPipeline", "ViewSpec", "augment", "eval_view",
]
