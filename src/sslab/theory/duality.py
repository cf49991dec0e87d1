"""Theorem 3.3 and Corollary 3.4.1 of Garrido et al. 2023, checked on any embedding matrix.

``check(z)`` (rows = N embeddings, columns = M dimensions) returns L_c, L_nc, the row/column
fourth-power sums, the residual of Theorem 3.3 (L_nc + Σ‖K_j,·‖⁴ = L_c + Σ‖K_·,i‖⁴) and, after
normalising the embeddings and then the dimensions, whether Corollary 3.4.1's bounds hold:

    normalised embeddings:  L_nc − N + N²/M ≤ L_c ≤ L_nc − N + N²
    normalised dimensions:  L_c − M + M²/N ≤ L_nc ≤ L_c − M + M²

The embeddings come from ``embeddings=FILE`` (.npy, or .pt holding a tensor, read with
weights_only), from a run (``run=RUN_DIR``: its probe-set embeddings at the last checkpoint), or
are drawn at random with a tunable amount of collapse onto a common vector. Theory reads no run
folders: for ``run=`` the command line asks ``sslab.analysis.probe_embedding_matrix`` for the
matrix and hands it to :func:`run_duality` (``embeddings=(z, description)``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..figures import panels, save
from ..losses import dimension_contrastive, sample_contrastive

DEFAULTS = {"embeddings": None, "run": None, "n": 256, "m": 64, "collapse": 0.0, "seed": 0}


def _bounds(l_c: float, l_nc: float, n: int, m: int) -> dict:
    """Corollary 3.4.1 for N unit-norm rows in M dimensions: L_nc − N + N²/M ≤ L_c ≤ L_nc − N + N²."""
    lo, hi = l_nc - n + n * n / m, l_nc - n + n * n
    tol = 1e-9 * max(abs(hi), 1.0)
    return {"l_c": l_c, "l_nc": l_nc, "lower": lo, "upper": hi, "holds": lo - tol <= l_c <= hi + tol}


def check(z: torch.Tensor) -> dict:
    """Theorem 3.3 on z as given, and Corollary 3.4.1 under both normalisations (float64)."""
    z = z.double()
    n, m = z.shape
    out = {"n": n, "m": m}
    l_c, l_nc = float(sample_contrastive(z)), float(dimension_contrastive(z))
    rows4, cols4 = float(z.pow(2).sum(0).pow(2).sum()), float(z.pow(2).sum(1).pow(2).sum())
    both = l_c + cols4
    out["theorem_3_3"] = {"l_c": l_c, "l_nc": l_nc, "sum_dim_norms4": rows4, "sum_emb_norms4": cols4, "lhs": l_nc + rows4,
                          "rhs": both, "relative_residual": abs(l_nc + rows4 - both) / max(abs(both), 1e-300)}
    u = torch.nn.functional.normalize(z, dim=1)
    out["normalised_embeddings"] = _bounds(float(sample_contrastive(u)), float(dimension_contrastive(u)), n, m)
    v = torch.nn.functional.normalize(z, dim=0)
    swapped = _bounds(float(dimension_contrastive(v)), float(sample_contrastive(v)), m, n)  # the same lemma, roles swapped
    out["normalised_dimensions"] = {"l_c": swapped["l_nc"], "l_nc": swapped["l_c"], "lower": swapped["lower"],
                                    "upper": swapped["upper"], "holds": swapped["holds"]}
    return out


def load_embeddings(prm: dict) -> tuple[torch.Tensor, str]:
    """The matrix to check and where it came from."""
    if prm["embeddings"]:
        path = Path(prm["embeddings"])
        if not path.is_file():
            raise FileNotFoundError(f"embeddings file not found: {path}")
        if path.suffix not in (".npy", ".pt"):
            raise ValueError(f"embeddings file must be .npy or .pt, got '{path.suffix}'")
        try:
            z = (torch.from_numpy(np.load(path, allow_pickle=False)) if path.suffix == ".npy"
                 else torch.load(path, map_location="cpu", weights_only=True))
        except Exception:  # pickled objects (refused, never executed), a truncated or foreign file
            raise ValueError(f"{path} is not a plain array file (numpy.save / torch.save of one tensor); "
                             "pickled objects are refused: sslab does not execute code from files") from None
        if not isinstance(z, torch.Tensor) or z.ndim != 2:
            raise ValueError(f"{path} must hold one 2-D array (N embeddings x M dimensions)")
        return z, str(path)
    if prm["run"]:  # resolved above theory (the CLI reads the run and passes the matrix)
        raise ValueError("run= needs the run's embeddings: use `sslab theory duality run=RUN_DIR`, or pass embeddings= "
                         "to run_experiment (sslab.analysis.probe_embedding_matrix reads them)")
    g = torch.Generator().manual_seed(prm["seed"])
    z = torch.randn(prm["n"], prm["m"], generator=g, dtype=torch.float64)
    common = torch.randn(1, prm["m"], generator=g, dtype=torch.float64)
    c = float(prm["collapse"])
    return (1 - c) * z + c * common * np.sqrt(prm["m"]), f"random N({prm['n']}) x M({prm['m']}) Gaussian, collapse {c}"


def run_duality(prm: dict, out: Path, embeddings: tuple[torch.Tensor, str] | None = None) -> dict:
    """The checks and the figure for ``embeddings`` (a matrix ``(N, M)`` and where it came from) when given,
    else for the matrix ``prm`` names (:func:`load_embeddings`)."""
    z, source = embeddings if embeddings is not None else load_embeddings(prm)
    result = {"source": source, **check(z)}
    # the picture: L_c against L_nc (normalised embeddings) for random matrices of the same shape, collapse 0 → 1
    n, m = z.shape
    g = torch.Generator().manual_seed(prm["seed"] + 1)
    sweep = []
    for c in np.linspace(0, 0.95, 12):
        base = torch.randn(n, m, generator=g, dtype=torch.float64)
        common = torch.randn(1, m, generator=g, dtype=torch.float64) * np.sqrt(m)
        sweep.append(check((1 - c) * base + c * common)["normalised_embeddings"])
    fig, (ax,) = panels(1, width=6.0, height=4.4)
    lnc = np.array([s["l_nc"] for s in sweep])
    ax.plot(lnc, [s["l_c"] for s in sweep], "o-", ms=4, label="random matrices, collapse 0 → 0.95")
    ax.fill_between(lnc, lnc - n + n * n / m, lnc - n + n * n, color="gray", alpha=0.2, label="Corollary 3.4.1 bounds")
    ne = result["normalised_embeddings"]
    ax.plot([ne["l_nc"]], [ne["l_c"]], "r*", ms=14, label="the checked matrix")
    ax.set(xscale="log", yscale="log", xlabel="L_nc (dimension-contrastive)", ylabel="L_c (sample-contrastive)",
           title=f"normalised embeddings, N={n}, M={m}")
    ax.legend(fontsize=8)
    result["figures"] = [save(fig, out, "duality.png")]
    return result
