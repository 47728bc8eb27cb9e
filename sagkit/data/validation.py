"""Hold out whole training identities as a validation query/gallery for model selection."""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

from sagkit.data.records import ImageRecord, relabel


def holdout_validation(train_records: Sequence[ImageRecord], num_ids: int, seed: int = 0, cameras: bool = True
                       ) -> tuple[list[ImageRecord], list[ImageRecord], list[ImageRecord]]:
    """Split training records into (train, val_query, val_gallery).

    ``num_ids`` identities seen by at least two cameras are drawn at random (seeded); for each,
    one random image is the query and the others form its gallery, so every query has a
    gallery match in another camera.  Validation records keep their pids; the remaining
    training pids are relabelled ``0..K'-1`` (ascending order of the old label).  ``cameras=False``
    (records without camera ids, scored without the camera rule): identities with two images are eligible.
    """
    records = [ImageRecord(*r) for r in train_records]
    by_pid = defaultdict(list)
    for r in records:
        by_pid[r.pid].append(r)
    if cameras:
        eligible = [pid for pid in sorted(by_pid) if len({r.camid for r in by_pid[pid]}) >= 2]
    else:
        eligible = [pid for pid in sorted(by_pid) if len(by_pid[pid]) >= 2]
    if not 1 <= num_ids < len(by_pid):
        raise ValueError(f"cannot hold out {num_ids} of the {len(by_pid)} training identities for validation "
                         f"(num_ids must be in 1..{len(by_pid) - 1})")
    if num_ids > len(eligible):
        raise ValueError(f"only {len(eligible)} train ids have images from two "
                         f"{'cameras' if cameras else 'files'}; cannot hold out {num_ids}")
    rng = np.random.default_rng(seed)
    held = sorted(int(eligible[i]) for i in rng.choice(len(eligible), size=num_ids, replace=False))
    held_set = set(held)
    query, gallery = [], []
    for pid in held:
        imgs = by_pid[pid]
        q = imgs[int(rng.integers(len(imgs)))]
        query.append(q)
        gallery += [r for r in imgs if r is not q]
    train = relabel(r for r in records if r.pid not in held_set)
    return train, query, gallery
