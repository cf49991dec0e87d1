"""One place that lists what can be named: methods, datasets, backbones, recipes."""

from __future__ import annotations


def listing(what: str = "all") -> list[str]:
    from .config import load_recipe, recipe_names
    from .data import DATASETS
    from .methods import METHODS
    from .nets import BACKBONES

    lines: list[str] = []
    if what in ("all", "methods"):
        lines.append("methods:")
        lines += [f"  {n:<21} {s.family:<24} {s.description}" for n, s in sorted(METHODS.items())]
    if what in ("all", "datasets"):
        lines.append("datasets:")
        lines += [f"  {n:<12} {i.image_size:>3}px  {i.description}" for n, i in sorted(DATASETS.items())]
    if what in ("all", "backbones"):
        lines.append("backbones:")
        lines += [f"  {n}" for n in BACKBONES] + ["  timm:<name>  (any timm model; needs the timm extra)"]
    if what in ("all", "recipes"):
        lines.append("recipes:")
        for n in recipe_names():
            r = load_recipe(n)
            lines.append(f"  {n:<20} method={r.get('method', '-')} dataset={r.get('dataset', '-')}")
    return lines
