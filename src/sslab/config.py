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

Each setting is declared once below (:func:`sslab.settings.setting`): type, default, range or choices,
whether a resume may change it, a line of help. The checks (:mod:`sslab.validate`), the resume policy
(``sslab.engine.runfolder``), the recipes' flattening and ``sslab train --help`` read those declarations.
The resolved config is saved with every run as ``config.yaml`` (:func:`dump`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .settings import ConfigError, above, at_least, declared, flatten, nest, one_of, satisfies, section, sections, setting, within
from .validate import check_config

RECIPE_DIR = Path(__file__).parent / "recipes"
BASE_DIR = RECIPE_DIR / "bases"


#: the choices of the names declared here; those other modules define (optimisers, decoders) are read from them
#: when a config is checked, so that declaring the settings imports neither torch nor those modules
PRECISIONS = ("auto", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "32", "16", "bf16", "64")
ACCELERATORS = ("auto", "cpu", "gpu")
STEMS = ("auto", "cifar", "imagenet")
VIEWS = ("auto", "simclr", "byol", "vicreg", "dino", "swav")
LINEAR_REPORTS = ("last", "best")
MIN_IMAGE_SIZE = 8  # the smallest crop every backbone accepts (the convnet halves 28 px twice; ResNets' CIFAR stem)


def _optimizers() -> tuple[str, ...]:
    from .optim import OPTIMIZERS

    return OPTIMIZERS


def _decoders() -> tuple[str, ...]:
    from .data.decode import DECODE_CHOICES

    return DECODE_CHOICES


def _scale(v: Any) -> bool:
    return len(v) == 2 and all(isinstance(s, (int, float)) for s in v) and 0 < v[0] <= v[1] <= 1


def _betas(v: Any) -> bool:
    return len(v) == 2 and all(0 <= b < 1 for b in v)


@dataclass
class OptimConfig:
    name: str = setting("adamw", one_of(_optimizers), help="the optimiser")
    lr: float = setting(2e-3, above(0), help="base learning rate (times batch_size/256 when scale_lr)")
    scale_lr: bool = setting(False, help="multiply lr by the global batch / 256 (the linear scaling rule)")
    weight_decay: float = setting(1e-4, at_least(0, False), help="weight decay")
    momentum: float = setting(0.9, within(0, 1, False), help="sgd / lars momentum")
    eta: float = setting(0.001, above(0), help="lars trust coefficient")
    # solo-learn's LARS (clip_lr): ratio eta|w|/(|g| + wd|w|), its lr capped at the group's
    lars_clip: bool = setting(False, help="solo-learn's LARS: the trust ratio's lr capped at the group's")
    betas: list[float] = setting([0.9, 0.999], satisfies(_betas, "[beta1, beta2], each 0 to 1 (excluded)"),
                                 help="adam / adamw betas")
    warmup_epochs: float = setting(1.0, at_least(0, False), help="linear warm-up of the learning rate, in epochs")
    final_lr_ratio: float = setting(0.0, at_least(0, False), help="the cosine decays to lr * final_lr_ratio")
    # SimSiam, MoCo and luckmatters: false
    exclude_bias_norm: bool = setting(True, help="no weight decay / LARS adaptation on biases and norms")
    # Barlow Twins: 0.0048 / 0.2 = 0.024
    bias_lr_ratio: float = setting(1.0, at_least(0, False), help="learning rate of biases and norms relative to lr")
    probe_lr: float = setting(1e-2, above(0), help="the online linear probe's (its own parameter group, no weight decay)")
    clip_grad: float = setting(0.0, at_least(0, False), help="> 0: clip each parameter's gradient norm to this (DINO: 3.0)")
    weight_decay_end: float | None = setting(None, at_least(0, False),
                                             help="cosine schedule of the weight decay to this value (DINO: 0.04 -> 0.4)")


@dataclass
class DDPConfig:
    """Options of PyTorch's DistributedDataParallel, used when training on more than one process."""

    broadcast_buffers: bool = setting(True, resume="free",
                                      help="rank 0's buffers (BatchNorm statistics, queues) copied to all ranks each forward")
    gradient_as_bucket_view: bool = setting(True, resume="free",
                                            help="gradients are views into DDP's all-reduce buckets: one copy less")
    static_graph: bool = setting(False, resume="free",
                                 help="the same parameters used every step: lets DDP skip its per-step bookkeeping")
    find_unused_parameters: bool = setting(False, resume="free",
                                           help="needed only when some parameters get no gradient in a step")


@dataclass
class EvalConfig:
    knn_k: int = setting(20, at_least(1), resume="free", help="neighbours of the weighted kNN")
    knn_temperature: float = setting(0.07, above(0), resume="free", help="temperature of the kNN's weights")
    knn_every: int = setting(5, at_least(0), resume="free",
                             help="epochs between kNN evaluations during training; 0: only at the end")
    knn_subset: int = setting(0, at_least(0), resume="free",
                              help="> 0: those evaluations use the first knn_subset train and test images (the last: all)")
    linear: bool = setting(True, resume="free", help="offline linear probe on frozen features at the end")
    # luckmatters linear_feature_eval.py: standardised features, Adam, lr 3e-4, weight decay 1e-3, 50 epochs, batch 128
    # (spec §A.3)
    linear_epochs: int = setting(50, at_least(1), resume="free", help="epochs of the linear probe")
    linear_lr: float = setting(3e-4, above(0), resume="free", help="the linear probe's Adam learning rate")
    linear_weight_decay: float = setting(1e-3, at_least(0, False), resume="free", help="the linear probe's weight decay")
    linear_report: str = setting("last", one_of(LINEAR_REPORTS), resume="free",
                                 help="the linear probe's last epoch, or its best test accuracy (luckmatters)")
    baselines: bool = setting(True, resume="free", help="also report kNN of a randomly initialised encoder and of raw pixels")
    # fixed although evaluation is not: the probe's weights are in the checkpoint
    online_probe: bool = setting(True, help="a linear probe trained alongside, on detached features")


@dataclass
class DiagnosticsConfig:
    every: int = setting(50, at_least(0), resume="free",
                         help="optimiser steps between diagnostics (0: off); each costs one probe-set forward")
    probe_size: int = setting(512, at_least(2), resume="free",
                              help="fixed probe images (the first of the train split, two fixed views each)")
    stop_on_collapse: bool = setting(False, resume="free",
                                     help="end training with a message when the probe set has completely collapsed")
    center_threshold: float = setting(0.9, within(0, 1), resume="free", help="verdict threshold (sslab.diagnostics.verdict)")
    dimensional_fraction: float = setting(0.1, within(0, 1), resume="free", help="verdict threshold (sslab.diagnostics.verdict)")


@dataclass
class Config:
    method: str = setting("byol", help="the method (sslab list methods); its options go to method_args")
    dataset: str = setting("mnist5k", help="the dataset (sslab list datasets)")
    data_root: str | None = setting(None, resume="free", help="folder holding the dataset files (default $SSLAB_DATA or ./data)")
    classes_file: str | None = setting(None, help="imagefolder: class subset (e.g. ImageNet-100)")
    predecode: bool = setting(False, resume="free",
                              help="imagefolder: decode once to a uint8 memory-mapped file, read it in later runs")
    cache_dir: str | None = setting(None, resume="free", help="where predecode writes (default <data_root>/.sslab_cache)")
    decode: str = setting("auto", one_of(_decoders), resume="free",
                          help="imagefolder JPEGs: workers (Pillow) | device (nvJPEG); auto: device on a GPU with torchvision")
    verify_md5: bool = setting(True, help="cifar: check the official checksums")
    strict_counts: bool = setting(True, help="stl10: check the official image counts (false for subsets)")
    backbone: str = setting("auto",
                            help="the backbone (sslab list backbones); auto: convnet for <= 32 px grayscale, resnet18 otherwise")
    stem: str = setting("auto", one_of(STEMS), help="ResNet stem; auto: cifar below 64 px, imagenet above")
    width: float = setting(1.0, above(0), help="backbone width multiplier")
    backbone_args: dict[str, Any] = setting({}, help="extra backbone constructor options, e.g. {grid: 2}")
    views: str = setting("auto", one_of(VIEWS), help="view pipeline; auto: the method's own")
    image_size: int | None = setting(None, at_least(MIN_IMAGE_SIZE), help="crop size; default: the dataset's native size")
    crop_scale: list[float] | None = setting(None, satisfies(_scale, "[low, high] with 0 < low <= high <= 1"),
                                             help="override the global crops' scale range")
    # luckmatters' STL-10 views: {blur_p: 1.0, mean: [0, 0, 0], std: [1, 1, 1]}
    view_args: dict[str, Any] = setting({}, help="ViewSpec fields set on every view, e.g. {blur_p: 1.0}")
    local_crops: int | None = setting(None, at_least(0), help="number of local crops (multi-crop); default: the pipeline's")
    # a fixed draw, the same for every seed: kNN, linear probe and baselines score them, training and the kNN bank use the
    # rest, the test split is never read: for tuning (sslab reproduce claims tunes on it). In-memory datasets whose pretrain
    # split is the train split.
    holdout: int = setting(0, at_least(0), help="> 0: hold out this many training images as the evaluation split")
    epochs: int = setting(15, at_least(1), resume="grow", help="passes over the training split (a resume may add more)")
    batch_size: int = setting(128, at_least(1), help="per device")
    seed: int = setting(0, within(0, 2**32 - 1), help="seeds the initialisation, the data order and the views")
    deterministic: bool = setting(False, resume="free", help="deterministic algorithms only (bit-identical reruns)")
    accelerator: str = setting("auto", one_of(ACCELERATORS), resume="free", help="auto: gpu when CUDA is available")
    devices: int = setting(1, at_least(1), help="processes per node")
    num_nodes: int = setting(1, at_least(1), help="nodes")
    strategy: str = setting("auto", help="Lightning's name; several processes (auto or ddp) train with DDP and the ddp options")
    ddp: DDPConfig = section(DDPConfig, help="DistributedDataParallel's options")
    # official VICReg, Barlow Twins, SimSiam, SwAV, MoCo v3, BYOL
    sync_batchnorm: bool = setting(False, help="DDP: BatchNorm statistics over the global batch")
    precision: str = setting("auto", one_of(PRECISIONS), resume="free",
                             help="auto: bf16-mixed on a GPU that has bf16 (16-mixed on one without), 32-true on CPU")
    tf32: bool = setting(True, resume="free", help="GPU: TF32 tensor cores for float32 matmuls and convolutions")
    cudnn_benchmark: bool = setting(True, resume="free",
                                    help="GPU: cuDNN times its algorithms for each shape (off when deterministic)")
    compile: bool = setting(False, resume="free", help="torch.compile the method (in place: checkpoints keep their keys)")
    compile_args: dict[str, Any] = setting({}, resume="free", help="to Module.compile, e.g. {mode: max-autotune}")
    checkpoint_every: int = setting(1, at_least(1), resume="free", help="epochs between checkpoints; the last is always written")
    num_workers: int | None = setting(None, at_least(0), resume="free",
                                      help="imagefolder decoding workers (training and kNN); default: cores / devices")
    channels_last: bool = setting(True, resume="free", help="channels-last memory format for convolutions")
    log_every_n_steps: int = setting(10, at_least(1), resume="free", help="steps between logged metrics")
    progress: bool = setting(True, resume="free", help="progress bar")
    optim: OptimConfig = section(OptimConfig, help="the optimiser and its schedule")
    eval: EvalConfig = section(EvalConfig, help="evaluation: kNN, linear probe, baselines, online probe")
    diagnostics: DiagnosticsConfig = section(DiagnosticsConfig, help="stability diagnostics on a fixed probe set")
    method_args: dict[str, Any] = setting({}, help="the method's own options (key=value of a method option lands here)")


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
    for key in RETIRED:  # older runs' config.yaml holds them
        data.pop(key, None)
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


#: settings older versions of sslab wrote to config.yaml and no longer have (fault injection, now test-side): a
#: saved run's file may hold them and is read without them; on the command line they are unknown keys
RETIRED = ("kill_at_step", "stop_at_step")

#: the dotted key of every setting (``epochs``, ``optim.lr``, ...), in declaration order
KEYS = tuple(s.key for s in declared(Config))
#: the settings whose value is a mapping: a section, or a dict of options (``method_args``, ``backbone_args``, ...)
MAPPINGS = (*sections(Config), *(s.key for s in declared(Config) if isinstance(s.default, dict)))


def _route(flat: dict[str, Any], method_keys: set[str], method: str = "") -> dict[str, Any]:
    """Nest dotted keys and send method options to ``method_args``."""
    top = [f.name for f in fields(Config)]
    inner = sections(Config)
    routed: list[tuple[str, Any]] = []
    for key, value in flat.items():
        head = key.split(".")[0]
        if head not in top:
            if key in method_keys:
                routed.append((f"method_args.{key}", value))
                continue
            owners = _methods_with_option(key)
            if owners:  # an option of other methods (another loss's, another family's): it would do nothing here
                raise ConfigError(f"'{key}' is not an option of method {method} (it is one of {', '.join(owners)}); "
                                  f"{method}'s options: {', '.join(sorted(method_keys))}")
            if key == "loss":  # earlier versions had a loss= switch on SimCLR and on the dimension-contrastive class
                raise ConfigError("'loss' is not an option: each loss is a method of its own (method=spectral_contrastive, "
                                  f"method=vicreg, ...: sslab list methods); {method}'s options: "
                                  f"{', '.join(sorted(method_keys))}")
            raise ConfigError(f"unknown config key '{key}'; valid choices: {', '.join(sorted({*top, *method_keys}))}")
        if head in inner and key != head and key not in KEYS:
            valid = ", ".join(k for k in KEYS if k.startswith(f"{head}."))
            raise ConfigError(f"unknown config key '{key}'; valid choices: {valid}")
        routed.append((key, value))
    return nest(routed)


def _methods_with_option(key: str) -> list[str]:
    from .methods import METHODS  # local: methods import nets, torch

    return sorted(name for name, spec in METHODS.items() if key in spec.arguments())


def _recipe_keys(d: dict[str, Any]) -> dict[str, Any]:
    """Recipe mapping -> override keys: sections dotted, ``method_args`` unnested."""
    for k, v in d.items():
        if k in MAPPINGS and not isinstance(v, dict):
            raise ConfigError(f"bad value for '{k}': {v!r}; valid: a mapping of key: value")
    out = {}
    for k, v in flatten(d, Config).items():
        if k == "method_args":
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
        for layer in (_recipe_keys(base), cli):
            cfg = OmegaConf.merge(cfg, _route(layer, method_keys, str(method)))
        cfg.method, cfg.dataset = method, dataset
        resolved = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        raise ConfigError(_one_line(e)) from None
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


def dump(cfg: Config) -> str:
    """``cfg`` as YAML, as ``config.yaml`` holds it (``sslab train --print-config`` prints it)."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def save(cfg: Config, path: Path) -> None:
    from .io import atomic_write_text  # a kill while writing never leaves a truncated config.yaml

    atomic_write_text(dump(cfg), path)
