"""Tables a person reads: Table 1 short with a caption naming dataset, profile and seeds; Tables 3-5 with the
measured rows in a block of their own that says which dataset they were measured on."""
from pathlib import Path

import pandas as pd

from sagkit.report import table_view

from sagkit.report import tables
from sagkit.cli import main
from sagkit.workbook import last_ablation_copy

ROOT = Path(__file__).resolve().parents[1]
TABLE1 = pd.read_csv(ROOT / "figures" / "table1_ablation.csv", dtype={"seeds": str})
TABLE3 = pd.read_csv(ROOT / "figures" / "table3_market1501.csv")


def test_table1_short_with_a_caption_naming_dataset_profile_and_seeds():
    view = table_view.show_table1(TABLE1, "synthetic", "cpu")
    ((caption, frame),) = view.blocks
    assert caption == "Table 1. Impact of the SAG depth: synthetic, profile cpu, seeds 0,1,2, no re-ranking"
    assert list(frame.columns) == ["config", "seeds", "R1", "mAP", "R1 vs baseline", "verdict (R1)",
                                   "mAP vs baseline", "verdict (mAP)"]
    assert frame.loc[4, "R1"] == "45.11 ± 2.04 [38.22, 51.78]" and frame.loc[4, "verdict (R1)"] == "better"
    assert repr(view).startswith(caption) and caption in view._repr_html_()


def test_one_seed_says_seed():
    one = TABLE1.assign(seeds="0")
    assert ", seed 0," in table_view.table1_caption(one, "cuhk01", "cpu")


def test_the_ablation_note_names_the_copy_with_the_full_table():
    assert last_ablation_copy() == "03_ablation_D4"
    note = table_view.table1_note(TABLE1.head(2), (1,), last_ablation_copy())
    assert "trained D1" in note and "2 configuration(s)" in note and "03_ablation_D4.ipynb" in note


def test_measured_rows_are_a_block_of_their_own_naming_their_dataset():
    (published_caption, published), (caption, measured) = table_view.sota_blocks(3, TABLE3, "cpu", (0,))
    assert published_caption == "Table 3. Comparison results on Market-1501: published (* arXiv only)"
    assert "Baseline" not in set(published["method"]) and "SAG" in set(published["method"])
    assert caption == "Measured here on synthetic, not Market-1501: profile cpu, seed 0"
    assert list(measured["method"]) == ["Baseline", "Baseline+RR", "SAG D4", "SAG D4+RR"]
    assert measured.loc[0, "sq_R1"] == "34.00 [26.67, 41.33]" and "sq_R1_low" not in measured.columns


def test_measured_on_the_papers_dataset_is_not_called_another():
    rows = tables.measured_sota_rows(3, "SAG D4", "market1501", {"single": {"rank1": 90.0, "mAP": 70.0}})
    blocks = table_view.sota_blocks(3, tables.assemble_sota_table(3, rows), "paper", (0,))
    assert blocks[1][0] == "Measured here on market1501: profile paper, seed 0"


def test_the_sota_markdown_file_holds_both_blocks(tmp_path):
    csv_path, md_path = table_view.write_sota_table(TABLE3, tmp_path, 3, "cpu")
    text = md_path.read_text()
    assert text.index("### Table 3.") < text.index("### Measured here on synthetic, not Market-1501")
    assert pd.read_csv(csv_path).shape == TABLE3.shape


def test_results_tables_prints_a_titled_short_table(tmp_path, capsys):
    assert main(["results", "tables", "--dataset", "synthetic", "--out", str(tmp_path)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == "Table 1. Impact of the SAG depth: synthetic, profile cpu, seeds 0,1,2, no re-ranking"
