"""ExperimentConfig: paper defaults, profiles, JSON round trip, validation, run keys."""

import json

import pytest

from sagkit.config import EXECUTION_FIELDS, PROFILES, ExperimentConfig, get_profile


def test_defaults_are_the_paper_recipe():
    c = ExperimentConfig()
    assert c.backbone == "resnet50" and c.pretrained == "imagenet"
    assert c.depths == (4,)
    assert (c.height, c.width) == (160, 64)
    assert c.batch_size == 32 and c.epochs == 200
    assert (c.momentum, c.weight_decay, c.nesterov) == (0.9, 5e-4, False)
    assert (c.lr_pretrained, c.lr_new) == (0.01, 0.1)
    assert (c.lr_gamma, c.lr_step) == (0.1, 40)
    assert c.label_smoothing == 0.0  # plain cross-entropy, Eq. 2
    assert c.select_metric == "mAP" and c.val_ids > 0 and c.eval_every >= 1
    assert c.freeze_stages == -1  # nothing frozen in the paper
    assert get_profile("paper") == c


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_json_round_trip_keeps_tuples(profile, tmp_path):
    c = get_profile(profile, depths=(1, 3), dataset_options={"num_train_ids": 7}, l2norm=[1, 3])
    text = c.to_json()
    back = ExperimentConfig.from_json(text)
    assert back == c
    assert isinstance(back.depths, tuple) and back.depths == (1, 3)
    path = tmp_path / "cfg.json"
    c.to_json(path)
    assert ExperimentConfig.from_json(path) == c
    assert json.loads(path.read_text())["depths"] == [1, 3]
    assert not [p for p in tmp_path.iterdir() if p.name != "cfg.json"]  # no temp file left behind


def test_unknown_keys_are_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown ExperimentConfig field\(s\): 'epoch' \(did you mean 'epochs'\?\)"):
        ExperimentConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="'lr'"):
        get_profile("tiny", lr=0.1)
    with pytest.raises(ValueError, match="unknown profile 'gpu'"):
        get_profile("gpu")
    with pytest.raises(FileNotFoundError, match="nope.json"):
        ExperimentConfig.from_json("nope.json")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("amp", "fp32", "amp"),
        ("device", "gpu", "device"),
        ("depths", (5,), "depths"),
        ("depths", (4, 4), "depths"),
        ("select_metric", "rank5", "select_metric"),
        ("batch_size", 0, "batch_size"),
        ("freeze_stages", 5, "freeze_stages"),
        ("erase_prob", 1.5, "erase_prob"),
        ("name", "a/b", "name"),
        ("retain_memory", "yes", "retain_memory"),
    ],
)
def test_invalid_values_raise(field, value, message):
    with pytest.raises(ValueError, match=message):
        ExperimentConfig(**{field: value})


def test_depths_normalised():
    assert ExperimentConfig(depths=[4, 1]).depths == (1, 4)
    assert ExperimentConfig(depths=4).depths == (4,)
    assert ExperimentConfig(depths=()).depths == ()


def test_run_name_is_keyed_by_result_fields():
    a = get_profile("tiny")
    assert a.run_name().startswith("synthetic-efficientnet_lite0-D4-")
    assert get_profile("tiny", depths=()).run_name().startswith("synthetic-efficientnet_lite0-baseline-")
    assert get_profile("tiny", depths=(1, 2)).run_name().split("-")[2:4] == ["D1", "2"]
    # same experiment, other machine / paths: same key
    b = a.replace(device="cpu", num_workers=3, runs_dir="elsewhere", data_root="/x", amp="bf16")
    assert b.run_key() == a.run_key() and b.run_name() == a.run_name()
    assert set(EXECUTION_FIELDS) >= {"device", "num_workers", "runs_dir", "data_root", "name"}
    # anything that changes results changes the key
    for change in ({"epochs": 3}, {"seed": 1}, {"depths": (3,)}, {"lr_new": 0.05}, {"dataset_options": {"a": 1}}):
        assert a.replace(**change).run_key() != a.run_key(), change
    assert a.replace(name="mine").run_name() == "mine"
    assert a.run_dir().parts[-2:] == ("runs", a.run_name())


def test_cpu_profile_changes_versus_paper():
    paper, cpu = get_profile("paper"), get_profile("cpu")
    assert cpu.backbone == "efficientnet_lite0" and cpu.pretrained == "imagenet"
    assert cpu.freeze_stages >= 0 and cpu.epochs < paper.epochs
    assert cpu.dataset == "synthetic"
    assert cpu.lr_step <= cpu.epochs  # the decay happens within the shortened schedule
    for name in ("cpu", "paper", "tiny"):
        assert name in get_profile.__doc__
    tiny = get_profile("tiny")
    assert (tiny.height, tiny.width) == (64, 32) and tiny.pretrained == "imagenet" and tiny.epochs <= 2
