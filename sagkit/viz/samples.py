"""Sample-image grids in the spirit of the paper's Figure 1 (re-id challenges).

Three groups are picked from a list of ImageRecord without any model: the same identity seen by
different cameras; look-alike identities (different people whose small colour thumbnails are nearest);
and hard views (the images farthest from their own identity's mean thumbnail: occlusion, clutter,
pose). As in the paper, images with the same border colour are the same identity within a group.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from sagkit.viz.images import add_border, resize_image, to_uint8_image

if TYPE_CHECKING:  # only named in annotations: importing sagkit.data at run time would pull in torch
    from sagkit.data.synthetic import SyntheticMetadata

PALETTE = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (188, 189, 34),
)

GROUP_TITLES = {
    "cross_camera": "same identity across cameras",
    "lookalike": "look-alike identities",
    "hard_views": "occlusion / clutter / pose (farthest from own identity)",
    "occluded": "occlusion",
}


def thumbnail_descriptor(image, size: tuple[int, int] = (16, 8)) -> np.ndarray:
    """A tiny colour thumbnail (``size`` = H, W) flattened and L2-normalised: a cheap appearance code."""
    small = resize_image(to_uint8_image(image), size).astype(np.float32) / 255.0
    small -= small.mean()
    vec = small.reshape(-1)
    return vec / max(float(np.linalg.norm(vec)), 1e-12)


def _by_pid(records: Sequence) -> dict[int, list]:
    groups: dict[int, list] = defaultdict(list)
    for record in records:
        if record.pid >= 0:
            groups[int(record.pid)].append(record)
    return groups


def _sample_ids(groups: Mapping[int, list], max_ids: int, rng: random.Random) -> list[int]:
    ids = sorted(groups)
    return sorted(rng.sample(ids, max_ids)) if len(ids) > max_ids else ids


def pick_cross_camera(records: Sequence, num_ids: int = 2, per_id: int = 4, seed: int = 0) -> list[list]:
    """``num_ids`` identities seen by the most cameras; for each, up to ``per_id`` images, one per camera first."""
    rng = random.Random(seed)
    groups = _by_pid(records)
    candidates = [pid for pid, recs in groups.items() if len({r.camid for r in recs}) >= 2]
    rng.shuffle(candidates)
    candidates.sort(key=lambda pid: -len({r.camid for r in groups[pid]}))
    picked = []
    for pid in candidates[:num_ids]:
        by_cam: dict[int, list] = defaultdict(list)
        for record in groups[pid]:
            by_cam[record.camid].append(record)
        chosen = []
        while len(chosen) < per_id and any(by_cam.values()):
            for cam in sorted(by_cam):
                if by_cam[cam] and len(chosen) < per_id:
                    chosen.append(by_cam[cam].pop(0))
        picked.append(chosen)
    return picked


def _identity_codes(records: Sequence, max_ids: int, per_id: int, seed: int):
    rng = random.Random(seed)
    groups = _by_pid(records)
    ids = _sample_ids(groups, max_ids, rng)
    codes = {}
    for pid in ids:
        recs = groups[pid][:per_id]
        codes[pid] = (recs, np.stack([thumbnail_descriptor(r.path) for r in recs]))
    return codes


def pick_lookalikes(records: Sequence, num_pairs: int = 2, per_id: int = 2, max_ids: int = 150, seed: int = 0):
    """Pairs of different identities whose mean thumbnails are closest; ``per_id`` images of each."""
    codes = _identity_codes(records, max_ids, per_id=4, seed=seed)
    ids = list(codes)
    if len(ids) < 2:
        return []
    means = np.stack([codes[pid][1].mean(axis=0) for pid in ids])
    dist = ((means[:, None, :] - means[None, :, :]) ** 2).sum(-1)
    dist[np.tril_indices(len(ids))] = np.inf
    pairs, used = [], set()
    for flat in np.argsort(dist, axis=None):
        i, j = np.unravel_index(flat, dist.shape)
        if not np.isfinite(dist[i, j]):
            break
        if ids[i] in used or ids[j] in used:
            continue
        used.update((ids[i], ids[j]))
        pairs.append((codes[ids[i]][0][:per_id], codes[ids[j]][0][:per_id]))
        if len(pairs) == num_pairs:
            break
    return pairs


def pick_hard_views(records: Sequence, num: int = 4, max_ids: int = 150, seed: int = 0) -> list:
    """The ``num`` images farthest from their identity's mean thumbnail (one per identity)."""
    codes = _identity_codes(records, max_ids, per_id=6, seed=seed)
    scored = []
    for recs, vecs in codes.values():
        if len(recs) < 2:
            continue
        dists = ((vecs - vecs.mean(axis=0)) ** 2).sum(-1)
        k = int(np.argmax(dists))
        scored.append((float(dists[k]), recs[k]))
    scored.sort(key=lambda item: -item[0])
    return [record for _, record in scored[:num]]


def _metadata_lookalikes(records: Sequence, metadata: SyntheticMetadata, num_pairs: int, per_id: int,
                         seed: int) -> list:
    """Pairs of identities from the same look-alike group of the synthetic generator."""
    members: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        key = metadata.identity_of(record)
        if key is not None and record.pid >= 0:
            members[metadata.groups[key]][key].append(record)
    groups = [g for g, ids in members.items() if len(ids) >= 2]
    random.Random(seed).shuffle(groups)
    pairs = []
    for group in groups[:num_pairs]:
        first, second = sorted(members[group])[:2]
        pairs.append((members[group][first][:per_id], members[group][second][:per_id]))
    return pairs


def _metadata_occluded(records: Sequence, metadata: SyntheticMetadata, num: int, seed: int) -> list:
    """Images the synthetic generator drew with an occluder, one per identity."""
    seen, found = set(), []
    shuffled = list(records)
    random.Random(seed).shuffle(shuffled)
    for record in shuffled:
        if metadata.occluder_of(record) and record.pid not in seen and record.pid >= 0:
            seen.add(record.pid)
            found.append(record)
        if len(found) == num:
            break
    return found


def figure1_groups(records: Sequence, seed: int = 0,
                   metadata: SyntheticMetadata | None = None) -> dict[str, list[tuple[object, int]]]:
    """The three Figure 1 groups as lists of (record, colour index); same index = same identity.

    With the synthetic generator's ``metadata`` (``sagkit.data.synthetic.read_synthetic_metadata``),
    look-alikes come from its look-alike groups and the third row shows images drawn with an occluder;
    without it both are picked from colour thumbnails.
    """
    cross = [(r, i) for i, recs in enumerate(pick_cross_camera(records, seed=seed)) for r in recs]
    pairs = _metadata_lookalikes(records, metadata, 2, 2, seed) if metadata else []
    if not pairs:
        pairs = pick_lookalikes(records, seed=seed)
    look = []
    for p, (left, right) in enumerate(pairs):
        look += [(r, 2 * p) for r in left] + [(r, 2 * p + 1) for r in right]
    occluded = _metadata_occluded(records, metadata, 4, seed) if metadata else []
    if occluded:
        return {"cross_camera": cross, "lookalike": look, "occluded": [(r, i) for i, r in enumerate(occluded)]}
    hard = [(r, i) for i, r in enumerate(pick_hard_views(records, seed=seed))]
    return {"cross_camera": cross, "lookalike": look, "hard_views": hard}


def plot_sample_groups(
    groups: Mapping[str, Sequence[tuple[object, int]]],
    size: tuple[int, int] = (128, 64),
    border: int = 4,
    titles: Mapping[str, str] | None = None,
):
    """One row per group; each image (record or image) framed in its group colour; returns a Figure."""
    import matplotlib.pyplot as plt

    titles = {**GROUP_TITLES, **(titles or {})}
    rows = [(name, items) for name, items in groups.items() if items]
    if not rows:
        raise ValueError("plot_sample_groups got no images")
    ncols = max(len(items) for _, items in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.1 * ncols + 0.5, 2.4 * len(rows)), squeeze=False)
    for row, (name, items) in enumerate(rows):
        for col in range(ncols):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.axis("off")
            if col >= len(items):
                continue
            item, colour = items[col]
            source = getattr(item, "path", item)
            tile = add_border(resize_image(to_uint8_image(source), size), PALETTE[colour % len(PALETTE)], border)
            ax.imshow(tile)
            label = f"id {item.pid} / cam {item.camid}" if hasattr(item, "pid") else ""
            ax.set_title(label, fontsize=7)
        axes[row, 0].text(
            0.0, 1.25, f"({chr(ord('a') + row)}) {titles.get(name, name)}",
            transform=axes[row, 0].transAxes, fontsize=9, ha="left", va="bottom",
        )
    fig.subplots_adjust(left=0.02, right=0.98, top=0.9, bottom=0.02, hspace=0.55, wspace=0.08)
    return fig
