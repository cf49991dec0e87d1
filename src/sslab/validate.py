"""Range and choice checks of a resolved :class:`~sslab.config.Config`, before anything is built or written.

OmegaConf already refuses a value of the wrong type for a typed field (``epochs=abc``); this adds what
types cannot say -- ``epochs=-1`` would train forever, ``epochs=0`` "succeed" with an untrained encoder,
``crop_scale=[2, 1]`` or ``image_size=0`` train on nonsense -- and the options typed only as strings or
``Any`` (precision, accelerator, optimiser, a method's own options). The range or choices of each setting
are declared with it in :mod:`sslab.config` (:func:`sslab.settings.setting`); this module only applies them,
and checks a method's own options against the types of their defaults. Lightning's strategy names are
checked where the engine builds its Trainer (only the engine imports Lightning), also before anything
is written. Each failure is one line naming the
key, the bad value and the valid range or choices (:class:`~sslab.settings.ConfigError`).
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

from .settings import ConfigError, problems

C = TypeVar("C")


def _bad(key: str, value: Any, valid: str) -> ConfigError:
    return ConfigError(f"bad value for '{key}': {value!r}; valid: {valid}")


def check_config(cfg: C) -> C:
    """``cfg`` if every setting passes the check it is declared with (:func:`sslab.settings.setting`) and the method's
    options have the types of their defaults; else :class:`ConfigError` naming the first that does not."""
    first = next(problems(cfg), None)
    if first is not None:
        raise _bad(*first)
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


__all__ = ["check_config", "check_method_args"]
