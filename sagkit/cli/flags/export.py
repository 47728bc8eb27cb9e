"""``sagkit export``: its flags."""

from __future__ import annotations


ORDER = 3  # place among the subcommands of ``sagkit --help``

def add(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a run's model as an ONNX file",
        description="Write the eval-mode model of a run folder as ONNX (sagkit.runs.export): normalised "
        "N×3×H×W images in (H×W the run's input size), the retrieval embedding N×D out, batch size dynamic. "
        "onnxruntime checks the file against PyTorch before it is put in place.",
    )
    p.add_argument("run", help="run folder (runs/<name>)")
    p.add_argument("--out", metavar="FILE", help="ONNX file to write (default: <run name>.onnx in the current folder)")
    p.add_argument("--opset", type=int, default=None, metavar="N",
                   help="ONNX opset version (default: DEFAULT_OPSET of sagkit.runs.export, printed with the result); "
                   "a value outside the supported range is refused, naming the range")
    p.add_argument("--which", choices=("best", "last"), default="best", help="checkpoint of the run folder")
    p.set_defaults(handler="sagkit.cli.export:run")
