"""Every method (and the collapse ablations) trained on a dataset with its recipe: accuracy, collapse signal, time.

Runs ``sslab train method=NAME`` one after another (each with its spec's recipe for the
dataset), reads every ``summary.json`` and prints the table of docs/methods.md; writes JSON.

    python benchmarks/methods.py [--dataset mnist5k] [--only simclr byol] [--out benchmarks/results/methods_mnist5k.json]
    python benchmarks/methods.py --markdown     # the docs table from the JSON, without training
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

import torch

from sslab.methods import METHODS

#: ablations of the papers (Tian et al.; SimSiam; Jha et al.), run next to the healthy presets
ABLATIONS = {
    "byol_no_predictor": ("byol", ["predictor=none"]),
    "simsiam_no_predictor": ("simsiam", ["predictor=none"]),
    "simsiam_no_stop_gradient": ("simsiam", ["stop_gradient=false"]),
    "simsiam_no_stop_gradient_no_output_bn": ("simsiam", ["stop_gradient=false", "proj_last_bn=false"]),
    "barlow_twins_no_off_diagonal": ("barlow_twins", ["lambd=0"]),
    "swav_fixed_prototypes": ("swav", ["fixed_prototypes=true"]),
}


def run(name: str, method: str, extra: list[str], dataset: str, runs: Path) -> dict:
    out = runs / name
    cmd = [sys.executable, "-m", "sslab", "train", f"method={method}", f"dataset={dataset}", "progress=false", *extra,
           "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"name": name, "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    s = json.loads((out / "summary.json").read_text())
    return {"name": name, "method": method, "overrides": extra, "family": METHODS[method].family, "knn_top1": s["knn_top1"],
            "linear_top1": s["linear_top1"], "z_std": s["z_std"], "embedding_dim": s["embedding_dim"],
            "wall_seconds": s["wall_seconds"], "final_loss": s["final_loss"]}


def markdown(rows: list[dict]) -> str:
    lines = ["| run | family | kNN top-1 | linear top-1 | z_std (1/√D) | final loss | wall |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    order = {n: i for i, n in enumerate(list(METHODS) + list(ABLATIONS))}
    for r in sorted(rows, key=lambda r: order.get(r["name"], len(order))):
        if "error" in r:
            lines.append(f"| `{r['name']}` | error: {r['error']} | | | | | |")
            continue
        run = f"`{r['name']}`" + (f" ({' '.join(r['overrides'])})" if r["overrides"] else "")
        lines.append(f"| {run} | {r['family']} | {r['knn_top1']:.3f} | {r['linear_top1']:.3f} | {r['z_std']:.3f} "
                     f"({r['embedding_dim'] ** -0.5:.3f}) | {r['final_loss']:.3f} | {r['wall_seconds']:.0f} s |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--only", nargs="*", help="method or ablation names (default: all)")
    p.add_argument("--runs", default="runs/methods")
    p.add_argument("--out", default=None)
    p.add_argument("--markdown", action="store_true", help="print the JSON's rows as a Markdown table and exit")
    a = p.parse_args()
    if a.markdown:
        print(markdown(json.loads(Path(a.out or f"benchmarks/results/methods_{a.dataset}.json").read_text())["rows"]))
        return
    cases = {n: (n, []) for n in METHODS} | ABLATIONS
    names = a.only or list(cases)
    rows = []
    print(f"{'method':<26} {'family':<22} {'kNN':>6} {'linear':>7} {'z_std':>7} {'1/sqrt(D)':>9} {'seconds':>8}")
    for n in names:
        r = run(n, *cases[n], a.dataset, Path(a.runs))
        rows.append(r)
        if "error" in r:
            print(f"{n:<26} ERROR {r['error']}")
            continue
        print(f"{n:<26} {r['family']:<22} {r['knn_top1']:>6.3f} {r['linear_top1'] or 0:>7.3f} {r['z_std']:>7.3f} "
              f"{r['embedding_dim'] ** -0.5:>9.3f} {r['wall_seconds']:>8.0f}", flush=True)
    out = Path(a.out or f"benchmarks/results/methods_{a.dataset}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "cpu_threads": torch.get_num_threads(), "machine": platform.machine()}
    previous = json.loads(out.read_text())["rows"] if out.is_file() and a.only else []
    merged = {r["name"]: r for r in previous} | {r["name"]: r for r in rows}
    out.write_text(json.dumps({"dataset": a.dataset, "meta": meta, "rows": list(merged.values())}, indent=2) + "\n")


if __name__ == "__main__":
    main()
