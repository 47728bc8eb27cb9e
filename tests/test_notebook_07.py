"""Notebook 07 (your own images) under papermill on the tiny profile: embed a folder of identity sub-folders,
search it, draw the ranked lists and score the model on it without camera ids; and the workbook's 07 step,
on its folder copy of the test split."""

import ast
from pathlib import Path

import nbformat
import pytest

from sagkit.cli import main
from sagkit.config import get_profile
from sagkit.data import load_dataset
from sagkit.data.folder_copy import copy_queries
from sagkit.workbook import open_workbook, run_workbook

papermill = pytest.importorskip("papermill")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "07_your_images.ipynb"
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]


def test_notebook_07_is_thin_tagged_and_cleared():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    for key in ("run", "folder", "query", "topk", "evaluate", "device", "figures_dir"):
        assert f"\n{key} = " in "\n" + code[0].source
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert all(len(c.source.splitlines()) <= 8 for c in code[1:])


def test_notebook_07_on_the_tiny_profile(tmp_path):
    runs = tmp_path / "runs"
    assert main(["train", "--profile", "tiny", "--depths", "4", "--epochs", "1", "--set", "max_train_batches=2",
                 "--set", f"data_root={tmp_path / 'data'}", "--runs-dir", str(runs), "--device", "cpu",
                 "--no-progress"]) == 0
    (run,) = list(runs.iterdir())
    dataset = load_dataset("synthetic", tmp_path / "data", **get_profile("tiny").dataset_options)
    folder = tmp_path / "mine"
    for r in dataset.query + dataset.gallery:
        if r.pid > 0:  # people only: no junk, no distractors
            link = folder / f"person{r.pid}" / Path(r.path).name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(r.path)
    query = str(next(folder.glob("*/*.jpg")))
    done = papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "07.out.ipynb"), kernel_name="python3",
                                      cwd=str(ROOT), progress_bar=False,
                                      parameters={"run": str(run), "folder": str(folder), "query": [query], "topk": 3})
    text = "\n".join(o.get("text", "") for c in done.cells if c.cell_type == "code" for o in c.outputs)
    assert f"{len(list(folder.glob('*/*.jpg')))} images, 512-d" in text
    assert f"query {query}" in text and "no camera ids" in text and "'mAP'" in text
    figure = [o for c in done.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert figure  # the ranked lists were drawn


def test_the_workbook_runs_notebook_07_on_a_folder_copy_of_the_test_split(tmp_path):
    """``make workbook``'s 07 step: notebook 04's D4 run (trained here first) searches the folder copy, the ranked
    lists land in the figures folder, and the copy, scored with its cameras, gives the run's own numbers."""
    where = dict(profile="tiny", data_root=str(tmp_path / "data"), runs_dir=str(tmp_path / "runs"))  # device auto
    own = open_workbook(**where).train((4,))
    (executed,) = run_workbook(**where, figures_dir=str(tmp_path / "figures"), notebooks=["07_your_images"])
    assert executed == tmp_path / "runs" / "notebooks" / "synthetic" / "07_your_images.ipynb"
    figures = tmp_path / "figures"
    assert all((figures / f"your_images_ranked_list.{fmt}").stat().st_size > 1000 for fmt in ("png", "pdf"))
    done = nbformat.read(executed, as_version=4)
    text = "\n".join(o.get("text", "") for c in done.cells if c.cell_type == "code" for o in c.outputs)
    folder = tmp_path / "runs" / "your_images" / "synthetic"
    assert f"{len(list((folder / 'gallery').rglob('*.jpg')))} images, 512-d" in text  # the gallery split alone
    assert all(f"query {q}\n" in text for q in copy_queries(folder))
    ranked = [line.split()[-1] for line in text.splitlines() if line[:5].strip().isdigit()]
    assert ranked and all(f"{folder}/gallery/" in path for path in ranked)  # no query ranks itself first
    assert "GPU-sized" not in text  # device "auto" on a CPU says nothing for a model made for the CPU
    (line,) = [line for line in text.splitlines() if line.startswith("{'rank1'")]
    scores = ast.literal_eval(line)
    assert (scores["rank1"], scores["mAP"]) == pytest.approx((own["rank1"], own["mAP"]), abs=1e-9)
