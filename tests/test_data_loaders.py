"""Transforms, ImageDataset (bad images), loaders, the P x K sampler and hold-out validation."""
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch
from PIL import Image

from data_fixtures import write_image
from sagkit.data import (IMAGENET_MEAN, PAPER_MEAN, PAPER_STD, BadImageError, IdentitySampler, ImageDataset,
                         ImageRecord, build_test_loader, build_train_loader, build_transforms, denormalize,
                         holdout_validation, verify_images)


@pytest.fixture
def records(tmp_path):
    """8 identities x 5 images (cameras 0, 1, 0, 1, 2) of 16 x 8 JPEGs; pids 0..7."""
    recs = []
    for pid in range(8):
        for k in range(5):
            p = write_image(tmp_path / f"{pid:04d}_{k}.jpg", value=30 * pid + k, size=(8, 16))
            recs.append(ImageRecord(str(p), pid, [0, 1, 0, 1, 2][k]))
    return recs


# ---------------------------------------------------------------- transforms

def test_paper_normalisation_is_2x_minus_1_minus_mean_pixel():
    assert PAPER_MEAN == pytest.approx(IMAGENET_MEAN) and PAPER_STD == (0.5, 0.5, 0.5)
    img = Image.new("RGB", (64, 160), (255, 0, 128))
    x = build_transforms(train=False)(img)
    assert x.shape == (3, 160, 64)
    m = [2 * v - 1 for v in IMAGENET_MEAN]  # ImageNet mean pixel in [-1, 1]
    expected = [(2 * 1.0 - 1) - m[0], (2 * 0.0 - 1) - m[1], (2 * 128 / 255 - 1) - m[2]]
    assert x[:, 0, 0].tolist() == pytest.approx(expected, abs=1e-5)
    assert denormalize(x)[:, 0, 0].tolist() == pytest.approx([1.0, 0.0, 128 / 255], abs=1e-5)


def test_train_transform_flip_and_erase():
    arr = np.zeros((20, 10, 3), np.uint8)
    arr[:, :5] = 255  # left half white
    img = Image.fromarray(arr)
    flip = build_transforms(20, 10, train=True, flip_prob=1.0, erase_prob=0.0)(img)
    plain = build_transforms(20, 10, train=False)(img)
    assert torch.allclose(flip, plain.flip(-1))
    torch.manual_seed(0)
    erased = build_transforms(20, 10, train=True, flip_prob=0.0, erase_prob=1.0)(img)
    changed = (erased != plain).any(0)
    assert changed.any() and (erased[:, changed] == 0).all()  # erased with the mean pixel (0)
    with pytest.raises(ValueError, match="erase_prob"):
        build_transforms(erase_prob=1.5)


# ---------------------------------------------------------------- ImageDataset and bad images

def test_image_dataset_items(records):
    ds = ImageDataset(records, build_transforms(32, 16, train=False))
    img, pid, camid, index = ds[7]
    assert img.shape == (3, 32, 16) and (pid, camid, index) == (1, 0, 7)  # pid 1, 3rd image: camera 0


def test_corrupt_image_raises_or_is_skipped(records, tmp_path):
    bad = tmp_path / "0009_bad.jpg"
    good = write_image(tmp_path / "0009_good.jpg")
    bad.write_bytes(good.read_bytes()[:40])  # truncated JPEG
    text = tmp_path / "0009_text.jpg"
    text.write_text("not an image")
    recs = records + [ImageRecord(str(bad), 9, 0), ImageRecord(str(text), 9, 1)]
    ds = ImageDataset(recs, None)
    with pytest.raises(BadImageError, match="0009_bad.jpg"):
        ds[len(records)]
    with pytest.raises(BadImageError, match="0009_text.jpg"):
        ds[len(records) + 1]
    missing = ImageDataset([ImageRecord(str(tmp_path / "gone.jpg"), 0, 0)], None)
    with pytest.raises(BadImageError, match="gone.jpg"):
        missing[0]
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):
        skipping = ImageDataset(recs, None, on_bad_image="skip")
    assert len(skipping) == len(records)
    good_recs, bad_recs = verify_images(recs)
    assert len(good_recs) == len(records) and {r.path for r, _ in bad_recs} == {str(bad), str(text)}
    with pytest.raises(ValueError, match="no \\(readable\\) images"):
        ImageDataset([], None)
    with pytest.raises(ValueError, match="on_bad_image"):
        ImageDataset(records, None, on_bad_image="ignore")


# ---------------------------------------------------------------- sampler

def test_identity_sampler_pk_batches(records):
    s = IdentitySampler(records, batch_size=8, num_instances=4, seed=1)
    idx = list(s)
    assert len(idx) % 8 == 0 and len(idx) > 0
    for b in range(0, len(idx), 8):
        pids = Counter(records[i].pid for i in idx[b:b + 8])
        assert len(pids) == 2 and set(pids.values()) == {4}
    # 5 images per id -> one group of 4 per id -> 8 ids / 2 per batch = 4 batches
    assert len(idx) == 32
    assert list(IdentitySampler(records, 8, 4, seed=1)) == idx  # deterministic
    second = list(s)  # the epoch advances on each iteration
    assert second != idx
    s.set_epoch(0)
    assert list(s) == idx


def test_identity_sampler_pads_small_ids_and_errors(records):
    few = [r for r in records if r.pid < 3][:7]  # pid 0: 5 images, pid 1: 2 images
    s = IdentitySampler(few, batch_size=4, num_instances=4)
    idx = list(s)
    assert len(idx) == 8 and len(s) == 8 and {few[i].pid for i in idx} == {0, 1}
    with pytest.raises(ValueError, match="multiple of num_instances"):
        IdentitySampler(records, batch_size=6, num_instances=4)
    with pytest.raises(ValueError, match="cannot fill batches"):
        IdentitySampler(few, batch_size=12, num_instances=4)


def test_identity_sampler_distributed(records):
    r0 = list(IdentitySampler(records, 4, 2, seed=3, num_replicas=2, rank=0))
    r1 = list(IdentitySampler(records, 4, 2, seed=3, num_replicas=2, rank=1))
    full = list(IdentitySampler(records, 4, 2, seed=3))
    assert len(r0) == len(r1) > 0
    batches = [full[i:i + 4] for i in range(0, len(full), 4)]
    assert [r0[i:i + 4] for i in range(0, len(r0), 4)] == batches[0::2][:len(r0) // 4]
    assert [r1[i:i + 4] for i in range(0, len(r1), 4)] == batches[1::2][:len(r1) // 4]


# ---------------------------------------------------------------- loaders

def test_train_loader_random_and_identity(records):
    tf = build_transforms(32, 16, train=True)
    loader = build_train_loader(records, tf, batch_size=6, num_workers=0, seed=0)
    batches = list(loader)
    assert len(batches) == 40 // 6 and batches[0][0].shape == (6, 3, 32, 16)
    again = [b[3].tolist() for b in build_train_loader(records, tf, batch_size=6, num_workers=0, seed=0)]
    assert [b[3].tolist() for b in batches] == again  # seeded shuffle
    assert sorted(i for b in again for i in b) != list(range(36))  # shuffled
    assert not loader.pin_memory or torch.cuda.is_available()
    pk = build_train_loader(records, tf, batch_size=8, sampler="identity", num_instances=4, num_workers=0)
    for img, pid, camid, index in pk:
        assert img.shape[0] == 8 and sorted(Counter(pid.tolist()).values()) == [4, 4]
    with pytest.raises(ValueError, match="sampler"):
        build_train_loader(records, tf, batch_size=4, sampler="balanced")


def test_loaders_with_workers_and_distributed(records):
    tf = build_transforms(32, 16, train=False)
    loader = build_test_loader(records, tf, batch_size=16, num_workers=2)
    assert not loader.persistent_workers and loader.num_workers == 2  # iterated once: workers end with it
    idx = torch.cat([b[3] for b in loader]).tolist()
    assert idx == list(range(40))  # order kept, nothing dropped
    halves = [build_train_loader(records, tf, batch_size=4, num_workers=0, distributed=True, num_replicas=2,
                                 rank=r, seed=0) for r in (0, 1)]
    seen = [set(torch.cat([b[3] for b in h]).tolist()) for h in halves]
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 40
    with pytest.raises(ValueError, match="torch.distributed"):
        build_train_loader(records, tf, batch_size=4, distributed=True)


# ---------------------------------------------------------------- hold-out validation

def test_holdout_validation(records):
    train, q, g = holdout_validation(records, num_ids=3, seed=0)
    held = {r.pid for r in q}
    assert len(held) == 3 and len(q) == 3 and len(g) == 12 and {r.pid for r in g} == held
    assert len(train) == 25 and sorted({r.pid for r in train}) == list(range(5))
    assert not {r.path for r in train} & {r.path for r in q + g}
    for query in q:
        assert any(x.pid == query.pid and x.camid != query.camid for x in g)
    assert holdout_validation(records, 3, seed=0) == (train, q, g)


def test_holdout_validation_needs_two_cameras(records):
    single = [ImageRecord(r.path, r.pid, 0 if r.pid < 6 else r.camid) for r in records]  # only ids 6, 7 multi-cam
    _, q, _ = holdout_validation(single, num_ids=2, seed=0)
    assert {r.pid for r in q} == {6, 7}
    with pytest.raises(ValueError, match="two cameras"):
        holdout_validation(single, num_ids=3, seed=0)
    with pytest.raises(ValueError, match="num_ids"):
        holdout_validation(records, num_ids=8)
    pids_by_seed = defaultdict(set)
    for seed in range(6):
        pids_by_seed[frozenset(r.pid for r in holdout_validation(records, 3, seed)[1])].add(seed)
    assert len(pids_by_seed) > 1
