"""Colour-histogram linear probe: how far colour statistics alone go at telling identities apart.

Used to check that the synthetic dataset is neither trivially separable by colour nor
unlearnable: per-image joint RGB histograms, a logistic regression trained on some images of
each training identity and tested on held-out images of the same identities.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

from sagkit.data.images import read_image
from sagkit.data.records import ImageRecord


def colour_histograms(paths: Sequence[str], bins: int = 8) -> np.ndarray:
    """Joint RGB histograms (N x bins**3), L1-normalised then square-rooted (Hellinger map)."""
    out = np.empty((len(paths), bins ** 3), np.float32)
    for i, p in enumerate(paths):
        q = (np.asarray(read_image(p), dtype=np.uint16) * bins) // 256
        idx = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
        h = np.bincount(idx.ravel(), minlength=bins ** 3).astype(np.float32)
        out[i] = np.sqrt(h / h.sum())
    return out


def split_per_identity(records: Sequence[ImageRecord], holdout_per_id: int, seed: int):
    """Hold out ``holdout_per_id`` random images of each identity (ids with too few images stay in train)."""
    rng = np.random.default_rng(seed)
    by_pid = defaultdict(list)
    for i, r in enumerate(records):
        by_pid[r.pid].append(i)
    train, test = [], []
    for pid in sorted(by_pid):
        idx = list(rng.permutation(by_pid[pid]))
        k = holdout_per_id if len(idx) > holdout_per_id else 0
        test += idx[:k]
        train += idx[k:]
    return sorted(train), sorted(test)


def colour_histogram_probe(records: Sequence[ImageRecord], holdout_per_id: int = 2, bins: int = 8, seed: int = 0,
                           Cs: Sequence[float] = (0.1, 1.0, 10.0)) -> dict:
    """Identity accuracy of a logistic regression on colour histograms, on held-out images.

    Reports the best accuracy over the regularisation values ``Cs`` (favouring the probe, so a
    low number is a conservative statement), the chance level and the sizes.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    records = list(records)
    tr, te = split_per_identity(records, holdout_per_id, seed)
    if not te:
        raise ValueError("no identity has more than holdout_per_id images; nothing to test on")
    feats = colour_histograms([r.path for r in records], bins)
    y = np.array([r.pid for r in records])
    scaler = StandardScaler().fit(feats[tr])
    xtr, xte = scaler.transform(feats[tr]), scaler.transform(feats[te])
    accs = {}
    for c in Cs:
        clf = LogisticRegression(C=c, max_iter=3000)
        clf.fit(xtr, y[tr])
        accs[float(c)] = float((clf.predict(xte) == y[te]).mean())
    num_ids = len(set(y[te].tolist()))
    return {"accuracy": max(accs.values()), "accuracy_per_C": accs, "chance": 1.0 / len(set(y[tr].tolist())),
            "num_ids": num_ids, "num_train_images": len(tr), "num_test_images": len(te), "bins": bins}
