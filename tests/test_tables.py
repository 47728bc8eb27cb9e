"""sagkit.report.reference and sagkit.report.tables: transcribed paper tables, Table 1 assembly, CSV/Markdown output."""

import math
import os
import stat

import numpy as np
import pandas as pd
import pytest

from sagkit.report import reference

from sagkit.report import tables
from sagkit.evaluation.bootstrap import bootstrap_interval
from sagkit.evaluation.query_scores import QueryScores


def test_reference_table1_has_24_rows_in_paper_order_with_the_typo_note():
    t1 = reference.table1()
    assert len(t1) == 24
    for dataset in reference.PAPER_DATASETS:
        assert tuple(reference.table1(dataset)["config"]) == reference.TABLE1_ORDER
    duke = reference.table1("dukemtmc").set_index("config")
    assert duke.loc["D1,2,3,4", "mAP"] == pytest.approx(48.76)
    assert "4876" in duke.loc["D1,2,3,4", "note"]
    market = reference.table1("market1501").set_index("config")
    assert market.loc["D4", ["R1", "R5", "R10", "mAP"]].tolist() == [90.17, 96.38, 97.48, 73.87]
    assert market.loc["Baseline", "R1"] == 83.49
    cuhk = reference.table1("cuhk03").set_index("config")
    assert cuhk.loc["D3", ["R1", "R5", "R10", "mAP"]].tolist() == [81.41, 96.62, 98.51, 88.00]
    with pytest.raises(ValueError, match="no column for 'synthetic'"):
        reference.table1("synthetic")


def test_reference_sota_tables_match_the_paper():
    t3 = reference.sota_table(3).set_index("method")
    assert len(t3) == 16 and list(t3.columns[:2]) == ["citation", "arxiv_only"]
    assert t3.loc["SAG+RR", ["sq_R1", "sq_mAP", "mq_R1", "mq_mAP"]].tolist() == [92.04, 89.28, 94.60, 85.32]
    assert math.isnan(t3.loc["Cross-GAN", "sq_mAP"]) and t3.loc["Cross-GAN", "arxiv_only"]
    assert t3.loc["CAN", "citation"].startswith("[24]")
    t4 = reference.sota_table(4).set_index("method")
    assert len(t4) == 9 and t4.loc["SVDNet", "mAP"] == 84.8 and math.isnan(t4.loc["SSM", "mAP"])
    t5 = reference.sota_table(5).set_index("method")
    assert len(t5) == 9 and t5.loc["DCC", ["R1", "R5", "R10", "mAP"]].tolist() == [80.3, 92.0, 97.1, 59.2]
    assert t5.loc["TriNet", "arxiv_only"] and t5.loc["SAG+RR", "mAP"] == 81.05
    for number in (3, 4, 5):
        assert reference.sota_table(number)["citation"].str.len().gt(0).all()
    with pytest.raises(ValueError, match="3, 4 and 5"):
        reference.sota_table(1)


def test_reference_table2_uses_summary_keys():
    t2 = reference.load_table(2).set_index("dataset")
    assert t2.loc["market1501", ["train_ids", "train_images", "query_images", "gallery_images"]].tolist() == [
        751, 12936, 3368, 19732]
    assert t2.loc["cuhk03", "test_ids"] == 100 and t2.loc["dukemtmc", "cameras"] == 8


def test_config_labels_round_trip():
    assert tables.config_label(()) == "Baseline"
    assert tables.config_label([3, 1, 2]) == "D1,2,3"
    assert tables.label_depths("D1,2,3,4") == (1, 2, 3, 4)
    assert tables.label_depths("Baseline") == ()


def _fake(depths, r1):
    return {"depths": depths, "rank1": r1, "rank5": r1 + 1, "rank10": r1 + 2, "mAP": r1 - 10, "run": f"run-{r1}"}


def test_assemble_table1_puts_rows_in_paper_order_and_adds_paper_numbers():
    fake = [_fake((1, 2), 30.0), _fake((4,), 50.0), _fake((2, 4), 11.0), _fake((), 20.0), _fake((1,), 25.0),
            _fake((4,), 55.0)]
    t = tables.assemble_table1(fake, dataset="cuhk03")
    assert t["config"].tolist() == ["Baseline", "D1", "D4", "D1,2", "D2,4"]
    d4 = t.set_index("config").loc["D4"]
    assert d4["R1"] == 55.0 and d4["run"] == "run-55.0"  # the later D4 row wins
    assert d4["paper_R1"] == 82.46 and d4["paper_mAP"] == 88.64 and d4["paper_dataset"] == "cuhk03"
    assert t.set_index("config").loc["D2,4", "note"] == "not in the paper"
    assert math.isnan(t.set_index("config").loc["D2,4", "paper_R1"])
    # a dataset the paper does not report is compared with Market-1501
    synth = tables.assemble_table1(fake, dataset="synthetic")
    assert (synth["paper_dataset"] == "market1501").all() and (synth["dataset"] == "synthetic").all()
    assert synth.set_index("config").loc["Baseline", "paper_R1"] == 83.49


def test_measured_sota_rows_and_assembly():
    evals = {
        "single": {"rank1": 60.0, "rank5": 70.0, "rank10": 80.0, "mAP": 40.0},
        "single_rr": {"rank1": 65.0, "rank5": 71.0, "rank10": 81.0, "mAP": 55.0},
        "multi": {"rank1": 62.0, "mAP": 44.0},
    }
    rows3 = tables.measured_sota_rows(3, "SAG D4", "synthetic", evals, note="run x")
    assert [r["method"] for r in rows3] == ["SAG D4", "SAG D4+RR"]
    assert rows3[0]["mq_R1"] == 62.0 and math.isnan(rows3[1]["mq_R1"])
    t3 = tables.assemble_sota_table(3, rows3)
    assert len(t3) == 18 and t3["source"].tolist() == ["reported"] * 16 + ["measured"] * 2
    assert set(t3[t3.source == "reported"]["dataset"]) == {"market1501"}
    assert t3.iloc[-1]["dataset"] == "synthetic" and t3.iloc[-1]["note"] == "run x; k-reciprocal re-ranking"
    t5 = tables.assemble_sota_table(5, tables.measured_sota_rows(5, "SAG D4", "synthetic", evals))
    assert t5.iloc[-2][["R1", "R5", "R10", "mAP"]].tolist() == [60.0, 70.0, 80.0, 40.0]
    assert list(t5.columns) == ["method", "citation", "source", "dataset", "arxiv_only", "R1", "R5", "R10", "mAP", "note"]
    with pytest.raises(ValueError, match="'single'"):
        tables.measured_sota_rows(4, "x", "synthetic", {"multi": {}})


def test_write_table_csv_and_markdown(tmp_path):
    frame = pd.DataFrame({"config": ["Baseline", "D4"], "R1": [12.345, math.nan], "note": ["a|b", ""]})
    csv_path, md_path = tables.write_table(frame, tmp_path / "figs", "table1_ablation", title="Table 1")
    back = pd.read_csv(csv_path)
    assert back["config"].tolist() == ["Baseline", "D4"] and back["R1"].iloc[0] == 12.35
    assert math.isnan(back["R1"].iloc[1])
    md = md_path.read_text().splitlines()
    assert md[0] == "### Table 1"
    assert md[2] == "| config | R1 | note |" and md[3] == "|---|---:|---|"
    assert md[4] == "| Baseline | 12.35 | a\\|b |" and md[5] == "| D4 | - |  |"
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["table1_ablation.csv", "table1_ablation.md"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(csv_path.stat().st_mode) == 0o666 & ~umask
    with pytest.raises(ValueError, match="plain file stem"):
        tables.write_table(frame, tmp_path, "../x")


def _queries(ap, hits):
    ap = np.asarray(ap, float)
    return QueryScores(ap=ap, inp=ap, first_hit=np.ones(len(ap), np.int64), hits=np.asarray(hits, float),
                       valid=np.ones(len(ap), bool))


def _seed_row(depths, seed, queries):
    metrics = queries.metrics()
    return {"depths": depths, "seed": seed, "run": f"{tables.config_label(depths)}-s{seed}", "queries": queries,
            **{m: metrics[m] for m in tables.METRICS}}


def test_assemble_table1_with_several_seeds_gives_spread_interval_and_verdicts():
    rng = np.random.default_rng(0)
    rows, base = [], {}
    for seed in (0, 1, 2):
        hits = np.maximum.accumulate((rng.random((90, 3)) < 0.5).astype(float), axis=1)
        ap = rng.random(90) * 0.8
        base[seed] = _queries(ap, hits)
        rows.append(_seed_row((), seed, base[seed]))
        rows.append(_seed_row((1,), seed, _queries(ap, hits)))  # the baseline's results again
        better_hits = np.ones_like(hits)  # a hit at rank 1 on every query
        rows.append(_seed_row((4,), seed, _queries(ap + 0.1, better_hits)))
    rows.append(_fake((2,), 30.0))  # one seed, no per-query results
    t = tables.assemble_table1(rows, dataset="synthetic")
    assert list(t.columns[:11]) == ["config", "R1", "R5", "R10", "mAP", "run", "dataset", "paper_R1", "paper_R5",
                                    "paper_R10", "paper_mAP"]
    assert list(t.columns[-len(tables.STAT_COLUMNS):]) == list(tables.STAT_COLUMNS)
    t = t.set_index("config")
    assert t.index.tolist() == ["Baseline", "D1", "D2", "D4"]
    r1 = [base[s].metrics()["rank1"] for s in (0, 1, 2)]
    assert t.loc["Baseline", "R1"] == pytest.approx(np.mean(r1))
    assert t.loc["Baseline", "R1_sd"] == pytest.approx(np.std(r1, ddof=1))
    assert t.loc["Baseline", "seeds"] == "0,1,2" and t.loc["Baseline", "n_seeds"] == 3
    assert t.loc["Baseline", "run"] == "Baseline-s0; Baseline-s1; Baseline-s2"
    assert t.loc["Baseline", "R1_low"] < t.loc["Baseline", "R1"] < t.loc["Baseline", "R1_high"]
    matrix = np.stack([base[s].values("mAP") for s in (0, 1, 2)])
    assert [t.loc["Baseline", "mAP_low"], t.loc["Baseline", "mAP_high"]] == pytest.approx(
        [100 * v for v in bootstrap_interval(matrix)])
    assert t.loc["Baseline", "verdict_R1"] == "" and math.isnan(t.loc["Baseline", "dR1"])
    assert t.loc["D1", "dR1"] == 0.0 and t.loc["D1", "verdict_R1"] == t.loc["D1", "verdict_mAP"] == "not distinguishable"
    assert t.loc["D4", "verdict_R1"] == "better" and t.loc["D4", "verdict_mAP"] == "better"
    assert t.loc["D4", "dmAP"] == pytest.approx(10.0) and t.loc["D4", "dmAP_low"] == pytest.approx(10.0)
    assert t.loc["D4", "R1_high"] == 100.0 and t.loc["D4", "R1_sd"] == 0.0
    # the one-seed row without per-query results keeps its numbers and has no interval or comparison
    assert t.loc["D2", "R1"] == 30.0 and t.loc["D2", "n_seeds"] == 1 and math.isnan(t.loc["D2", "R1_sd"])
    assert math.isnan(t.loc["D2", "R1_low"]) and t.loc["D2", "verdict_R1"] == ""
    short = tables.table1_summary(t.reset_index()).set_index("config")
    assert short.loc["D4", "verdict (R1)"] == "better" and short.loc["D2", "verdict (mAP)"] == "-"
    assert short.loc["D2", "R1"] == "30.00" and short.loc["D4", "mAP vs baseline"].startswith("+10.00 [+10.00, ")


def test_sota_rows_carry_intervals():
    evals = {"single": {"rank1": 60.0, "rank5": 70.0, "rank10": 80.0, "mAP": 40.0},
             "multi": {"rank1": 62.0, "mAP": 44.0}}
    intervals = {"rank1": [55.0, 65.0], "mAP": [35.0, 45.0], "multi_rank1": [57.0, 67.0], "multi_mAP": [39.0, 49.0],
                 "rank5": [66.0, 74.0], "rank10": [76.0, 84.0]}
    row = tables.measured_sota_rows(3, "SAG D4", "synthetic", evals, intervals=intervals)[0]
    assert (row["sq_R1_low"], row["sq_R1_high"], row["mq_mAP_low"]) == (55.0, 65.0, 39.0)
    t4 = tables.assemble_sota_table(4, tables.measured_sota_rows(4, "SAG D4", "synthetic", evals, intervals=intervals))
    assert list(t4.columns[-8:]) == ["R1_low", "R1_high", "R5_low", "R5_high", "R10_low", "R10_high", "mAP_low",
                                     "mAP_high"]
    assert t4.iloc[-1]["R10_high"] == 84.0 and t4[t4.source == "reported"]["R1_low"].isna().all()
