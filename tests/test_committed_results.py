"""The committed tables are what the kept run summaries in results/ give, so no README number is retyped; the
workbook writes into a git-ignored working folder, and `make figures` is what rebuilds the committed files."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sagkit.report.results_folder import write_tables
from sagkit.workbook.parameters import check_parameters

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("dataset, overrides, committed", [
    ("synthetic", {}, ROOT / "figures"),
    ("cuhk01", {}, ROOT / "results" / "tables" / "cuhk01" / "cpu"),
    ("cuhk01", {"freeze_stages": 3}, ROOT / "results" / "tables" / "cuhk01" / "cpu_freeze3"),
])
def test_tables_rebuilt_from_results_equal_the_committed_ones(dataset, overrides, committed, tmp_path):
    write_tables(ROOT / "results", dataset, "cpu", tmp_path, overrides=overrides)
    names = sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".csv", ".md"))
    assert "table1_ablation.md" in names and "table3_market1501.md" in names
    for name in names:
        assert (tmp_path / name).read_bytes() == (committed / name).read_bytes(), (dataset, overrides, name)


def _git(*args: str) -> subprocess.CompletedProcess:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout")
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


@pytest.mark.parametrize("dataset", ["synthetic", "cuhk01"])
def test_the_workbooks_default_figures_folder_is_ignored_and_holds_no_committed_file(dataset, tmp_path):
    data_root = None if dataset == "synthetic" else str(tmp_path)
    folder = check_parameters(dataset=dataset, data_root=data_root, base=ROOT).figures_dir
    assert folder == ROOT / "runs" / "figures" / dataset
    relative = folder.relative_to(ROOT).as_posix()
    assert _git("ls-files", "--", relative).stdout == ""
    assert _git("check-ignore", "-q", relative + "/table1_ablation.md").returncode == 0


def test_make_workbook_passes_no_figures_folder_by_default():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^FIGURES_DIR \?=\s*$", makefile, re.M), "FIGURES_DIR must default to empty"
    assert "--figures-dir '$(FIGURES_DIR)'" in makefile


def test_make_figures_rebuilds_every_committed_table():
    """Each committed table (figures/, results/tables/) is the --out of a `make figures` line."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nfigures:", 1)[1].split("\n\n", 1)[0]
    outs = {(ROOT / out).resolve() for out in re.findall(r"--out (\S+)", recipe)}
    committed = list((ROOT / "results" / "tables").rglob("*.md")) + [
        p for p in (ROOT / "figures").glob("table*.md") if p.name != "table2_datasets.md"]  # Table 2: data counts
    assert committed
    missing = [p for p in committed if p.parent.resolve() not in outs and p.with_suffix("").resolve() not in outs]
    assert not missing, f"not rebuilt by `make figures`: {missing}"
