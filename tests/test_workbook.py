"""sagkit.workbook: notebook parameter checks, path rules, the run plan and the runner (papermill mocked)."""

import logging
from pathlib import Path

import pytest

from sagkit import workbook
from sagkit.workbook import DEPTH_HELP, check_parameters, parse_attention_depths, parse_depth_list, parse_depths


@pytest.mark.parametrize(
    "value, expected",
    [(0, ()), ("0", ()), ("baseline", ()), ((), ()), (4, (4,)), ("4", (4,)), ("D3", (3,)), ("1,2,3", (1, 2, 3)),
     (" 3, 1 ", (1, 3)), ([2, 1], (1, 2)), ((1, 2, 3, 4), (1, 2, 3, 4)), ("(1,2)", (1, 2))],
)
def test_parse_depths_accepts(value, expected):
    assert parse_depths(value) == expected


@pytest.mark.parametrize("value", [5, -1, "5", "1,5", "1,1", [1, 1], "abc", "", None, True, 1.5, [0, 1], "0,4"])
def test_parse_depths_rejects_with_what_is_allowed(value):
    with pytest.raises(ValueError) as err:
        parse_depths(value)
    assert DEPTH_HELP in str(err.value) and "an integer 1..4" in str(err.value)


def test_parse_attention_depths_refuses_the_baseline():
    assert parse_attention_depths("1,2,3,4") == (1, 2, 3, 4) and parse_attention_depths(4) == (4,)
    for bad in (0, "0", 7):
        with pytest.raises(ValueError, match="baseline has no attention grid"):
            parse_attention_depths(bad)


def test_parse_depth_list():
    assert parse_depth_list("0 1 2 1,2") == [(), (1,), (2,), (1, 2)]
    assert parse_depth_list([0, 1, "1,2", (1, 2, 3), 1]) == [(), (1,), (1, 2), (1, 2, 3)]
    assert parse_depth_list("0;4") == [(), (4,)]
    with pytest.raises(ValueError, match="at least one"):
        parse_depth_list("")


def test_check_parameters_defaults_resolve_against_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = check_parameters()
    assert p.dataset == "synthetic" and p.profile == "cpu" and p.device == "auto" and p.retrain is False
    assert p.runs_dir == tmp_path / "runs" and p.figures_dir == tmp_path / "runs" / "figures" / "synthetic"
    assert p.data_root is None and p.depths is None


def test_check_parameters_from_the_notebooks_folder_uses_the_repository_root(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    p = check_parameters(runs_dir="runs", figures_dir="figures")
    assert p.runs_dir == tmp_path / "runs" and p.figures_dir == tmp_path / "figures"


def test_real_datasets_write_figures_into_a_subfolder(tmp_path):
    (tmp_path / "cuhk01").mkdir()
    p = check_parameters(dataset="cuhk01", data_root="cuhk01", figures_dir="figs", base=tmp_path)
    assert p.data_root == tmp_path / "cuhk01" and p.figures_dir == tmp_path / "figs" / "cuhk01"


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"dataset": "imagenet"}, ValueError, "dataset 'imagenet' is unknown: use one of synthetic, market1501"),
        ({"dataset": "market1501"}, ValueError, "dataset 'market1501' needs data_root"),
        ({"dataset": "market1501", "data_root": ""}, ValueError, "needs data_root"),
        ({"dataset": "cuhk03", "data_root": "/no/such/folder"}, FileNotFoundError,
         "data_root '/no/such/folder' does not exist"),
        ({"profile": "fast"}, ValueError, "profile 'fast' is unknown: use one of paper, cpu, tiny"),
        ({"device": "gpu"}, ValueError, "device 'gpu' is invalid: use 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        ({"retrain": "yes"}, ValueError, "retrain must be True or False"),
        ({"depth": 5}, ValueError, "depth must be 0 (the baseline), an integer 1..4"),
        ({"runs_dir": ""}, ValueError, "runs_dir must be a folder path"),
    ],
)
def test_check_parameters_errors_say_what_is_allowed(kwargs, error, message):
    with pytest.raises(error) as err:
        check_parameters(**kwargs)
    assert message in str(err.value)


def test_synthetic_data_root_may_be_absent_and_none_strings_mean_none(tmp_path):
    assert check_parameters(data_root="None").data_root is None
    assert check_parameters(data_root=str(tmp_path / "later")).data_root == tmp_path / "later"


def test_workbook_config_uses_the_profile_and_clears_synthetic_options_for_real_data(tmp_path):
    (tmp_path / "data").mkdir()
    wb = workbook.open_workbook(dataset="cuhk01", data_root=str(tmp_path / "data"), profile="tiny",
                                runs_dir=str(tmp_path / "runs"), overrides={"epochs": 1})
    config = wb.config((1, 2))
    assert config.dataset == "cuhk01" and config.depths == (1, 2) and config.dataset_options == {}
    assert config.epochs == 1 and config.data_root == str(tmp_path / "data")
    assert Path(config.runs_dir) == tmp_path / "runs"
    synth = workbook.open_workbook(profile="tiny", runs_dir=str(tmp_path / "runs")).config(())
    assert synth.dataset == "synthetic" and synth.depths == ()
    assert wb.run_dir((1, 2)).parent == tmp_path / "runs"


def test_workbook_plan_order_and_parameters():
    plan = workbook.workbook_plan(parse_depth_list("0 1 2 3 4 1,2"))
    names = [name for name, _, _ in plan]
    assert names == ["01_data_exploration", "02_baseline"] + ["03_ablation"] * 6 + [
        "04_sota_tables", "05_attention_heatmaps", "06_controls", "07_your_images"]
    assert list(dict.fromkeys(names)) == list(workbook.NOTEBOOKS)  # every notebook, in the order listed
    assert [extra["depth"] for name, extra, _ in plan if name == "03_ablation"] == [0, 1, 2, 3, 4, "1,2"]
    assert [stem for _, _, stem in plan][2:8] == ["03_ablation_Baseline", "03_ablation_D1", "03_ablation_D2",
                                                  "03_ablation_D3", "03_ablation_D4", "03_ablation_D1-2"]
    assert plan[-3][1] == {"depths": "1,2,3,4", "interactive": False} and plan[-2][1] == {"seeds": "0"}
    assert plan[-1] == ("07_your_images", {}, "07_your_images")  # its parameters are made when it runs
    assert all(extra["seeds"] == "0" for name, extra, _ in plan if name == "03_ablation")
    seeded = workbook.workbook_plan([(), (4,)], seeds=(0, 1, 2))
    assert [extra for name, extra, _ in seeded if name == "03_ablation"] == [{"depth": 0, "seeds": "0,1,2"},
                                                                          {"depth": 4, "seeds": "0,1,2"}]
    assert seeded[-2] == ("06_controls", {"seeds": "0,1,2"}, "06_controls")


def test_run_workbook_runs_the_plan_in_order_with_progress_lines(tmp_path, monkeypatch, caplog):
    calls = []

    def fake_execute(source, output, parameters, kernel_name, cwd, progress_bar, log_output):
        import os

        calls.append((Path(source).name, Path(output), dict(parameters), kernel_name, os.environ.get("SAGKIT_HEADLESS")))
        Path(output).write_text("{}")

    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="sagkit")
    out = workbook.run_workbook(profile="tiny", data_root="data", runs_dir="r", figures_dir="f", depths="0 4",
                                retrain=True)
    assert [c[0] for c in calls] == ["01_data_exploration.ipynb", "02_baseline.ipynb", "03_ablation.ipynb",
                                     "03_ablation.ipynb", "04_sota_tables.ipynb", "05_attention_heatmaps.ipynb",
                                     "06_controls.ipynb", "07_your_images.ipynb"]
    assert out == [c[1] for c in calls] and all(p.parent == tmp_path / "r" / "notebooks" / "synthetic" for p in out)
    params = [c[2] for c in calls]
    assert all(p["runs_dir"] == str(tmp_path / "r") and p["figures_dir"] == str(tmp_path / "f") for p in params[:7])
    assert all(p["profile"] == "tiny" and p["dataset"] == "synthetic" and p["data_root"] == str(tmp_path / "data")
               for p in params[:7])
    # retrain once per configuration: 02 retrains the baseline, 03 depth=0 reuses it, 03 depth=4 retrains D4
    assert [p["retrain"] for p in params[:7]] == [False, True, False, True, False, False, True]
    assert params[2]["depth"] == 0 and params[3]["depth"] == 4 and params[5]["depths"] == "4"
    # 07: notebook 04's D4 run (seed 0), the folder copy of the test split, two of its query images
    book = workbook.open_workbook(profile="tiny", data_root="data", runs_dir="r")
    folder = tmp_path / "r" / "your_images" / "synthetic"
    assert params[7] == {"run": str(book.run_dir((4,), 0)), "folder": str(folder), "device": "auto",
                         "query": params[7]["query"], "gallery_folder": str(folder / "gallery"),
                         "figures_dir": str(tmp_path / "f")}
    assert len(params[7]["query"]) == 2 and all(folder / "query" in Path(q).parents for q in params[7]["query"])
    assert all(c[3] == "python3" and c[4] == "1" for c in calls)
    lines = [r.getMessage() for r in caplog.records]
    assert sum("done in" in line for line in lines) == 8
    assert "[4/8] 03_ablation depth=4 ..." in lines and "notebooks in" in lines[-1]
    assert params[3]["seeds"] == "0" and "seeds" not in params[4]
    calls.clear()
    workbook.run_workbook(profile="tiny", data_root="data", runs_dir="r", figures_dir="f", depths="0 4",
                          retrain=True, seeds="0,1")
    params = [c[2] for c in calls]
    # 03 depth=0 retrains: seed 1 of the baseline is not among what 02 retrained
    assert [p["retrain"] for p in params[:7]] == [False, True, True, True, False, False, True]
    assert params[2]["seeds"] == params[3]["seeds"] == params[6]["seeds"] == "0,1"


def test_run_workbook_checks_parameters_before_running_anything(monkeypatch, tmp_path):
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("must not run"))
    with pytest.raises(ValueError, match="unknown"):
        workbook.run_workbook(dataset="nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        workbook.run_workbook(dataset="market1501", data_root="/no/such/market")
    with pytest.raises(ValueError, match="depth must be"):
        workbook.run_workbook(depths="0 9")
    with pytest.raises(ValueError, match="unknown notebook"):
        workbook.run_workbook(notebooks=["06_extra"])
    with pytest.raises(FileNotFoundError, match=r"notebook 07_your_images searches with the run .*-D4-.*, which is "
                                                r"not finished: run notebook 04_sota_tables"):
        workbook.run_workbook(profile="tiny", runs_dir=str(tmp_path / "runs"), notebooks=["07_your_images"])
    for bad in ("0,0", "-1", "a", "", True, 1.5):
        with pytest.raises(ValueError, match="seeds must be one or more distinct non-negative integers"):
            workbook.run_workbook(seeds=bad)
