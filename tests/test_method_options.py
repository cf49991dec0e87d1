"""A method's options are exactly those that act on it.

For every method and every option it accepts, the option is set to another valid value and a short
training run (3 SGD steps of ``sslab.step`` on fixed views) is compared with the default's: the
parameter groups, the final state or a loss must differ. An option declared to act only under a
condition (``acts_when``: ``pred_hidden_dim`` only with ``predictor=mlp``) is checked both ways: it
acts when the condition holds, changes nothing when it does not -- and is then refused when typed.
"""

import functools

import pytest
import torch

import sslab
from sslab.config import ConfigError, resolve
from sslab.data import dataset_info, load_split, view_pipeline
from sslab.methods import METHODS, build_method
from sslab.methods.spec import conditions_of, method_of
from sslab.nets import create_backbone

#: the valid values of every string option (a new string option fails the test until it is listed here)
CHOICES = {
    "predictor": ("mlp", "linear", "none"), "direct": ("pred", "copy", "optimal"), "norm": ("spectral", "fro", "none"),
    "init": ("first_batch", "zeros"), "target_init": ("copy", "random"), "queue_init": ("random", "zeros"),
    "loss_scale": ("simsiam", "byol"), "weight_decay_on": ("all", "predictor"), "standardize": ("none", "center", "dimension"),
    "negatives": ("none", "abs", "sq"), "centering": ("dimension", "embedding"),
}
#: small heads, so 21 methods x their options run in seconds
SMALL = {"proj_hidden_dim": 32, "proj_dim": 16, "pred_hidden_dim": 32, "out_dim": 64, "bottleneck_dim": 16,
         "num_prototypes": 12, "queue_size": 24, "w_size": 16}
#: values a generic change would make degenerate: W-MSE's sub-batch must exceed the embedding dimension, and a
#: 1-wide hidden layer leaves its whitening nothing to whiten
OTHER = {"w_size": 8, "proj_hidden_dim": 16}
#: None defaults: the other value to try
FOR_NONE = {"pred_bias": False,  # None: on for an MLP's last layer
            "mu": 2.0}


@pytest.fixture(scope="module")
def fixed_views():
    info = dataset_info("mnist5k")
    images = load_split("mnist5k", "train").images[:16]
    views = view_pipeline("byol", info.resolution, mean=info.mean, std=info.std)(images, torch.Generator().manual_seed(0))
    return tuple(views)  # hashable: the default options' run is computed once per method


def _alternative(key: str, value):
    if key in OTHER:
        return OTHER[key]
    if key in CHOICES:
        return next(v for v in CHOICES[key] if v != value)
    if value is None:
        return FOR_NONE[key]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return 1 if value > 1 else value + 1
    return value * 0.5 if value else 0.1


def _small(name: str) -> dict:
    args = METHODS[name].arguments()
    own = {k: v for k, v in SMALL.items() if k in args}
    if name == "w_mse":  # whitening needs sub-batches larger than the embedding
        own["proj_dim"] = 4
    if name == "dino":  # the warm-up starts from warmup_teacher_temp (0.04): a teacher_temp of its own makes it visible
        own["teacher_temp"] = 0.07
    return own


def _fingerprint(name: str, options: dict, views: tuple) -> tuple:
    """Parameter-group settings, 3 steps' losses and the final state of ``name`` with ``options`` (one step an
    epoch: epoch-based switches act within the run); computed once per method and options."""
    return _run(name, tuple(sorted(options.items())), views)


@functools.cache
def _run(name: str, options: tuple, views: tuple) -> tuple:
    torch.manual_seed(0)
    m = method_of(name, create_backbone("convnet", in_channels=1, width=0.25, grid=2), dict(options), typed=set()).train()
    m.configure_schedule(steps_per_epoch=1, total_steps=3)
    groups = [tuple(sorted((k, str(v)) for k, v in g.items() if k != "params")) + (len(g["params"]),)
              for g in m.parameter_groups()]
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.05)
    losses = []
    for i in range(3):
        losses.append(sslab.step(m, opt, list(views), i).loss.detach())
    return groups, losses, m.state_dict()


def _same(a: tuple, b: tuple) -> bool:
    if a[0] != b[0] or any(not torch.equal(x, y) for x, y in zip(a[1], b[1])) or a[2].keys() != b[2].keys():
        return False
    return all(a[2][k].shape == b[2][k].shape and torch.equal(a[2][k], b[2][k]) for k in a[2])


def _cases():
    for name, spec in sorted(METHODS.items()):
        for key in sorted(spec.arguments()):
            yield name, key


@pytest.mark.parametrize("name, key", list(_cases()), ids=[f"{n}-{k}" for n, k in _cases()])
def test_every_option_acts(name, key, fixed_views):
    base = _small(name)
    cond = conditions_of(METHODS[name].cls).get(key)
    defaults = {**METHODS[name].arguments(), **base}
    if cond is not None:  # first make the condition hold: the controlling option at a value where the option acts
        ctrl = cond.option
        on = next((v for v in CHOICES[ctrl] if cond.test({**defaults, ctrl: v})), None) if ctrl in CHOICES else 4
        base = {**base, ctrl: on if cond.test({**defaults, ctrl: on}) else defaults[ctrl]}
        assert cond.test({**defaults, **base}), (name, key)
    value = {**METHODS[name].arguments(), **base}[key]
    changed = {**base, key: _alternative(key, value)}
    try:
        other = _fingerprint(name, changed, fixed_views)
    except ValueError as e:  # the class refuses the value in this setting itself (BYOL's stop_gradient=false with EMA)
        assert len(str(e).splitlines()) == 1 and key in str(e), e
        return
    assert not _same(_fingerprint(name, base, fixed_views), other), \
        f"{name}: {key}={changed[key]!r} (instead of {value!r}) changes nothing"


CONDITIONAL = [(n, k) for n, k in _cases() if k in conditions_of(METHODS[n].cls)]


@pytest.mark.parametrize("name, key", CONDITIONAL, ids=[f"{n}-{k}" for n, k in CONDITIONAL])
def test_a_conditional_option_does_nothing_while_its_switch_is_off_and_is_refused(name, key, fixed_views):
    cond = conditions_of(METHODS[name].cls)[key]
    ctrl = cond.option
    defaults = {**METHODS[name].arguments(), **_small(name)}
    off = next(v for v in CHOICES[ctrl] if not cond.test({**defaults, ctrl: v})) if ctrl in CHOICES else \
        next(v for v in (1, 0) if not cond.test({**defaults, ctrl: v}))
    base = {**_small(name), ctrl: off}
    value = {**METHODS[name].arguments(), **base}[key]
    changed = {**base, key: _alternative(key, value)}
    same = _same(_fingerprint(name, base, fixed_views), _fingerprint(name, changed, fixed_views))
    assert same, f"{name}: {key} acts although {ctrl}={off!r}"
    conds = conditions_of(METHODS[name].cls)
    options = {**METHODS[name].arguments(), **changed}
    typed = {k: v for k, v in changed.items() if k == key or k not in conds or conds[k].test(options)}
    with pytest.raises(ValueError, match=f"option '{key}' does nothing for method {name} with {ctrl}="):
        build_method(name, create_backbone("convnet", in_channels=1, width=0.25), **typed)
    with pytest.raises(ConfigError, match=f"option '{key}' does nothing"):
        resolve(None, [f"method={name}", f"{ctrl}={off}", f"{key}={changed[key]}"])


def test_options_of_another_method_are_refused_with_this_methods_list():
    with pytest.raises(ConfigError, match="'temperature'.*lambd"):
        resolve(None, ["method=barlow_twins", "temperature=0.2"])
    with pytest.raises(ValueError, match="unknown option 'lambd' for method 'vicreg'; valid choices: cov_coeff"):
        build_method("vicreg", create_backbone("convnet", in_channels=1, width=0.25), lambd=0.1)
    # a recipe's shared settings are its own: tian2021_table3's pred_hidden_dim serves its MLP rows
    assert resolve("tian2021_table3").method_args["pred_hidden_dim"] == 512
