"""``sagkit bench``: the benchmark scripts of the source checkout (``benchmarks/bench_<name>.py``), or the GPU
check (``sagkit bench gpu``, ``sagkit.diagnostics.gpu_check``)."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Optional

import sagkit
from sagkit.cli.common import CLIError, configure_logging
from sagkit.cli.flags.bench import GPU_CHECK
from sagkit.diagnostics.gpu_check import full_plan, quick_plan, require_cuda, run_gpu_check


def benchmarks_dir() -> Path:
    """``benchmarks/`` of the source checkout (next to the ``sagkit`` package)."""
    return Path(sagkit.__file__).resolve().parents[1] / "benchmarks"


def find_benchmarks(folder: Optional[Path] = None) -> dict[str, Path]:
    """``{name: file}`` for ``benchmarks/bench_<name>.py``."""
    folder = folder or benchmarks_dir()
    if not folder.is_dir():
        return {}
    return {p.stem[len("bench_"):]: p for p in sorted(folder.glob("bench_*.py"))}


def load_benchmark(name: str, path: Path) -> ModuleType:
    """The benchmark script ``path`` run as module ``sagkit_bench_<name>``: the scripts are files of the checkout,
    not a package, so they are loaded by path; ValueError unless it defines ``main(argv)``."""
    spec = importlib.util.spec_from_file_location(f"sagkit_bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "main"):
        raise ValueError(f"{path} has no main(argv) function")
    return module


def _gpu_check(args: argparse.Namespace) -> int:
    if args.only or args.list:
        raise CLIError(f"'bench {GPU_CHECK}' takes no --only or --list (it is one check); run it alone")
    require_cuda()
    configure_logging()
    report = run_gpu_check(quick_plan() if args.quick else full_plan())
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


def run(args: argparse.Namespace) -> int:
    if args.name == GPU_CHECK:
        return _gpu_check(args)
    if args.name is not None:
        args.only = [*args.only, args.name]
    found = find_benchmarks()
    if not found:
        raise FileNotFoundError(
            f"no benchmarks found in {benchmarks_dir()} (they live in the source checkout, not the installed "
            "package)"
        )
    if args.list:
        print("\n".join(found))
        return 0
    unknown = [n for n in args.only if n not in found]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {unknown}: choose from {sorted(found)}")
    status = 0
    for name in args.only or list(found):
        module = load_benchmark(name, found[name])
        print(f"== benchmark {name} ({found[name]})", flush=True)
        rc = module.main(["--quick"] if args.quick else [])
        status = status or (rc if isinstance(rc, int) else 0)  # some benchmarks return their results dict
    return status
