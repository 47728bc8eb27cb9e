"""``sagkit export``: a run's model as an ONNX file (``sagkit.runs.export``). Without onnx or onnxruntime this
module does not import; ``sagkit.cli.parser`` then says which extra to install."""

from __future__ import annotations

import argparse

from sagkit.runs.export import DEFAULT_OPSET, export_run


def run(args: argparse.Namespace) -> int:
    done = export_run(args.run, args.out, DEFAULT_OPSET if args.opset is None else args.opset, args.which)
    height, width = done.input_size
    print(done.path)
    print(f"opset {done.opset}; input N×3×{height}×{width} (N dynamic), embedding N×{done.embedding_dim}; "
          f"max |onnxruntime - torch| {done.max_abs_diff:.2g}")
    return 0
