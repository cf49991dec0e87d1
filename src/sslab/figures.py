"""Figure helpers shared by the reports and the theory lab: matplotlib ``Figure`` objects (no pyplot, no display)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

DPI = 110


def panels(n: int, width: float = 4.6, height: float = 3.4) -> tuple[Figure, list]:
    """A figure of ``n`` side-by-side axes, each ``width`` x ``height`` inches, with a light grid."""
    fig = Figure(figsize=(width * n, height), layout="constrained")
    axes = list(fig.subplots(1, n, squeeze=False)[0])
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig, axes


def save(fig: Figure, out: Path, name: str) -> str:
    """Write ``fig`` to ``out/name`` as PNG (creating ``out``); returns ``name``."""
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / name, dpi=DPI, bbox_inches="tight")
    return name
