"""Range and choice checks of a resolved :class:`~sslab.config.Config`, before anything is built or written.

OmegaConf already refuses a value of the wrong type for a typed field (``epochs=abc``); this adds what
types cannot say -- ``epochs=-1`` would train forever, ``epochs=0`` "succeed" with an untrained encoder,
``crop_scale=[2, 1]`` or ``image_size=0`` train on nonsense -- and the options typed only as strings or
``Any`` (precision, accelerator, optimiser, a method's own options). Lightning's strategy names are
checked where the engine builds its Trainer (only the engine imports Lightning), also before anything
is written. Each failure is one line naming the
key, the bad value and the valid range or choices (:class:`~sslab.config.ConfigError`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .config import Config, ConfigError

PRECISIONS = ("auto", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "32", "16", "bf16", "64")
ACCELERATORS = ("auto", "cpu", "gpu")
STEMS = ("auto", "cifar", "imagenet")
VIEWS = ("auto", "simclr", "byol", "vicreg", "dino", "swav")
LINEAR_REPORTS = ("last", "best")
MIN_IMAGE_SIZE = 8  # the smallest crop every backbone accepts (the convnet halves 28 px twice; ResNets' CIFAR stem)


def _at_least(low: float, integer: bool = True) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v >= low), f">= {low}" + (" (an integer)" if integer else "")


def _above(low: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v > low), f"> {low}"


def _within(low: float, high: float, closed_high: bool = True) -> tuple[Callable[[Any], bool], str]:
    if closed_high:
        return (lambda v: low <= v <= high), f"{low} to {high}"
    return (lambda v: low <= v < high), f"{low} to {high} (excluded)"


#: key -> (test, what the range is); None values skip the test (they mean "default")
RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epochs": _at_least(1), "batch_size": _at_least(1), "seed": _within(0, 2**32 - 1), "devices": _at_least(1),
    "num_nodes": _at_least(1), "width": _above(0), "image_size": _at_least(MIN_IMAGE_SIZE), "local_crops": _at_least(0),
    "log_every_n_steps": _at_least(1), "checkpoint_every": _at_least(1), "num_workers": _at_least(0),
    "kill_at_step": _at_least(1), "holdout": _at_least(0), "stop_at_step": _at_least(1),
    "optim.lr": _above(0), "optim.weight_decay": _at_least(0, False), "optim.momentum": _within(0, 1, False),
    "optim.eta": _above(0), "optim.warmup_epochs": _at_least(0, False), "optim.final_lr_ratio": _at_least(0, False),
    "optim.bias_lr_ratio": _at_least(0, False), "optim.probe_lr": _above(0), "optim.clip_grad": _at_least(0, False),
    "optim.weight_decay_end": _at_least(0, False),
    "eval.knn_k": _at_least(1), "eval.knn_temperature": _above(0), "eval.knn_every": _at_least(0),
    "eval.knn_subset": _at_least(0), "eval.linear_epochs": _at_least(1), "eval.linear_lr": _above(0),
    "eval.linear_weight_decay": _at_least(0, False),
    "diagnostics.every": _at_least(0), "diagnostics.probe_size": _at_least(2),
    "diagnostics.center_threshold": _within(0, 1), "diagnostics.dimensional_fraction": _within(0, 1),
}


def _choices() -> dict[str, tuple[str, ...]]:
    from .data.decode import DECODE_CHOICES
    from .optim import OPTIMIZERS

    return {"precision": PRECISIONS, "accelerator": ACCELERATORS, "stem": STEMS, "views": VIEWS,
            "decode": DECODE_CHOICES, "optim.name": OPTIMIZERS, "eval.linear_report": LINEAR_REPORTS}


def _get(cfg: Config, key: str) -> Any:
    value: Any = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _bad(key: str, value: Any, valid: str) -> ConfigError:
    return ConfigError(f"bad value for '{key}': {value!r}; valid: {valid}")


def check_config(cfg: Config) -> Config:
    """``cfg`` if every option is in range and every name one of its choices; else :class:`ConfigError`."""
    for key, (ok, valid) in RANGES.items():
        value = _get(cfg, key)
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value) or not ok(value):
            raise _bad(key, value, valid)
    for key, choices in _choices().items():
        if _get(cfg, key) not in choices:
            raise _bad(key, _get(cfg, key), ", ".join(choices))
    if cfg.crop_scale is not None:
        scale = list(cfg.crop_scale)
        if len(scale) != 2 or not all(isinstance(s, (int, float)) for s in scale) or not 0 < scale[0] <= scale[1] <= 1:
            raise _bad("crop_scale", scale, "[low, high] with 0 < low <= high <= 1")
    if len(cfg.optim.betas) != 2 or not all(0 <= b < 1 for b in cfg.optim.betas):
        raise _bad("optim.betas", list(cfg.optim.betas), "[beta1, beta2], each 0 to 1 (excluded)")
    check_method_args(cfg.method, cfg.method_args)
    return cfg


def check_method_args(method: str, args: dict[str, Any]) -> None:
    """Each of a method's options has the type of its default: a number where the default is a number
    (``temperature=abc`` would otherwise fail deep inside the first step), a bool where it is a bool."""
    from .methods import method_spec

    defaults = method_spec(method).arguments()
    for key, value in args.items():
        if key not in defaults:
            raise ConfigError(f"unknown option '{key}' of method {method}; valid choices: {', '.join(sorted(defaults))}")
        default = defaults[key]
        if isinstance(default, bool):
            ok, what = isinstance(value, bool), "true or false"
        elif isinstance(default, int):
            ok, what = isinstance(value, int) and not isinstance(value, bool), "an integer"
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            what = "a number"
        else:  # names, lists, None: the method checks them itself
            continue
        if not ok and value is not None:
            raise _bad(key, value, f"{what} (method {method}'s option, default {default!r})")


__all__ = ["RANGES", "check_config", "check_method_args"]
