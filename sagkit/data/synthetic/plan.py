"""The drawing plan of a dataset: which image goes to which folder, identity, camera and file name.

All randomness of the layout (ids, cameras, frame numbers, per-image seeds) is drawn here from the
dataset seed, so that each image can then be rendered from its own seed alone.
"""
from __future__ import annotations

import numpy as np

from sagkit.data.market1501 import GALLERY_DIR, QUERY_DIR, TRAIN_DIR
from sagkit.data.records import DISTRACTOR_PID, JUNK_PID
from sagkit.data.synthetic.cameras import CameraStyle, make_cameras
from sagkit.data.synthetic.config import SyntheticConfig
from sagkit.data.synthetic.identities import make_identities
from sagkit.data.synthetic.metadata import identity_key


def _camera_cycle(rng: np.random.Generator, n: int, num_cameras: int) -> list[int]:
    """Cameras for ``n`` images of one identity: a random permutation repeated (spreads over cameras)."""
    perm = rng.permutation(num_cameras)
    return [int(perm[i % num_cameras]) for i in range(n)]


def plan_dataset(seed: int, cfg: SyntheticConfig) -> tuple[list[dict], dict, list[CameraStyle]]:
    """Every image to draw (folder, pid, camera, kind, per-image seed) plus identity metadata."""
    rng = np.random.default_rng(seed)
    cams = make_cameras(rng, cfg.num_cameras, cfg.camera_variation)
    train_outfits = make_identities(rng, cfg.num_train_ids, cfg, 0)
    test_outfits = make_identities(rng, cfg.num_test_ids, cfg, 10_000)
    total = cfg.num_train_ids + cfg.num_test_ids
    numbers = np.sort(rng.choice(np.arange(1, min(9999, max(2 * total, 1501)) + 1), size=total, replace=False))
    order = rng.permutation(total)  # interleave train and test ids as in Market-1501
    train_pids = sorted(int(numbers[i]) for i in order[:cfg.num_train_ids])
    test_pids = sorted(int(numbers[i]) for i in order[cfg.num_train_ids:])
    frame = rng.integers(100, 5000, size=cfg.num_cameras)
    plan: list[dict] = []

    def add(folder, pid, cam, kind, outfit_key):
        frame[cam] += int(rng.integers(1, 400))
        name = (identity_key(pid) if pid != JUNK_PID else str(JUNK_PID)) + \
            f"_c{cam + 1}s{int(rng.integers(1, 7))}_{int(frame[cam]):06d}_{int(rng.integers(0, 3)):02d}.jpg"
        plan.append(dict(folder=folder, name=name, pid=pid, cam=cam, kind=kind, outfit=outfit_key,
                         seed=int(rng.integers(2 ** 63 - 1))))

    for pid in train_pids:
        for cam in _camera_cycle(rng, cfg.images_per_id, cfg.num_cameras):
            add(TRAIN_DIR, pid, cam, "person", pid)
    for pid in test_pids:
        n = cfg.query_per_id + cfg.gallery_per_id
        cams_ = _camera_cycle(rng, n, cfg.num_cameras)
        # queries: the first image of distinct cameras (cameras repeat only if query_per_id > num_cameras)
        first_of_cam = {}
        for i, c in enumerate(cams_):
            first_of_cam.setdefault(c, i)
        q_idx = list(first_of_cam.values())[:cfg.query_per_id]
        q_idx += [i for i in range(n) if i not in q_idx][:cfg.query_per_id - len(q_idx)]
        for i, cam in enumerate(cams_):
            add(QUERY_DIR if i in q_idx else GALLERY_DIR, pid, cam, "person", pid)
    for _ in range(cfg.num_distractors):
        add(GALLERY_DIR, DISTRACTOR_PID, int(rng.integers(cfg.num_cameras)), "distractor", None)
    for _ in range(cfg.num_junk):
        add(GALLERY_DIR, JUNK_PID, int(rng.integers(cfg.num_cameras)), "junk", None)
    outfits = {pid: o for pid, o in zip(train_pids + test_pids, train_outfits + test_outfits)}
    return plan, outfits, cams
