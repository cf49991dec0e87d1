"""Throughput of the batched on-device views against the same transforms applied one image at a time.

The per-image loop is what a torchvision-style Dataset transform does in DataLoader workers;
the batched path is what sslab does on the training device. Both use the same transform code,
so the ratio measures batching alone. Prints a table and writes JSON.

    python benchmarks/views.py [--device cuda] [--batch 256] [--out benchmarks/results/views.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from sslab.data.pipelines import view_pipeline

CASES = [("byol", "mnist", 28, 1), ("simclr", "cifar", 32, 3), ("byol", "stl", 96, 3), ("byol", "imagenet", 224, 3)]


def timed(fn, repeats: int, device: str) -> float:
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / repeats


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="benchmarks/results/views.json")
    args = p.parse_args()
    rows = []
    for name, res, size, ch in CASES:
        batch = args.batch if size < 200 else max(16, args.batch // 4)
        x = torch.randint(0, 256, (batch, ch, size, size), dtype=torch.uint8, device=args.device)
        pipe = view_pipeline(name, res, mean=(0.5,) * ch, std=(0.25,) * ch)
        g = torch.Generator(device=args.device).manual_seed(0)
        loop_n = min(batch, 64)  # the per-image loop is timed on up to 64 images and scaled
        batched = timed(lambda p=pipe, x=x, g=g: p(x, g), args.repeats, args.device)
        looped = timed(lambda p=pipe, x=x, g=g, n=loop_n: [p(x[i : i + 1], g) for i in range(n)], 1, args.device)
        looped *= batch / loop_n
        rows.append({"pipeline": name, "resolution": res, "size": size, "batch": batch, "views": pipe.num_views,
                     "batched_images_per_s": batch / batched, "per_image_images_per_s": batch / looped,
                     "speedup": looped / batched})
    print(f"{'pipeline':<8} {'res':<9} {'size':>4} {'batch':>5} {'batched img/s':>14} {'per-image img/s':>16} {'speedup':>8}")
    for r in rows:
        print(f"{r['pipeline']:<8} {r['resolution']:<9} {r['size']:>4} {r['batch']:>5} {r['batched_images_per_s']:>14,.0f} "
              f"{r['per_image_images_per_s']:>16,.0f} {r['speedup']:>7.1f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(),
            "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
