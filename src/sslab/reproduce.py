"""Paper reproductions: recipes that carry the numbers they should reach (``sslab reproduce``).

A reproduction is an ordinary recipe (a dataset ``base`` plus what the method changes) with a
``reproduce:`` block that the config loader leaves aside::

    reproduce:
      paper: Tian, Chen, Ganguli 2021, Understanding SSL dynamics without contrastive pairs (ICML)
      table: Table 6
      metric: linear_top1            # the summary.json key it is scored on
      source: arXiv 2102.06810, Table 6 (seeds_spec.md §A.4)
      official: luckmatters ssl/real-dataset/config/byol_config.yaml   # where the settings come from
      expected: 77.86                # published top-1 in percent, or NOT FOUND
      std: 0.16                      # published spread (over the paper's seeds), when given
      rows:                          # several table cells from one recipe: NAME/ROW
        rho0.3_eps0: {set: {rho: 0.3, eps: 0.0}, expected: 76.77, std: 0.24}
      not_found: [the values the sources do not give, each with the choice made]

``sslab reproduce list`` prints every reproduction; ``sslab reproduce NAME --dry-run`` the resolved
config, the expected number and the dataset files it needs; ``sslab reproduce NAME`` trains it and
writes ``reproduce`` (expected, measured, difference in points) into the run's ``summary.json``.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import RECIPE_DIR, Config, ConfigError, _read_yaml, recipe_names, resolve, to_dict
from .data import DataError, dataset_info
from .data.datasets import default_root, missing_files
from .io import atomic_write_text

METRICS = ("online_probe_top1", "linear_top1", "knn_top1", "knn_top1_best")  # summary.json keys
NOT_FOUND = "NOT FOUND"

# Pre-training images per epoch, and the throughput the GPU-hour estimates assume: images/s of a
# two-view step on one A100-class GPU in mixed precision, rounded down from the peers' reports
# (peers.md §C; VICReg's "about 1 day on 8 V100" for 100 ImageNet epochs). Assumed, not measured
# here (no GPU): an estimate to plan with, not a benchmark.
PRETRAIN_IMAGES = {"cifar10": 50_000, "cifar100": 50_000, "stl10": 105_000, "imagenet100": 126_689,
                   "imagenet": 1_281_167}
ASSUMED_IMAGES_PER_SECOND = {("resnet18", 32): 2500, ("resnet18", 96): 1500, ("resnet18", 224): 1000,
                             ("resnet50", 224): 400}


@dataclass(frozen=True)
class Reproduction:
    """One published number and the recipe (plus row overrides) that should reach it."""

    name: str  # recipe, or recipe/row
    recipe: str
    paper: str
    table: str
    metric: str
    source: str
    official: str
    expected: float | None  # percent; None where the paper gives no number (NOT FOUND)
    std: float | None
    overrides: tuple[str, ...]  # key=value the row sets on top of the recipe
    note: str
    not_found: tuple[str, ...]

    def config(self, overrides: list[str] | None = None) -> Config:
        return resolve(self.recipe, [*self.overrides, *(overrides or [])])


def _number(value: Any, where: str) -> float | None:
    if value is None or value == NOT_FOUND:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number in percent or '{NOT_FOUND}', got {value!r}")
    return float(value)


def _override(key: str, value: Any) -> str:
    return f"{key}={json.dumps(value) if not isinstance(value, str) else value}"


def _read(recipe: str) -> list[Reproduction]:
    block = _read_yaml(RECIPE_DIR / f"{recipe}.yaml").get("reproduce")
    if block is None:
        return []
    where = f"recipe {recipe}: reproduce"
    missing = [k for k in ("paper", "table", "metric", "source") if not block.get(k)]
    if missing:
        raise ConfigError(f"{where} lacks '{missing[0]}' (every reproduction names paper, table, metric and source)")
    if block["metric"] not in METRICS:
        raise ConfigError(f"{where}: unknown metric '{block['metric']}'; valid choices: {', '.join(METRICS)}")
    common = dict(recipe=recipe, paper=str(block["paper"]), table=str(block["table"]), metric=block["metric"],
                  source=str(block["source"]), official=str(block.get("official", "")),
                  not_found=tuple(str(x) for x in block.get("not_found", ())))
    rows = block.get("rows")
    if not rows:
        return [Reproduction(name=recipe, expected=_number(block.get("expected"), where), std=_number(block.get("std"), where),
                             overrides=(), note=str(block.get("note", "")), **common)]
    out = []
    for row, spec in rows.items():
        spec = spec or {}
        unknown = set(spec) - {"set", "expected", "std", "note", "table"}
        if unknown:
            raise ConfigError(f"{where}.rows.{row}: unknown key '{sorted(unknown)[0]}'; "
                              "valid choices: expected, note, set, std, table")
        row_common = {**common, "table": str(spec.get("table", common["table"]))}
        out.append(Reproduction(
            name=f"{recipe}/{row}", expected=_number(spec.get("expected"), f"{where}.rows.{row}"),
            std=_number(spec.get("std"), f"{where}.rows.{row}"),
            overrides=tuple(_override(k, v) for k, v in (spec.get("set") or {}).items()),
            note=str(spec.get("note", "")), **row_common))
    return out


def reproductions() -> dict[str, Reproduction]:
    """Every reproduction of every recipe, by name (``recipe`` or ``recipe/row``)."""
    out: dict[str, Reproduction] = {}
    for recipe in recipe_names():
        for r in _read(recipe):
            out[r.name] = r
    return out


def reproduction(name: str) -> Reproduction:
    known = reproductions()
    if name in known:
        return known[name]
    rows = [n for n in known if n.startswith(f"{name}/")]
    if rows:
        raise ConfigError(f"recipe '{name}' holds several table cells; choose one of: {', '.join(rows)}")
    raise ConfigError(f"unknown reproduction '{name}'; valid choices: {', '.join(known)} (see `sslab reproduce list`)")


def gpu_hours(cfg: Config) -> float | None:
    """Estimated GPU-hours of one run of ``cfg`` under :data:`ASSUMED_IMAGES_PER_SECOND` (None if not modelled)."""
    from .build import resolve_backbone

    info = dataset_info(cfg.dataset)
    size = cfg.image_size or info.image_size
    rate = ASSUMED_IMAGES_PER_SECOND.get((resolve_backbone(cfg, info.channels, size)[0], size))
    images = PRETRAIN_IMAGES.get(cfg.dataset)
    if rate is None or images is None:
        return None
    return images * cfg.epochs / rate / 3600


def short_paper(paper: str) -> str:
    """``"Tian, Chen, Ganguli 2021, Understanding ..."`` -> ``"Tian et al. 2021"``."""
    year = re.search(r"\b(?:19|20)\d\d\b", paper)
    first = re.sub(r"\s*(et al\.)?\s*(?:19|20)\d\d$", "", paper.split(",")[0].strip())
    return f"{first} et al. {year.group(0)}" if year else first


def _percent(x: float | None, std: float | None = None) -> str:
    if x is None:
        return NOT_FOUND
    return f"{x:.2f}" + (f" ± {std:.2f}" if std is not None else "")


def listing() -> list[str]:
    """``sslab reproduce list``: name, paper, table, metric, published number, dataset, estimated GPU-hours."""
    rows = [("name", "paper", "table", "metric", "published", "dataset", "GPU-h")]
    for r in reproductions().values():
        cfg = r.config()
        hours = gpu_hours(cfg)
        rows.append((r.name, short_paper(r.paper), r.table, r.metric, _percent(r.expected, r.std), cfg.dataset,
                     "?" if hours is None else f"{hours:.0f}" if hours >= 10 else f"{hours:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]


def dataset_status(cfg: Config) -> tuple[Path, list[str]]:
    """(data_root the run reads, the dataset files missing there)."""
    root = Path(cfg.data_root) if cfg.data_root else default_root()
    return root, missing_files(cfg.dataset, root)


def describe(r: Reproduction, cfg: Config) -> list[str]:
    """What ``--dry-run`` prints: expected numbers, the files the dataset needs, and the resolved config."""
    info = dataset_info(cfg.dataset)
    root, missing = dataset_status(cfg)
    lines = [f"# reproduction {r.name}: {r.paper}, {r.table}",
             f"# expected {r.metric} = {_percent(r.expected, r.std)} % ({r.source})"]
    if r.note:
        lines.append(f"# note: {r.note}")
    lines += [f"# NOT FOUND: {x}" for x in r.not_found]
    if info.files:
        state = "all present" if not missing else f"{len(missing)} of {len(info.files)} missing, e.g. {missing[0]}"
        lines.append(f"# dataset {cfg.dataset} needs under data_root={root}: {_files_summary(info.files)} ({state})")
        if info.source:
            lines.append(f"# get them from {info.source}" + (f"; {info.archive} itself in data_root is extracted on first use"
                                                             if info.archive else ""))
    lines.append(yaml.safe_dump(to_dict(cfg), sort_keys=False).rstrip())
    return lines


def _files_summary(files: tuple[str, ...]) -> str:
    return ", ".join(files) if len(files) <= 6 else f"{', '.join(files[:3])} ... ({len(files)} paths)"


def run(name: str, overrides: list[str] | None = None, out: str | None = None, dry_run: bool = False,
        resume: bool = False, overwrite: bool = False) -> dict | None:
    """Train reproduction ``name`` (or, with ``dry_run``, print what it would do); returns the summary.
    ``resume`` continues its run folder, ``overwrite`` replaces the run in it (else a used folder is refused)."""
    r = reproduction(name)
    cfg = r.config(overrides)
    if dry_run:
        print("\n".join(describe(r, cfg)))
        return None
    root, missing = dataset_status(cfg)
    if missing:
        info = dataset_info(cfg.dataset)
        raise DataError(f"reproduction {name} needs dataset '{cfg.dataset}': {len(missing)} file(s) missing under "
                        f"data_root={root}, e.g. {missing[0]}; get them from {info.source or 'its publisher'} "
                        "(set data_root= or $SSLAB_DATA)")
    from .engine import train

    folder = Path(out) if out else Path("runs") / "reproduce" / name.replace("/", "-")
    summary = train(cfg, folder, resume=resume, overwrite=overwrite)
    measured = summary.get(r.metric)
    summary["reproduce"] = score(r, measured)
    from .engine.train import launch_rank

    if launch_rank() == 0:  # under DDP every rank returns the summary; one writes it
        atomic_write_text(json.dumps(summary, indent=2) + "\n", folder / "summary.json")
    rep = summary["reproduce"]
    print(f"sslab: {name}: {r.metric} {rep['measured']} % vs published {_percent(r.expected, r.std)} % "
          f"(difference {rep['difference']} points; {r.source})", file=sys.stderr)
    return summary


def score(r: Reproduction, measured: float | None) -> dict:
    """The ``reproduce`` block of summary.json: published vs measured, in percent, and their difference."""
    pct = None if measured is None else round(100 * float(measured), 2)
    diff = None if pct is None or r.expected is None else round(pct - r.expected, 2)
    within = None if diff is None or r.std is None or r.std == 0 else bool(abs(diff) <= 2 * r.std)
    return {"name": r.name, "paper": r.paper, "table": r.table, "metric": r.metric, "source": r.source,
            "expected": r.expected, "expected_std": r.std, "measured": pct, "difference": diff,
            "within_2_std": within, "overrides": list(r.overrides)}


# --------------------------------------------------------------------------- docs/reproduce.md tables

REPRODUCE_TABLE = ("<!-- reproductions: generated by sslab.reproduce.reproductions_table(), checked by tests -->",
                   "<!-- end of reproductions -->")
SETTINGS_TABLE = ("<!-- settings: generated by sslab.reproduce.settings_table(), checked by tests -->",
                  "<!-- end of settings -->")


def reproductions_table() -> str:
    rows = ["| reproduction | paper | table | metric | published (%) | source | sslab measured |", "| --- " * 7 + "|"]
    for r in reproductions().values():
        rows.append(f"| `{r.name}` | {short_paper(r.paper)} | {r.table} | {r.metric} | {_percent(r.expected, r.std)} "
                    f"| {r.source} | |")
    return "\n".join([REPRODUCE_TABLE[0], *rows, REPRODUCE_TABLE[1]])


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:g}"
    return "-" if x is None else str(x)


def settings(cfg: Config) -> dict[str, str]:
    """The official hyperparameters a recipe resolves to, in the words of docs/reproduce.md's table."""
    from .methods import method_arguments

    args = {**method_arguments(cfg.method), **cfg.method_args}
    o = cfg.optim
    lr = f"{_fmt(o.lr)}{' ×B/256' if o.scale_lr else ''}"
    if o.bias_lr_ratio != 1.0:
        lr += f" (bias/BN ×{_fmt(o.bias_lr_ratio)})"
    wd = f"{_fmt(o.weight_decay)} " + ("(not bias/BN)" if o.exclude_bias_norm else "(all)")
    if args.get("weight_decay_on") == "predictor":
        wd += " predictor only"
    momentum = "-"
    if "momentum" in args and args.get("momentum") is not None:
        m0, m1 = args["momentum"], args.get("momentum_final", args["momentum"])
        momentum = _fmt(m0) if m0 == m1 else f"{_fmt(m0)}→{_fmt(m1)}"
    heads = "/".join(_fmt(args[k]) for k in ("proj_hidden_dim", "proj_dim", "pred_hidden_dim") if k in args)
    schedule = f"{_fmt(o.warmup_epochs)} warm-up, " + ("constant" if o.final_lr_ratio == 1.0 else "cosine")
    return {"method": cfg.method, "dataset": cfg.dataset, "backbone": cfg.backbone, "epochs": str(cfg.epochs),
            "batch": str(cfg.batch_size), "optimizer": o.name, "lr": lr, "schedule": schedule, "weight decay": wd,
            "EMA": momentum, "temperature": _fmt(args.get("temperature")), "heads": heads or "-"}


def settings_table() -> str:
    """One row per standard recipe (a reproduction with an ``official`` file): what it resolves to."""
    cols = ["method", "dataset", "backbone", "epochs", "batch", "optimizer", "lr", "schedule", "weight decay", "EMA",
            "temperature", "heads"]
    rows = ["| recipe | " + " | ".join(cols) + " | official file |", "| --- " * (len(cols) + 2) + "|"]
    seen = set()
    for r in reproductions().values():
        if not r.official or r.recipe in seen:
            continue
        seen.add(r.recipe)
        s = settings(r.config())
        rows.append(f"| `{r.recipe}` | " + " | ".join(s[c] for c in cols) + f" | {r.official} |")
    return "\n".join([SETTINGS_TABLE[0], *rows, SETTINGS_TABLE[1]])


__all__ = ["METRICS", "NOT_FOUND", "Reproduction", "describe", "gpu_hours", "listing", "reproduction", "reproductions",
           "reproductions_table", "run", "score", "settings", "settings_table"]
