"""The config checks every field itself, before anything is built or written, without torch; the choices it
checks against are the ones the models, losses and data readers use."""

import dataclasses
import inspect
import subprocess
import sys

import pytest

from sagkit import choices, cli
from sagkit.config import ExperimentConfig, get_profile
from sagkit.config.validation import RULES


@pytest.mark.parametrize("module", ["sagkit.config", "sagkit.choices"])
def test_config_and_choices_load_without_torch_numpy_or_pandas(module):
    code = (f"import sys, {module}; heavy = [m for m in ('torch', 'numpy', 'pandas', 'PIL') if m in sys.modules]; "
            "assert not heavy, heavy; from sagkit.config import get_profile; get_profile('tiny').run_key()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_field_has_a_rule():
    assert list(RULES) == [f.name for f in dataclasses.fields(ExperimentConfig)]


# Fields that only the model or the data reader used to check, each with a bad value and part of the allowed ones.
BAD_VALUES = [
    ("neck", "bogus", "'paper', 'bnneck'"),
    ("attention", "tanh", "'softmax', 'sigmoid', 'uniform'"),
    ("upsample", "bicubic", "'bilinear', 'nearest'"),
    ("embedding", "logits", "'bottleneck', 'pool'"),
    ("backbone", "vgg16", "'resnet50', 'efficientnet_lite0'"),
    ("bn_stats", "both", "'per_branch', 'shared'"),
    ("dataset", "imagenet", "'market1501'"),
    ("l2norm", [5], "from {1, 2, 3, 4}"),
    ("l2norm", "yes", "None, a bool"),
    ("scale_factor", 1.5, "an integer >= 2"),
    ("height", 100, "multiple of 32"),
    ("width", 0, "multiple of 32"),
    ("pretrained", "", "'imagenet' or the path of a weights file"),
    ("runs_dir", "", "a folder"),
    ("data_root", 3, "must be a string"),
    ("model_options", {"grid_scale": "sum"}, r"grid_scale='sum': use one of \('none', 'area'\)"),
    ("model_options", {"dropout": 1.5}, r"dropout=1.5: must be in \[0, 1\)"),
    ("model_options", {"bogus": 1}, "unknown key.*'bogus'.*l2norm_dim, grid_scale, bottleneck_dim, dropout"),
    ("dataset_options", {1: 2}, "keys must be strings"),
    ("last_stride", True, r"use one of \(2, 1\)"),
]


@pytest.mark.parametrize("field, value, allowed", BAD_VALUES, ids=[f"{f}={v!r}" for f, v, _ in BAD_VALUES])
def test_a_bad_value_names_the_field_and_what_it_accepts(field, value, allowed):
    with pytest.raises(ValueError, match=rf"^ExperimentConfig\.{field}=.* is invalid: .*{allowed}"):
        get_profile("tiny", **{field: value})
    config = get_profile("tiny")
    setattr(config, field, value)  # a field changed after construction: validate() finds it
    with pytest.raises(ValueError, match=rf"ExperimentConfig\.{field}="):
        config.validate()


@pytest.mark.parametrize("fields, message", [
    ({"neck": "bnneck", "model_options": {"dropout": 0.3}}, "neck='bnneck' has no bottleneck layer and no dropout"),
    ({"attention": "sigmoid", "model_options": {"grid_scale": "area"}}, "grid_scale applies to the softmax grid only"),
])
def test_model_options_that_do_not_suit_the_model_are_refused(fields, message):
    with pytest.raises(ValueError, match=rf"ExperimentConfig\.model_options=.*{message}"):
        get_profile("tiny", **fields)


def test_dataset_aliases_and_registered_datasets_are_accepted(monkeypatch):
    from sagkit.data import registry

    assert get_profile("tiny", dataset="Market-1501").dataset == "Market-1501"  # the reader canonicalises it
    monkeypatch.setattr(choices, "_REGISTERED_DATASETS", [])
    monkeypatch.setattr(registry, "DATASETS", dict(registry.DATASETS))
    with pytest.raises(ValueError, match="ExperimentConfig.dataset='mine'"):
        get_profile("tiny", dataset="mine")
    registry.register_dataset("mine", lambda root: None)
    assert get_profile("tiny", dataset="mine").run_name().startswith("mine-")


@pytest.mark.parametrize("print_config", [True, False])
@pytest.mark.parametrize("setting, allowed", [("neck=bogus", "'paper', 'bnneck'"), ("upsample=cubic", "'bilinear'"),
                                              ("embedding=x", "'bottleneck', 'pool'"), ("backbone=vgg", "'resnet18'")])
def test_the_command_line_refuses_a_bad_field_before_any_folder(setting, allowed, print_config, tmp_path, capsys):
    runs = tmp_path / "runs"
    args = ["train", "--profile", "tiny", "--runs-dir", str(runs), "--device", "cpu", "--set", setting]
    assert cli.main(args + (["--print-config"] if print_config else [])) == 2
    captured = capsys.readouterr()
    field = setting.split("=")[0]
    assert f"ExperimentConfig.{field}=" in captured.err and allowed in captured.err, captured.err
    assert captured.out == "" and not runs.exists()


def test_the_registries_are_keyed_by_the_names_in_choices():
    from sagkit.data.registry import DATASETS
    from sagkit.losses.registry import _BUILDERS
    from sagkit.models import BACKBONES, SAGNet

    assert tuple(_BUILDERS) == choices.LOSS_NAMES
    assert tuple(BACKBONES) == choices.BACKBONE_NAMES
    assert tuple(DATASETS)[:len(choices.DATASET_NAMES)] == choices.DATASET_NAMES
    # model_options may set exactly the SAGNet keywords that are not config fields of their own
    keywords = [p for p in inspect.signature(SAGNet.__init__).parameters if p not in ("self", "num_classes")]
    assert tuple(p for p in keywords if p not in RULES) == choices.MODEL_OPTIONS
