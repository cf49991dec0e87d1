"""The diagnostics monitor's statistics at wide heads: the N x N Gram route against the D x D covariance route.

One call of what the monitor computes on the probe set (``embedding_stats`` and the trace's
``spectrum``) on random ``(N, D)`` embeddings, timed twice in one process: with sslab's functions
(which decompose the N x N Gram matrix when N < D) and with the covariance-route versions they
replaced (D x D covariance eigendecomposition, SVDs of the N x D batch, the M x M matrix KKᵀ of the
duality criteria), patched in for the second timing. Prints the ratio and the largest relative
difference between the two routes' values; writes JSON.

    python benchmarks/diagnostics_scale.py [--shapes 512x256 512x2048 512x8192] [--repeats 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

from sslab.bench.parts import monitor_call

# the modules (the package re-exports functions of the same names)
duality, probe, spectrum = (importlib.import_module(f"sslab.diagnostics.{m}") for m in ("duality", "probe", "spectrum"))


def cov_spectrum(z, correlation=False, gather_distributed=True):
    z = z.detach().double()
    c = torch.cov(z.T)
    if correlation:
        d = torch.sqrt(torch.diagonal(c).clamp(min=1e-30))
        c = c / torch.outer(d, d)
    return torch.linalg.eigvalsh(c).flip(0).clamp(min=0)


def svd_effective_rank(z, gather_distributed=True):
    z = z.detach().double()
    return spectrum._entropy_rank(torch.linalg.svdvals(z - z.mean(0)))


def svd_rankme(z, eps=1e-7, gather_distributed=True):
    return spectrum._entropy_rank(torch.linalg.svdvals(z.detach().double()), eps)


def kkt_duality_stats(z, gather_distributed=True):
    u = F.normalize(z.detach().double(), dim=1)
    n, m = u.shape
    gram, cov = u @ u.T, u.T @ u
    gd, cd = torch.diagonal(gram), torch.diagonal(cov)
    l_c, l_nc = float(gram.pow(2).sum() - gd.pow(2).sum()), float(cov.pow(2).sum() - cd.pow(2).sum())
    rows4, cols4 = float(cd.pow(2).sum()), float(gd.pow(2).sum())
    off = gram[~torch.eye(n, dtype=torch.bool)]
    both = l_c + cols4
    return {"l_c": l_c, "l_nc": l_nc, "rows4": rows4, "cols4": cols4, "rows4_lower": n * n / m,
            "rows4_upper": float(n * n), "rows4_ratio": rows4 / (n * n / m),
            "identity_gap": abs(l_nc + rows4 - both) / max(both, 1e-300), "gram_offdiag_mean": float(off.mean()),
            "gram_offdiag_var": float(off.var()), "gram_offdiag_var_ratio": float(off.var()) * m}


@contextmanager
def covariance_route():
    """The covariance-route functions in place of sslab's, where the monitor looks them up."""
    saved = (spectrum.spectrum, spectrum.effective_rank, spectrum.rankme, probe.effective_rank, probe.rankme,
             probe.duality_stats, probe.spectrum, duality.duality_stats)
    spectrum.spectrum = probe.spectrum = cov_spectrum
    spectrum.effective_rank = probe.effective_rank = svd_effective_rank
    spectrum.rankme = probe.rankme = svd_rankme
    probe.duality_stats = duality.duality_stats = kkt_duality_stats
    try:
        yield
    finally:
        (spectrum.spectrum, spectrum.effective_rank, spectrum.rankme, probe.effective_rank, probe.rankme,
         probe.duality_stats, probe.spectrum, duality.duality_stats) = saved


def timed(z1, z2, repeats: int) -> tuple[float, dict, torch.Tensor]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = monitor_call(z1, z2)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times), *out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", nargs="+", default=["512x256", "512x2048", "512x8192"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="benchmarks/results/diagnostics_scale.json")
    args = p.parse_args()
    rows = []
    for shape in args.shapes:
        n, d = (int(x) for x in shape.split("x"))
        g = torch.Generator().manual_seed(0)
        basis = torch.randn(32, d, generator=g)
        z1 = torch.randn(n, 32, generator=g) @ basis + 0.1 * torch.randn(n, d, generator=g)  # a few strong directions
        z2 = z1 + 0.1 * torch.randn(n, d, generator=g)
        gram_ms, stats, spec = timed(z1, z2, args.repeats)
        with covariance_route():
            cov_ms, ref_stats, ref_spec = timed(z1, z2, args.repeats)
        diffs = {k: abs(stats[k] - ref_stats[k]) / max(abs(ref_stats[k]), 1e-12) for k in stats
                 if isinstance(stats[k], float) and k != "identity_gap"}
        spec_diff = float((spec - ref_spec).abs().max() / ref_spec[0])
        rows.append({"n": n, "d": d, "gram_route_ms": round(gram_ms, 1), "covariance_route_ms": round(cov_ms, 1),
                     "speedup": round(cov_ms / gram_ms, 1), "max_relative_difference": max(diffs.values()),
                     "worst_key": max(diffs, key=diffs.get), "spectrum_difference_of_largest": spec_diff})
    print(f"{'N':>5} {'D':>6} {'Gram route ms':>14} {'covariance ms':>14} {'speed-up':>9} {'max rel. diff':>14}")
    for r in rows:
        print(f"{r['n']:>5} {r['d']:>6} {r['gram_route_ms']:>14,.1f} {r['covariance_route_ms']:>14,.1f} "
              f"{r['speedup']:>8.1f}x {max(r['max_relative_difference'], r['spectrum_difference_of_largest']):>14.1e}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine()}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
