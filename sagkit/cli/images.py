"""``sagkit embed`` and ``sagkit search``: thin layers over ``sagkit.search`` (flags in
``sagkit.cli.flags.images``); a bad input raises ValueError or FileNotFoundError, printed as one line."""

from __future__ import annotations

import argparse
import sys

from sagkit.images.embedding import embed
from sagkit.images.gallery import search


def run_embed(args: argparse.Namespace) -> int:
    done = embed(args.source, args.images, which=args.which, flip=args.flip, batch_size=args.batch_size,
                 device=args.device, progress=not args.no_progress, threads=args.threads,
                 num_workers=args.num_workers)
    path = done.save(args.out)
    print(path)
    print(f"{len(done)} images, {done.vectors.shape[1]}-d embeddings of {done.model} "
          f"(flip {'on' if done.settings['flip'] else 'off'}), {done.images_per_s:.1f} images/s")
    return 0


def run_search(args: argparse.Namespace) -> int:
    result = search(args.source, args.query, args.gallery, args.topk, rerank=args.rerank, which=args.which,
                    flip=args.flip, batch_size=args.batch_size, device=args.device, progress=not args.no_progress,
                    threads=args.threads, num_workers=args.num_workers)
    sys.stdout.write("\n".join(result.lines()) + "\n")
    if args.png:
        print(result.save_png(args.png))
    return 0
