"""``sagkit embed`` and ``sagkit search`` (your own images): their flags."""

from __future__ import annotations

import argparse

SOURCE_HELP = "run folder (runs/<name>: its best checkpoint, or --which) or an ONNX file from sagkit export"


ORDER = 4  # place among the subcommands of ``sagkit --help``

def _model_flags(p) -> None:
    p.add_argument("--which", choices=("best", "last"), default="best", help="checkpoint of a run folder")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="average the embeddings of each image and its mirror (default: as the run's evaluation)")
    p.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default: the run's)")
    p.add_argument("--device", default="cpu", help="cpu, auto, cuda or cuda:N (an ONNX file runs on the CPU)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the run's num_threads)")
    p.add_argument("--num-workers", type=int, default=None, help="image-decoding processes (default: the run's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add(sub) -> None:
    add_embed(sub)
    add_search(sub)


def add_embed(sub) -> None:
    p = sub.add_parser(
        "embed", help="embeddings of images, folders or globs, as the run's evaluation makes them",
        description="Write the L2-normalised embeddings of IMAGES (files, folders searched recursively, glob "
        "patterns) by SOURCE into an .npz file (paths, embeddings, model name, settings): the run's test "
        "preprocessing, flip averaging and normalisation (sagkit.embed).")
    p.add_argument("source", metavar="SOURCE", help=SOURCE_HELP)
    p.add_argument("images", metavar="IMAGES", nargs="+", help="image files, folders or glob patterns")
    p.add_argument("--out", metavar="FILE", required=True, help="the .npz file to write")
    _model_flags(p)
    p.set_defaults(handler="sagkit.cli.images:run_embed")


def add_search(sub) -> None:
    p = sub.add_parser(
        "search", help="rank a gallery (folder or embeddings file) for query images",
        description="Print each query's top-K gallery images with their distances (exact top-k over the gallery "
        "in chunks, memory bounded), optionally re-ranked, and draw them into a PNG (sagkit.search).")
    p.add_argument("source", metavar="SOURCE", help=SOURCE_HELP)
    p.add_argument("--query", nargs="+", required=True, metavar="IMG", help="query images, folders or globs")
    p.add_argument("--gallery", required=True, metavar="DIR|EMBEDDINGS",
                   help="gallery images (folder, glob) or an .npz written by sagkit embed with the same model")
    p.add_argument("--topk", type=int, default=10)
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking with the run's k1, k2, lambda "
                   "(builds the whole query x gallery matrix)")
    p.add_argument("--png", metavar="FILE", help="also draw the ranked lists into this PNG")
    _model_flags(p)
    p.set_defaults(handler="sagkit.cli.images:run_search")
