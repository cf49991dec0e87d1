"""Configuration: one source of truth, in three layers.

1. the dataclass defaults below (the default run: BYOL on ``mnist5k``);
2. a recipe (``recipes/<name>.yaml`` or any YAML file); with no recipe named, the method's
   recipe for the dataset (its spec's ``recipes``) is used when it has one, so ``sslab train
   method=simclr`` gets the tuned MNIST settings. A recipe holds only what differs from its
   ``base`` (``recipes/bases/<name>.yaml``: the dataset's schedule, batch, crops, optimiser),
   which is applied first;
3. ``key=value`` overrides from the command line (values parsed as YAML: ``0.1``, ``true``,
   ``null``, ``[1, 2]``). A key that is not a config field but is an option of the chosen method
   (``temperature=0.2``, ``predictor=none``) goes to ``method_args``.

The resolved config is saved with every run as ``config.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

RECIPE_DIR = Path(__file__).parent / "recipes"
BASE_DIR = RECIPE_DIR / "bases"


class ConfigError(ValueError):
    """A bad key or value; the message is one line naming it and the valid choices."""


@dataclass
class OptimConfig:
    name: str = "adamw"  # sgd | lars | adam | adamw
    lr: float = 2e-3  # base learning rate (multiplied by batch_size/256 when scale_lr)
    scale_lr: bool = False
    weight_decay: float = 1e-4
    momentum: float = 0.9  # sgd / lars
    eta: float = 0.001  # lars trust coefficient
    lars_clip: bool = False  # solo-learn's LARS (clip_lr): ratio eta|w|/(|g| + wd|w|), its lr capped at the group's
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adamw
    warmup_epochs: float = 1.0
    final_lr_ratio: float = 0.0  # cosine decays to lr * final_lr_ratio
    exclude_bias_norm: bool = True  # no weight decay / LARS adaptation on biases and norms (SimSiam, MoCo, luckmatters: false)
    bias_lr_ratio: float = 1.0  # learning rate of biases and norms relative to lr (Barlow Twins: 0.0048 / 0.2 = 0.024)
    probe_lr: float = 1e-2  # the online linear probe (its own parameter group, no weight decay)
    clip_grad: float = 0.0  # > 0: clip each parameter's gradient norm to this (DINO: 3.0)
    weight_decay_end: float | None = None  # cosine schedule of the weight decay to this value (DINO: 0.04 -> 0.4)


@dataclass
class DDPConfig:
    """Options of PyTorch's DistributedDataParallel, used when training on more than one process."""

    broadcast_buffers: bool = True  # rank 0's buffers (BatchNorm statistics, queues) copied to all ranks each forward
    gradient_as_bucket_view: bool = True  # gradients are views into DDP's all-reduce buckets: one copy less
    static_graph: bool = False  # the same parameters used every step: lets DDP skip its per-step bookkeeping
    find_unused_parameters: bool = False  # needed only when some parameters get no gradient in a step


@dataclass
class EvalConfig:
    knn_k: int = 20
    knn_temperature: float = 0.07
    knn_every: int = 5  # epochs between kNN evaluations during training; 0 = only at the end
    knn_subset: int = 0  # > 0: those evaluations use the first knn_subset train and test images (the last: all)
    linear: bool = True  # offline linear probe on frozen features at the end
    linear_epochs: int = 50  # luckmatters linear_feature_eval.py: standardised features, Adam,
    linear_lr: float = 3e-4  # lr 3e-4, weight decay 1e-3, 50 epochs, batch 128 (spec §A.3)
    linear_weight_decay: float = 1e-3
    linear_report: str = "last"  # last | best (luckmatters: the best test accuracy over the epochs)
    baselines: bool = True  # also report kNN of a randomly initialised encoder and of raw pixels
    online_probe: bool = True


@dataclass
class DiagnosticsConfig:
    every: int = 50  # optimiser steps between diagnostics (0 = off); each costs one probe-set forward
    probe_size: int = 512  # fixed probe images (the first of the train split, two fixed views each)
    stop_on_collapse: bool = False  # end training with a message when the probe set has completely collapsed
    center_threshold: float = 0.9  # verdict thresholds (sslab.diagnostics.verdict)
    dimensional_fraction: float = 0.1


@dataclass
class Config:
    method: str = "byol"
    dataset: str = "mnist5k"
    data_root: str | None = None  # folder holding the dataset files (default $SSLAB_DATA or ./data)
    classes_file: str | None = None  # imagefolder: class subset (e.g. ImageNet-100)
    predecode: bool = False  # imagefolder: decode once to a uint8 memory-mapped file, read it in later runs
    cache_dir: str | None = None  # where predecode writes (default <data_root>/.sslab_cache)
    decode: str = "auto"  # imagefolder JPEGs: workers (Pillow) | device (nvJPEG); auto: device on a CUDA GPU with torchvision
    verify_md5: bool = True  # cifar: check the official checksums
    strict_counts: bool = True  # stl10: check the official image counts (false for subsets)
    backbone: str = "auto"  # auto: convnet for <= 32 px grayscale, resnet18 otherwise
    stem: str = "auto"  # auto: cifar stem below 64 px, imagenet above
    width: float = 1.0
    backbone_args: dict[str, Any] = field(default_factory=dict)  # extra constructor options, e.g. {grid: 2}
    views: str = "auto"  # simclr | byol | vicreg | dino; auto: the method's own pipeline
    image_size: int | None = None  # crop size; default: the dataset's native size
    crop_scale: list[float] | None = None  # override the global crops' scale range
    # ViewSpec fields set on every view, e.g. {blur_p: 1.0, mean: [0, 0, 0], std: [1, 1, 1]} (luckmatters' STL-10 views)
    view_args: dict[str, Any] = field(default_factory=dict)
    local_crops: int | None = None
    # > 0: hold out this many images of the training split (a fixed draw, the same for every seed) as the evaluation
    # split -- kNN, linear probe and baselines score them, training and the kNN bank use the rest, the test split is
    # never read: for tuning (sslab reproduce claims tunes on it). In-memory datasets whose pretrain split is the train split.
    holdout: int = 0
    epochs: int = 15
    batch_size: int = 128  # per device
    seed: int = 0
    deterministic: bool = False
    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"  # Lightning's name; several processes (auto or ddp) train with DDP and the `ddp` options
    ddp: DDPConfig = field(default_factory=DDPConfig)
    # DDP: BatchNorm statistics over the global batch (official VICReg, Barlow Twins, SimSiam, SwAV, MoCo v3, BYOL)
    sync_batchnorm: bool = False
    precision: str = "auto"  # auto: bf16-mixed on a GPU that has bf16 (16-mixed on one without), 32-true on CPU
    tf32: bool = True  # GPU: TF32 tensor cores for float32 matmuls and convolutions (float32 matmul precision high)
    cudnn_benchmark: bool = True  # GPU: let cuDNN time its algorithms for each shape (off when deterministic)
    compile: bool = False  # torch.compile the method (in place: checkpoints keep their keys)
    compile_args: dict[str, Any] = field(default_factory=dict)  # to Module.compile, e.g. {mode: max-autotune}
    checkpoint_every: int = 1  # epochs between checkpoints; the last epoch is always written
    num_workers: int | None = None  # imagefolder decoding workers (training and kNN); None: this machine's cores / devices
    channels_last: bool = True
    log_every_n_steps: int = 10
    progress: bool = True
    kill_at_step: int | None = None  # fault injection for resume tests: hard-exit after this step
    stop_at_step: int | None = None  # fault injection: send this process SIGTERM during this step (a clean stop after it)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    method_args: dict[str, Any] = field(default_factory=dict)


def parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["a=1", "optim.lr=0.1"]`` -> ``{"a": 1, "optim.lr": 0.1}``; malformed items raise ConfigError."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or any(c.isspace() for c in key):
            raise ConfigError(f"malformed override '{item}'; expected key=value, e.g. epochs=10 or optim.lr=0.1")
        out[key.strip()] = parse_value(value.strip())
    return out


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"recipe {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path} must be a mapping of config keys, got {type(data).__name__}")
    return data


def base_names() -> list[str]:
    return sorted(p.stem for p in BASE_DIR.glob("*.yaml"))


def load_recipe(name_or_path: str) -> dict[str, Any]:
    """A recipe's config keys: its ``base`` (if it names one) with the recipe's own keys on top.
    ``recipe@base`` swaps in another base: a method's settings on another dataset's schedule
    (``byol_mnist5k@shifted_mnist``: BYOL's mnist5k heads on the shifted_mnist base)."""
    name_or_path, _, swap = str(name_or_path).partition("@")
    path = Path(name_or_path)
    if not path.suffix:
        path = RECIPE_DIR / f"{name_or_path}.yaml"
    if not path.is_file() and path.suffix in (".yaml", ".yml") and path.name != f"{name_or_path}.yaml":
        raise ConfigError(f"recipe file {path} not found")
    if not path.is_file():
        raise ConfigError(f"unknown recipe '{name_or_path}'; valid choices: {', '.join(recipe_names())} or a .yaml file")
    data = _read_yaml(path)
    data.pop("reproduce", None)  # what the recipe should reach (sslab.reproduce reads it), not a config key
    base = data.pop("base", None)
    base = swap or base
    if base is None:
        return data
    if str(base) not in base_names():
        raise ConfigError(f"recipe {path}: unknown base '{base}'; valid choices: {', '.join(base_names())}")
    layered = _read_yaml(BASE_DIR / f"{base}.yaml")
    for key, value in data.items():  # sections (optim, eval, method_args, ...) merge key by key
        both = isinstance(value, dict) and isinstance(layered.get(key), dict)
        layered[key] = {**layered[key], **value} if both else value
    return layered


def _fields(cls) -> set[str]:
    return set(cls.__dataclass_fields__)


def _route(flat: dict[str, Any], method_keys: set[str]) -> dict[str, Any]:
    """Nest dotted keys and send method options to ``method_args``."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        head = key.split(".")[0]
        if head not in _fields(Config):
            if key in method_keys:
                tree.setdefault("method_args", {})[key] = value
                continue
            valid = sorted(_fields(Config) | method_keys)
            raise ConfigError(f"unknown config key '{key}'; valid choices: {', '.join(valid)}")
        node = tree
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return tree


def _flatten(d: dict[str, Any]) -> dict[str, Any]:
    """Recipe mapping -> override keys: ``optim``/``eval``/``diagnostics``/``ddp`` sections dotted, ``method_args`` unnested."""
    out = {}
    for k, v in d.items():
        if k in ("optim", "eval", "diagnostics", "ddp", "method_args", "backbone_args", "view_args", "compile_args") \
                and not isinstance(v, dict):
            raise ConfigError(f"bad value for '{k}': {v!r}; valid: a mapping of key: value")
        if isinstance(v, dict) and k in ("optim", "eval", "diagnostics", "ddp"):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        elif isinstance(v, dict) and k == "method_args":
            out.update(v)
        else:
            out[k] = v
    return out


def resolve(recipe: str | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults <- recipe <- overrides, validated; returns a plain :class:`Config`."""
    from .methods.spec import inert_options, method_spec  # local: methods import nets, torch

    cli = parse_overrides(overrides or [])
    explicit = recipe is not None
    base = load_recipe(recipe) if explicit else {}
    method = cli.get("method", base.get("method", Config.method))
    dataset = cli.get("dataset", base.get("dataset", Config.dataset))
    try:
        spec = method_spec(str(method))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if not explicit and dataset in spec.recipes:
        base = load_recipe(spec.recipes[dataset])
    method_keys = set(spec.arguments())
    cfg = OmegaConf.structured(Config)
    try:
        for layer in (_flatten(base), cli):
            cfg = OmegaConf.merge(cfg, _route(layer, method_keys))
        cfg.method, cfg.dataset = method, dataset
        resolved = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        raise ConfigError(_one_line(e)) from None
    from .validate import check_config  # local: it imports the method registry

    check_config(resolved)
    try:  # an option typed on the command line that would do nothing for this method (a recipe's own are not checked)
        inert_options(str(method), resolved.method_args, typed=set(cli) & method_keys)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return resolved


def _one_line(e: OmegaConfBaseException) -> str:
    msg = str(e).splitlines()[0]
    key = getattr(e, "full_key", None)
    return f"bad value for '{key}': {msg}" if key else msg


def to_dict(cfg: Config) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)


def save(cfg: Config, path: Path) -> None:
    from .io import atomic_write_text  # a kill while writing never leaves a truncated config.yaml

    atomic_write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), path)
