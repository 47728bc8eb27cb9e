"""Benchmark: the two ONNX exporters of torch on SAGNet, the reason sagkit.runs.export uses the TorchScript one.

For each model: seconds to write the file with ``torch.onnx.export(dynamo=False)`` (through
``sagkit.runs.export.export_onnx``, its onnxruntime check included) and with ``dynamo=True`` (torch.export,
onnxscript; nothing else), the opset each wrote when asked for ``--opset``, and the largest
|onnxruntime - PyTorch| of each on a batch of 3 (Lite0 with its ImageNet weights, ResNet18 random; random
heads and SAG modules).

    python benchmarks/bench_export.py            # Lite0 and ResNet18, baseline and D4, at 160×64
    python benchmarks/bench_export.py --quick    # Lite0 D4 at 64×32
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import onnx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sagkit.runs.export import (CHECK_BATCH, INPUT_NAME, OUTPUT_NAME, TRACE_BATCH, export_onnx,  # noqa: E402
                                  max_onnx_difference)
from sagkit.models import SAGNet  # noqa: E402

CONFIGS = (("baseline", ()), ("D4", (4,)))


def export_dynamo(model: SAGNet, path: Path, size: tuple[int, int], opset: int) -> None:
    """The torch.export-based exporter with a dynamic batch axis, as export_onnx would call it."""
    batch = torch.export.Dim("batch")
    images = torch.randn(TRACE_BATCH, 3, *size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (images,), str(path), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},), verbose=False)


def written_opset(path: Path) -> int:
    return {o.domain: o.version for o in onnx.load(str(path)).opset_import}[""]


def run(backbones: list[str], size: tuple[int, int], opset: int, configs) -> list[dict]:
    rows = []
    images = torch.randn(CHECK_BATCH, 3, *size, generator=torch.Generator().manual_seed(1))
    with tempfile.TemporaryDirectory() as tmp:
        for backbone in backbones:
            for label, depths in configs:
                torch.manual_seed(0)
                model = SAGNet(7, depths=depths, backbone=backbone,
                               pretrained="imagenet" if backbone == "efficientnet_lite0" else None).eval()
                row = {"model": f"{backbone} {label}"}
                for name, export in (("torchscript", lambda p: export_onnx(model, p, size, opset)),
                                     ("dynamo", lambda p: export_dynamo(model, p, size, opset))):
                    path = Path(tmp) / f"{name}.onnx"
                    start = time.perf_counter()
                    export(path)
                    row[f"{name}_s"] = time.perf_counter() - start
                    row[f"{name}_opset"] = written_opset(path)
                    row[f"{name}_diff"] = max_onnx_difference(model, path, images)[0]
                rows.append(row)
    return rows


def format_table(rows: list[dict], size: tuple[int, int], opset: int) -> str:
    lines = [f"ONNX export at {size[0]}×{size[1]}, opset {opset} asked, {torch.get_num_threads()} thread(s), "
             f"torch {torch.__version__}",
             "| model | TorchScript (s) | dynamo (s) | dynamo / TorchScript | opset written (TS, dynamo) "
             "| max diff (TS, dynamo) |", "|---|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['torchscript_s']:.1f} | {r['dynamo_s']:.1f} | "
                     f"{r['dynamo_s'] / r['torchscript_s']:.1f} | {r['torchscript_opset']}, {r['dynamo_opset']} | "
                     f"{r['torchscript_diff']:.1e}, {r['dynamo_diff']:.1e} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Lite0 D4 only, at 64×32")
    parser.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "resnet18"])
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for name in ("torch.onnx", "onnxscript"):  # the dynamo exporter logs its failed opset conversion with a traceback
        logging.getLogger(name).setLevel(logging.CRITICAL)
    size = (64, 32) if args.quick else (160, 64)
    backbones = ["efficientnet_lite0"] if args.quick else args.backbones
    configs = CONFIGS[1:] if args.quick else CONFIGS
    print(format_table(run(backbones, size, args.opset, configs), size, args.opset), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
