"""Tests for extract_features, pool_multi_query and compute_distance_matrix."""

import numpy as np
import pytest
import torch
from torch import nn

from sagkit.evaluation import compute_distance_matrix, evaluate, extract_features, pool_multi_query


class TinyReID(nn.Module):
    """train(): logits over 3 classes; eval(): a 4-d embedding that is not flip-invariant."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.embed = nn.Linear(4 * 2 * 2, 4)
        self.classifier = nn.Linear(4, 3)

    def forward(self, x):
        f = nn.functional.adaptive_avg_pool2d(torch.relu(self.bn(self.conv(x))), 2).flatten(1)
        e = self.embed(f)
        return self.classifier(e) if self.training else e


def make_loader(num=10, batch=4):
    g = torch.Generator().manual_seed(1)
    images = torch.rand(num, 3, 8, 6, generator=g)
    pids, camids = torch.arange(num) % 3, torch.arange(num) % 2
    data = [(images[i], int(pids[i]), int(camids[i]), i) for i in range(num)]
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=False)
    return loader, images, pids.numpy(), camids.numpy()


def test_flip_average_then_normalise_by_hand():
    model = TinyReID()
    loader, images, pids, camids = make_loader()
    feats, got_pids, got_cams = extract_features(model, loader)
    model.eval()
    with torch.no_grad():
        f = model(images)
        f_flip = model(images.flip(3))
    expected = (f + f_flip) / 2
    expected = expected / expected.norm(dim=1, keepdim=True)
    assert feats.shape == (10, 4) and feats.dtype == torch.float32 and feats.device.type == "cpu"
    torch.testing.assert_close(feats, expected, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(f, f_flip)  # the flip really changes the embedding
    np.testing.assert_array_equal(got_pids, pids)
    np.testing.assert_array_equal(got_cams, camids)


def test_no_flip_no_normalise_gives_raw_embeddings():
    model = TinyReID()
    loader, images, *_ = make_loader()
    feats, _, _ = extract_features(model, loader, flip=False, normalize=False)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(feats, model(images))


def test_modes_restored_module_by_module_and_wrappers_unwrapped():
    model = TinyReID()
    model.train()
    model.bn.eval()  # e.g. frozen BatchNorm
    loader, images, *_ = make_loader()
    feats, _, _ = extract_features(nn.DataParallel(model), loader, flip=False, normalize=False)
    assert model.training and model.conv.training and not model.bn.training
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(feats, model(images))


def test_extract_features_rejects_bad_loaders():
    with pytest.raises(ValueError, match="no batches"):
        extract_features(TinyReID(), [])
    with pytest.raises(ValueError, match="yield"):
        extract_features(TinyReID(), [torch.rand(2, 3, 8, 6)])


def test_pool_multi_query_mean_and_max_by_hand():
    feats = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0], [0.0, 4.0]])
    pids, cams = np.array([7, 7, 2, 7]), np.array([1, 1, 1, 3])
    pooled, p, c = pool_multi_query(feats, pids, cams)
    torch.testing.assert_close(pooled, torch.tensor([[2.0, 1.0], [5.0, 5.0], [0.0, 4.0]]))  # first-appearance order
    np.testing.assert_array_equal(p, [7, 2, 7])
    np.testing.assert_array_equal(c, [1, 1, 3])
    pooled, _, _ = pool_multi_query(feats.numpy(), pids, cams, mode="max")
    torch.testing.assert_close(pooled, torch.tensor([[3.0, 2.0], [5.0, 5.0], [0.0, 4.0]]))
    pooled, _, _ = pool_multi_query(feats, pids, cams, normalize=True)
    torch.testing.assert_close(pooled[0], torch.tensor([2.0, 1.0]) / 5 ** 0.5)
    with pytest.raises(ValueError, match="mode"):
        pool_multi_query(feats, pids, cams, mode="median")


def test_multi_query_pooling_feeds_evaluate():
    q = torch.tensor([[0.0, 1.0], [0.0, 0.6], [1.0, 0.0]])
    g = torch.tensor([[0.0, 0.8], [1.0, 0.1], [0.9, 0.0]])
    pooled, pids, cams = pool_multi_query(q, [1, 1, 2], [0, 0, 0])
    cmc, m_ap = evaluate(compute_distance_matrix(pooled, g), pids, np.array([1, 2, 2]), cams, np.array([1, 1, 2]),
                         max_rank=3)
    np.testing.assert_allclose(cmc, [1.0, 1.0, 1.0])
    assert m_ap == pytest.approx(1.0)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_distance_matrix_against_direct_formula(metric):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 5)), rng.normal(size=(9, 5))
    if metric == "cosine":
        expected = 1 - (a @ b.T) / np.linalg.norm(a, axis=1)[:, None] / np.linalg.norm(b, axis=1)[None, :]
    else:
        expected = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        expected = np.sqrt(expected) if metric == "euclidean" else expected
    for chunk in (None, 2):
        got = compute_distance_matrix(a, torch.from_numpy(b), metric=metric, chunk=chunk)
        assert got.dtype == torch.float64
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-10)
    got32 = compute_distance_matrix(a.astype(np.float32), b.astype(np.float32), metric=metric)
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), expected, atol=1e-5)


def test_distance_matrix_bad_inputs():
    with pytest.raises(ValueError, match="metric"):
        compute_distance_matrix(np.zeros((2, 3)), np.zeros((2, 3)), metric="l1")
    with pytest.raises(ValueError, match="feature dimension"):
        compute_distance_matrix(np.zeros((2, 3)), np.zeros((2, 4)))
