"""Benchmark: generation time and size of the default synthetic set, and its colour-histogram probe.

The probe (sagkit.data.probe) trains a logistic regression on per-image joint RGB histograms of
4 of the 6 images of each of the 100 training identities and reports identity accuracy on the
other 2: far below 1 means colour statistics alone do not solve the set; well above chance
(1/100) means identity information is there to be learnt.

    python benchmarks/bench_synthetic_probe.py              # fresh generation into a temp folder
    python benchmarks/bench_synthetic_probe.py --seed 3 --bins 4 8
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sagkit.data import load_dataset, make_synthetic_reid  # noqa: E402
from sagkit.data.probe import colour_histogram_probe  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bins", type=int, nargs="+", default=[4, 8], help="histogram bins per channel")
    ap.add_argument("--holdout", type=int, default=2, help="held-out images per training identity")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root = make_synthetic_reid(Path(tmp) / "synthetic", seed=args.seed)
        gen_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        ds = load_dataset("synthetic", root)
        out = {"seed": args.seed, "generation_s": round(gen_s, 2), "size_mb": round(size / 1e6, 2),
               "summary": ds.summary(extended=True), "probe": {}}
        print(f"generated in {gen_s:.1f} s, {size / 1e6:.1f} MB: {ds.summary(extended=True)}")
        for bins in args.bins:
            t0 = time.perf_counter()
            res = colour_histogram_probe(ds.train, holdout_per_id=args.holdout, bins=bins, seed=args.seed)
            res["seconds"] = round(time.perf_counter() - t0, 1)
            out["probe"][bins] = res
            print(f"colour-histogram probe ({bins}^3 bins): accuracy {res['accuracy']:.3f} "
                  f"(per C {res['accuracy_per_C']}), chance {res['chance']:.3f}, "
                  f"{res['num_train_images']} train / {res['num_test_images']} test images")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
