"""Benchmark: images/s of decode + training augmentation (resize 160x64, flip, normalise, erase).

Runs the training DataLoader of sagkit.data with 0 and 2 worker processes on the synthetic set
(generated once into the cache) and on CUHK01 when a copy is found (``--cuhk01 ROOT``,
``$SAGKIT_CUHK01_ROOT`` or ``../shared/data/cuhk01``).  Steady state: the first batch (worker
start-up) is not timed.

    python benchmarks/bench_input_pipeline.py
    python benchmarks/bench_input_pipeline.py --workers 0 1 2 --batches 30
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from sagkit.data import build_train_loader, build_transforms, load_dataset  # noqa: E402


def find_cuhk01(explicit: str | None) -> Path | None:
    """CUHK01 root from the argument, the environment, or the shared folder next to the repo."""
    cands = [explicit, os.environ.get("SAGKIT_CUHK01_ROOT"),
             str(Path(__file__).resolve().parents[2] / "shared" / "data" / "cuhk01")]
    for c in cands:
        if c and (Path(c) / "campus").is_dir():
            return Path(c)
    return None


def measure(records, num_workers: int, batch_size: int, batches: int, height: int, width: int) -> dict:
    """Images/s over ``batches`` batches after one warm-up batch."""
    tf = build_transforms(height, width, train=True)
    loader = build_train_loader(records, tf, batch_size=batch_size, num_workers=num_workers, seed=0)
    it = iter(loader)
    next(it)
    n, t0 = 0, time.perf_counter()
    for _ in range(batches):
        try:
            imgs = next(it)[0]
        except StopIteration:
            it = iter(loader)
            imgs = next(it)[0]
        n += imgs.shape[0]
    dt = time.perf_counter() - t0
    del it, loader
    return {"workers": num_workers, "images": n, "seconds": round(dt, 3), "images_per_s": round(n / dt, 1)}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--height", type=int, default=160)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--cuhk01", default=None, help="CUHK01 root (folder containing campus/)")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    sets = [("synthetic", load_dataset("synthetic"))]
    cuhk01 = find_cuhk01(args.cuhk01)
    if cuhk01 is not None:
        sets.append(("cuhk01", load_dataset("cuhk01", cuhk01)))
    results = []
    print(f"{'dataset':<10} {'workers':>7} {'images':>7} {'seconds':>8} {'img/s':>8}   ({os.cpu_count()} CPUs)")
    for name, ds in sets:
        for w in args.workers:
            r = {"dataset": name, **measure(ds.train, w, args.batch_size, args.batches, args.height, args.width)}
            results.append(r)
            print(f"{name:<10} {w:>7} {r['images']:>7} {r['seconds']:>8.2f} {r['images_per_s']:>8.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
