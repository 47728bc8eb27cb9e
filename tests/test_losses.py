"""sagkit.losses against direct loop implementations: batch-hard triplet, center loss, label smoothing,
and the criterion that sums the losses a config names."""

import math

import pytest
import torch
import torch.nn.functional as F

from sagkit.config import ExperimentConfig, get_profile
from sagkit.losses import CenterLoss, CrossEntropyLoss, TripletLoss, build_criterion, hardest_pairs, pairwise_distances
from sagkit.models import TrainOutput


def _distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(a, b)))


def loop_triplet(features: torch.Tensor, targets: list[int], margin) -> float:
    """Batch-hard triplet written out anchor by anchor (Hermans et al., Eq. 5; soft margin for None)."""
    terms = []
    for a in range(len(targets)):
        pos = [_distance(features[a], features[j]) for j in range(len(targets)) if j != a and targets[j] == targets[a]]
        neg = [_distance(features[a], features[j]) for j in range(len(targets)) if targets[j] != targets[a]]
        if not pos or not neg:
            continue
        gap = max(pos) - min(neg)
        terms.append(math.log1p(math.exp(gap)) if margin is None else max(0.0, gap + margin))
    return sum(terms) / len(terms)


def test_hardest_positive_and_negative_are_the_farthest_and_nearest():
    # points on a line: identity 0 at 0, 1, 3; identity 1 at 4, 10; identity 2 once at 20 (no positive)
    x = torch.tensor([[0.0], [1.0], [3.0], [4.0], [10.0], [20.0]])
    y = torch.tensor([0, 0, 0, 1, 1, 2])
    pos, neg, valid = hardest_pairs(pairwise_distances(x), y)
    assert valid.tolist() == [True, True, True, True, True, False]
    assert pos[:5].tolist() == pytest.approx([3.0, 2.0, 3.0, 6.0, 6.0], abs=1e-4)
    assert neg[:5].tolist() == pytest.approx([4.0, 3.0, 1.0, 1.0, 7.0], abs=1e-4)
    expected = sum(max(0.0, p - n + 0.5) for p, n in zip([3, 2, 3, 6, 6], [4, 3, 1, 1, 7])) / 5
    assert TripletLoss(0.5)(x, y).item() == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("margin", [0.3, 0.0, 2.0, None])
def test_batch_hard_triplet_matches_the_loop(margin):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(10, 5, generator=g)
    y = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3]  # identity 3 has no positive and is left out
    value = TripletLoss(margin)(x, torch.tensor(y)).item()
    assert value == pytest.approx(loop_triplet(x, y, margin), rel=1e-5, abs=1e-6)
    assert value > 0


def test_triplet_ties_and_identical_features_give_finite_gradients():
    # two equally far positives and two equally near negatives: the value does not depend on which is picked
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0], [0.0, 2.0]], requires_grad=True)
    y = [0, 0, 0, 1, 1, 1]
    loss = TripletLoss(0.3)(x, torch.tensor(y))
    assert loss.item() == pytest.approx(loop_triplet(x.detach(), y, 0.3), abs=1e-6)
    loss.backward()
    assert torch.isfinite(x.grad).all()
    same = torch.ones(4, 3, requires_grad=True)  # every distance 0: all ties, sqrt at 0
    soft = TripletLoss(None)(same, torch.tensor([0, 0, 1, 1]))
    assert soft.item() == pytest.approx(math.log(2.0), abs=1e-5)
    soft.backward()
    assert torch.isfinite(same.grad).all()


def test_triplet_without_any_valid_anchor_is_zero_not_nan():
    x = torch.randn(3, 4, requires_grad=True)
    loss = TripletLoss(0.3)(x, torch.tensor([0, 1, 2]))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(x.grad, torch.zeros_like(x))


def test_center_loss_and_its_update_match_the_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, generator=g, requires_grad=True)
    y = [2, 0, 2, 2, 1, 0]
    loss_fn = CenterLoss(num_classes=4, feature_dim=3, alpha=0.5)
    loss_fn.centers.copy_(torch.randn(4, 3, generator=g))
    before = loss_fn.centers.clone()
    loss = loss_fn(x, torch.tensor(y))
    xd = x.detach()
    expected = sum(sum((float(xd[i, d]) - float(before[y[i], d])) ** 2 for d in range(3)) for i in range(6)) / 6
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    for j in range(4):  # Wen et al.: c_j -= alpha * sum_{y_i=j} (c_j - x_i) / (1 + n_j)
        members = [i for i in range(6) if y[i] == j]
        delta = sum((before[j] - xd[i] for i in members), torch.zeros(3))
        assert torch.allclose(loss_fn.centers[j], before[j] - 0.5 * delta / (1 + len(members)), atol=1e-6), j
    loss.backward()  # the gradient reaches the features only: 2 (x_i - c_{y_i}) / N
    assert torch.allclose(x.grad, 2 * (xd - before[torch.tensor(y)]) / 6, atol=1e-6)


def test_center_loss_leaves_its_centers_alone_outside_training():
    loss_fn = CenterLoss(3, 2)
    x, y = torch.ones(2, 2), torch.tensor([0, 1])
    with torch.no_grad():
        loss_fn(x, y)
    loss_fn.eval()
    loss_fn(x, y)
    assert torch.equal(loss_fn.centers, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="expects 2-d features, got 5-d"):
        loss_fn(torch.ones(2, 5), y)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.4])
def test_label_smoothing_matches_the_formula(eps):
    g = torch.Generator().manual_seed(1)
    logits, y = torch.randn(5, 7, generator=g), [3, 0, 6, 3, 1]
    log_p = torch.log_softmax(logits.double(), dim=1)
    # q = (1 - eps) onehot(y) + eps / K;  loss = -mean_i sum_k q_ik log p_ik
    expected = sum(-(1 - eps) * float(log_p[i, y[i]]) - eps / 7 * float(log_p[i].sum()) for i in range(5)) / 5
    assert CrossEntropyLoss(eps)(logits, torch.tensor(y)).item() == pytest.approx(expected, rel=1e-5)


def test_no_smoothing_is_the_papers_cross_entropy():
    g = torch.Generator().manual_seed(2)
    logits, y = torch.randn(4, 3, generator=g), [0, 2, 1, 1]
    p = torch.softmax(logits, dim=1)
    eq2 = -sum(math.log(float(p[i, y[i]])) for i in range(4)) / 4  # Eq. 2: -log p(ỹ = y), averaged
    assert CrossEntropyLoss(0.0)(logits, torch.tensor(y)).item() == pytest.approx(eq2, rel=1e-6)
    with pytest.raises(ValueError, match="label smoothing"):
        CrossEntropyLoss(1.0)


def test_criterion_weights_each_loss_and_reads_its_own_field():
    cfg = get_profile("tiny", losses={"ce": 1.0, "triplet": 0.5, "center": 0.25}, sampler="identity",
                      num_instances=2, label_smoothing=0.1)
    criterion = build_criterion(cfg, num_classes=3, feature_dim=4)
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(6, 3, generator=g, requires_grad=True)
    features = torch.randn(6, 4, generator=g, requires_grad=True)
    embedding = torch.full((6, 4), float("nan"))  # read by no loss
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    total, parts = criterion(TrainOutput(logits, features, embedding), y)
    assert set(parts) == {"ce", "triplet", "center"}
    assert parts["ce"].item() == pytest.approx(F.cross_entropy(logits, y, label_smoothing=0.1).item())
    assert parts["triplet"].item() == pytest.approx(TripletLoss(0.3)(features, y).item())
    assert parts["center"].item() == pytest.approx(features.pow(2).sum(1).mean().item())  # centers start at 0
    weighted = parts["ce"] + 0.5 * parts["triplet"] + 0.25 * parts["center"]
    assert total.item() == pytest.approx(weighted.item())
    total.backward()
    assert logits.grad.abs().sum() > 0 and features.grad.abs().sum() > 0
    assert criterion.losses["center"].centers.abs().sum() > 0  # the update ran
    with pytest.raises(ValueError, match="num_classes and feature_dim"):
        build_criterion(cfg)


@pytest.mark.parametrize("losses, match", [
    ({}, "losses"),
    ({"arcface": 1.0}, "losses.*'ce', 'triplet', 'center'"),
    ({"ce": 0.0}, "weight must be a number > 0"),
    ({"ce": True}, "weight must be a number > 0"),
])
def test_bad_loss_configs_are_named(losses, match):
    with pytest.raises(ValueError, match=match):
        ExperimentConfig(losses=losses)


def test_triplet_without_the_pk_sampler_is_a_clear_error():
    with pytest.raises(ValueError, match=r"ExperimentConfig.sampler='random' is invalid: the triplet loss needs "
                                         r"P×K batches .*sampler='identity'"):
        get_profile("tiny", losses={"ce": 1.0, "triplet": 1.0})
    assert get_profile("tiny", losses={"ce": 1.0, "triplet": 1.0}, sampler="identity", num_instances=2)
    with pytest.raises(ValueError, match="triplet_margin"):
        ExperimentConfig(triplet_margin=-0.1)
