"""Benchmark: ``sagkit.embed`` throughput against the model's own forward pass, and ``sagkit.search`` time and
peak memory.

Embed: the cpu profile's model (EfficientNet-Lite0, D4, 160x64, channels-last as evaluated, random weights: speed
does not depend on them) embeds ``--images`` real crops (CUHK01 when found, else the synthetic set) through ``sagkit.embed``,
with 0 and 1 decoding workers, at the profile's evaluation batch size and flip setting; the forward pass
alone runs on the same number of images, already decoded and batched. The gap is the input pipeline
(decode, resize, normalise) plus the loader. One torch thread. Wall-clock rates, and rates per CPU-second of
this process (with 0 workers all the work is in it; the machine being shared, these are steadier).

Search: ``exact_topk`` of 100 random unit queries against 1,000 and 100,000 random unit gallery vectors
(512-d), top-10, each size in a fresh process: the time of one search, and the peak memory it allocates
beyond its inputs (numpy's allocations traced by tracemalloc in a second search, plus torch's distance tile).

    python benchmarks/bench_embed.py            (about a minute on 2 cores)
    python benchmarks/bench_embed.py --quick
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sagkit.config import get_profile  # noqa: E402
from sagkit.data import ImageRecord, build_test_loader, load_dataset  # noqa: E402
from sagkit.images.embedding import embed  # noqa: E402
from sagkit.engine.builders import build_model  # noqa: E402
from sagkit.engine.device import place_model  # noqa: E402
from sagkit.engine.retrieval import EvalSettings, eval_transform  # noqa: E402
from sagkit.images.gallery import CHUNK, QUERY_BLOCK, exact_topk  # noqa: E402

QUERIES, DIM, TOPK = 100, 512, 10


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def crops(count: int) -> tuple[str, list[str]]:
    """(name, paths) of ``count`` real crops: CUHK01 from the shared folder when there, else the synthetic set."""
    cuhk01 = Path(__file__).resolve().parents[2] / "shared" / "data" / "cuhk01"
    env = os.environ.get("SAGKIT_CUHK01_ROOT")
    root = Path(env) if env else cuhk01
    dataset = load_dataset("cuhk01", root) if (root / "campus").is_dir() else load_dataset("synthetic")
    records = dataset.query + dataset.gallery
    return dataset.name, [r.path for r in records[:count]]


def bench_embed(count: int, repeats: int) -> list[dict]:
    """Images/s of embed (0 and 1 workers) and of the forward pass alone, best of ``repeats``."""
    config = get_profile("cpu", depths=(4,))
    model = place_model(build_model(config, 10, pretrained=False), config, torch.device("cpu")).eval()
    size = (config.height, config.width)
    settings = EvalSettings.from_config(config)
    source = (model, eval_transform(model, size), settings, {"model": "cpu-profile-D4", "threads": 1})
    name, paths = crops(count)
    batches = [b[0] for b in build_test_loader([ImageRecord(p, 0, 0) for p in paths], eval_transform(model, size),
                                               settings.batch_size, num_workers=0)]

    def forward() -> None:
        with torch.inference_mode():
            for images in batches:
                if settings.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                out = model(images)
                if settings.flip:
                    out = (out + model(torch.flip(images, dims=[3]))) / 2

    forward()  # warm-up: the first pass builds the kernels' plans
    cases = [(f"sagkit.embed, {w} worker(s)", lambda w=w: embed(source, paths, progress=False, num_workers=w))
             for w in (0, 1)] + [("forward pass alone (images decoded beforehand)", forward)]
    rows = []
    for what, run in cases:
        wall, cpu = [], []
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        rows.append({"what": what, "images_per_s": round(len(paths) / min(wall), 1),
                     "images_per_cpu_s": round(len(paths) / min(cpu), 1)})
    base = rows[-1]
    for row in rows:
        row.update(images=len(paths), crops=name, batch_size=settings.batch_size, flip=settings.flip,
                   gap_percent=round(100 * (1 - row["images_per_s"] / base["images_per_s"]), 1),
                   cpu_gap_percent=round(100 * (1 - row["images_per_cpu_s"] / base["images_per_cpu_s"]), 1))
    return rows


def _unit(rng, n: int, block: int = 4096) -> np.ndarray:
    """n random unit vectors (n x DIM float32), drawn in blocks so that no float64 copy of all of them exists."""
    out = np.empty((n, DIM), dtype=np.float32)
    for a in range(0, n, block):
        x = rng.standard_normal((min(block, n - a), DIM), dtype=np.float32)
        out[a:a + block] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def search_child(gallery_size: int) -> dict:
    """In this (fresh) process: one exact_topk, its time and the peak memory it added above the inputs."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    queries, gallery = _unit(rng, QUERIES), _unit(rng, gallery_size)
    exact_topk(queries[:2], gallery[:100], TOPK)  # load the code paths once
    start = time.perf_counter()
    exact_topk(queries, gallery, TOPK)
    seconds = time.perf_counter() - start
    tracemalloc.start()
    exact_topk(queries, gallery, TOPK)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    tile = min(QUERIES, QUERY_BLOCK) * min(CHUNK, gallery_size) * 4  # torch's distance tile, not traced
    return {"gallery": gallery_size, "queries": QUERIES, "topk": TOPK, "seconds": round(seconds, 3),
            "gallery_mb": round(gallery.nbytes / 2**20, 1), "peak_extra_mb": round((peak + tile) / 2**20, 1),
            "full_matrix_mb": round(QUERIES * gallery_size * 4 / 2**20, 1)}


def bench_search(sizes) -> list[dict]:
    rows = []
    for size in sizes:
        done = subprocess.run([sys.executable, __file__, "--search-child", str(size)], check=True,
                              capture_output=True, text=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=128, help="crops embedded (default 128)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="64 crops, one repeat")
    ap.add_argument("--search-child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args(argv)
    if args.search_child is not None:
        print(json.dumps(search_child(args.search_child)))
        return {}
    torch.set_num_threads(1)
    count, repeats = (64, 1) if args.quick else (args.images, args.repeats)
    print(f"CPU: {cpu_name()} ({os.cpu_count()} cores), torch threads 1")
    results = {"cpu": cpu_name(), "embed": bench_embed(count, repeats), "search": bench_search((1000, 100000))}
    for row in results["embed"]:
        print(f"{row['what']:<48} {row['images_per_s']:>7.1f} img/s (gap {row['gap_percent']:>5.1f}%), "
              f"{row['images_per_cpu_s']:>7.1f} img per CPU-s of this process (gap {row['cpu_gap_percent']:>5.1f}%)  "
              f"({row['images']} {row['crops']} crops, batch {row['batch_size']}, flip {row['flip']})")
    for row in results["search"]:
        print(f"search {row['queries']} queries x {row['gallery']:>6} gallery (top-{row['topk']}): "
              f"{row['seconds']:.3f} s, peak +{row['peak_extra_mb']} MB (gallery {row['gallery_mb']} MB, full "
              f"matrix would be {row['full_matrix_mb']} MB)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
