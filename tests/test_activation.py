"""Activation maps (sagkit.viz.activation): Grad-CAM and the channel-norm map against hand computations."""

import numpy as np
import pytest
import torch
from torch import nn

from sagkit.models import SAGNet
from sagkit.viz.activation import (
    activation_maps,
    channel_norm_map,
    grad_cam,
    named_activation_maps,
    upsample_maps,
)

torch.set_num_threads(1)

# Two channels on a 2×2 grid; class 0 scores channel 0 minus channel 1, class 1 the opposite.
FEATURES = torch.tensor([[[[4.0, 1.0], [0.0, 2.0]],
                          [[0.0, 1.0], [2.0, 0.0]]]])
WEIGHT = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [0.0, 0.0]])


class LinearOverFeatures(nn.Module):
    """A model whose last feature map is FEATURES (whatever the input) and whose classifier is linear."""

    def __init__(self):
        super().__init__()
        self.classifier = nn.Linear(2, 3, bias=False)
        with torch.no_grad():
            self.classifier.weight.copy_(WEIGHT)
        self.dropout = nn.Dropout(0.9)

    def forward_features(self, x):
        return FEATURES.expand(x.shape[0], -1, -1, -1).clone()

    def forward_logits(self, features):
        return self.classifier(self.dropout(features.mean(dim=(2, 3))))


def _images(n=2, h=64, w=32, seed=0):
    return torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_grad_cam_of_a_linear_classifier_is_the_weighted_channel_sum():
    # d y_k / d A_c[i, j] = W[k, c] / 4, so Grad-CAM = relu((W[k, 0] A_0 + W[k, 1] A_1) / 4), then min-max:
    # class 0: relu([[4, 0], [-2, 2]]) / 4 → [[1, 0], [0, 0.5]]; class 1: relu([[-4, 0], [2, -2]]) → [[0, 0], [1, 0]]
    model = LinearOverFeatures().train()
    maps = grad_cam(model, _images(2), identities=[0, 1])
    assert maps.shape == (2, 2, 2) and maps.dtype == torch.float32
    assert torch.allclose(maps[0], torch.tensor([[1.0, 0.0], [0.0, 0.5]]))
    assert torch.allclose(maps[1], torch.tensor([[0.0, 0.0], [1.0, 0.0]]))
    assert model.training, "the model's mode is restored"
    assert model.classifier.weight.grad is None, "only the feature map gets gradients"


def test_grad_cam_defaults_to_each_images_top_identity():
    model = LinearOverFeatures()
    # pooled = (7/4, 3/4): logits (1, -1, 0), so class 0 scores highest
    assert torch.equal(grad_cam(model, _images(2)), grad_cam(model, _images(2), identities=0))
    # class 2 has zero weights: no positive evidence anywhere, an all-zero map
    assert torch.equal(grad_cam(model, _images(1), identities=2), torch.zeros(1, 2, 2))


@pytest.mark.parametrize("identities, message", [
    (3, "identity 3 is not a class of this model's classifier: use an int in 0..2"),
    (-1, "identity -1 is not a class"),
    ([0, True], "identity True is not a class"),
    ([0, 1, 2], "identities has 3 entries for 2 images"),
])
def test_bad_identity_index_says_what_is_allowed(identities, message):
    with pytest.raises(ValueError, match=message):
        grad_cam(LinearOverFeatures(), _images(2), identities=identities)


def test_channel_norm_map_is_the_min_max_scaled_l2_norm_over_channels():
    features = torch.randn(3, 5, 4, 2, generator=torch.Generator().manual_seed(1))
    norm = np.sqrt((features.numpy() ** 2).sum(axis=1))
    low, high = norm.min(axis=(1, 2), keepdims=True), norm.max(axis=(1, 2), keepdims=True)
    expected = (norm - low) / (high - low)
    assert np.allclose(channel_norm_map(features).numpy(), expected, atol=1e-6)
    hand = np.sqrt(16.0 + 0.0), np.sqrt(1.0 + 1.0), np.sqrt(0.0 + 4.0), np.sqrt(4.0 + 0.0)  # 4, √2, 2, 2
    scaled = (np.array(hand) - np.sqrt(2.0)) / (4.0 - np.sqrt(2.0))
    assert np.allclose(channel_norm_map(FEATURES).numpy().ravel(), scaled, atol=1e-6)


def _hand_input_gradient(model, pooled, identity):
    """∂ logit / ∂ pooled of the eval-mode head, written out: fc → BN (running statistics) → LeakyReLU → classifier."""
    head = model.head
    z = pooled @ head.fc.weight.T + head.fc.bias
    scale = head.bn.weight / torch.sqrt(head.bn.running_var + head.bn.eps)
    bn = (z - head.bn.running_mean) * scale + head.bn.bias
    slope = torch.where(bn > 0, torch.ones_like(bn), torch.full_like(bn, 0.1))
    return ((head.classifier.weight[identity] * slope) * scale) @ head.fc.weight


@pytest.mark.parametrize("depths", [(), (4,)])
def test_grad_cam_of_a_sagnet_matches_the_hand_written_head_gradient(depths):
    torch.manual_seed(0)
    model = SAGNet(4, depths=depths, backbone="efficientnet_lite0")
    with torch.no_grad():  # move the BN statistics away from (0, 1) so that eval mode matters
        model.head.bn.running_mean.uniform_(-0.5, 0.5)
        model.head.bn.running_var.uniform_(0.5, 2.0)
        model.head.classifier.weight.normal_(std=1.0)
    x = _images(2, 128, 64)
    features = model.eval().forward_features(x).detach()
    h, w = features.shape[-2:]
    expected, identities = [], []
    for i in range(len(x)):
        cams = []
        for identity in range(model.num_classes):
            alpha = _hand_input_gradient(model, features[i].mean(dim=(1, 2)), identity) / (h * w)
            cams.append(torch.relu((alpha[:, None, None] * features[i]).sum(dim=0)).detach().numpy())
        identity = int(np.argmax([cam.max() - cam.min() for cam in cams]))  # one whose map is not flat
        cam = cams[identity]
        assert cam.max() > cam.min()
        expected.append((cam - cam.min()) / (cam.max() - cam.min()))
        identities.append(identity)
    model.train()
    got = grad_cam(model, x, identities=identities)
    assert np.allclose(got.numpy(), np.stack(expected), atol=1e-5)
    assert model.training


@pytest.mark.parametrize("depths", [(), (1,), (2,), (3,), (4,)])
def test_maps_have_the_last_feature_maps_size_and_range_for_baseline_and_each_depth(depths):
    torch.manual_seed(0)
    model = SAGNet(6, depths=depths, backbone="efficientnet_lite0").train()
    buffers = [b.clone() for b in model.buffers()]
    x = _images(3, 128, 64)
    for method in ("norm", "gradcam"):
        maps = activation_maps(model, x, method)
        assert maps.shape == (3, 4, 2)
        assert maps.min() >= 0.0 and maps.max() <= 1.0
        assert torch.isclose(maps.flatten(1).max(dim=1).values, torch.ones(3)).all()
    assert all(torch.equal(a, b) for a, b in zip(buffers, model.buffers())), "BN statistics left alone"
    assert all(p.grad is None for p in model.parameters())


def test_named_maps_over_batches_equal_one_batch_and_upsample_to_the_image():
    torch.manual_seed(0)
    model = SAGNet(3, depths=(), backbone="efficientnet_lite0")
    x = _images(4, 64, 32)
    named = named_activation_maps(model, [x[:3], x[3:]])
    assert list(named) == ["baseline channel norm", "baseline Grad-CAM"]
    assert torch.allclose(named["baseline Grad-CAM"], grad_cam(model, x), atol=1e-6)
    assert torch.allclose(named["baseline channel norm"], activation_maps(model, x, "norm"), atol=1e-6)
    big = upsample_maps(named["baseline Grad-CAM"], (64, 32))
    assert big.shape == (4, 64, 32) and big.dtype == np.float32
    assert big.min() >= 0.0 and np.isclose(big.max(), 1.0)


def test_bad_inputs_get_one_clear_error():
    model = SAGNet(3, depths=(), backbone="efficientnet_lite0")
    with pytest.raises(ValueError, match="images must be a normalised N×3×H×W tensor; got \\(3, 64, 32\\)"):
        activation_maps(model, torch.zeros(3, 64, 32))
    with pytest.raises(ValueError, match="activation method 'cam' is not known"):
        activation_maps(model, _images(1), "cam")
    with pytest.raises(TypeError, match="Linear has no forward_features"):
        grad_cam(nn.Linear(2, 2), _images(1))
    with pytest.raises(ValueError, match="choose one or more of"):
        named_activation_maps(model, [_images(1)], methods=["gradcam", "saliency"])
