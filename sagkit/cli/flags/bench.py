"""``sagkit bench``: its flags."""

from __future__ import annotations

GPU_CHECK = "gpu"  # `sagkit bench gpu`: the library's GPU check, not a file in benchmarks/


ORDER = 6  # place among the subcommands of ``sagkit --help``

def add(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="run the benchmarks in benchmarks/, or the GPU check (bench gpu)",
        description="Run benchmarks/bench_<name>.py (each file's main(argv)); all of them unless --only or NAME. "
        "'sagkit bench gpu' runs the GPU check instead (sagkit.diagnostics.gpu_check): training of the baseline "
        "and D1..D4 under fp16+GradScaler and bf16, with and without torch.compile, re-ranking on CUDA against "
        "float64, evaluation features under AMP against fp32, a torchrun DDP step over NCCL and a short "
        "sagkit train under torchrun (killed, resumed, reused), within a 5-minute budget (--quick: 2.5); it "
        "prints one JSON report and exits 1 when a section failed or a precision or compile mode went untried, "
        "2 without a CUDA device (docs/gpu.md).",
    )
    p.add_argument("name", nargs="?", default=None,
                   help=f"'{GPU_CHECK}' for the GPU check, or one benchmark (the same as --only NAME)")
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="run only this benchmark (repeatable), e.g. --only training")
    p.add_argument("--quick", action="store_true",
                   help="pass --quick to each benchmark (smaller, faster); bench gpu: fewer steps and compiled cases")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.set_defaults(handler="sagkit.cli.bench:run")
