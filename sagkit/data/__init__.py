"""Re-ID data: dataset readers, the synthetic dataset, transforms, loaders and samplers.

Entry points: :func:`load_dataset` (market1501, dukemtmc, cuhk03, cuhk01, msmt17, synthetic, folder),
:func:`make_synthetic_reid`, :func:`build_transforms`, :class:`ImageDataset`,
:func:`build_train_loader` / :func:`build_test_loader`, :class:`IdentitySampler`,
:func:`holdout_validation`.  Camera ids are 0-based everywhere; train pids are 0..K-1.
"""
from sagkit.data.cuhk01 import load_cuhk01
from sagkit.data.cuhk03 import load_cuhk03
from sagkit.data.dukemtmc import load_dukemtmc
from sagkit.data.folder import load_folder
from sagkit.data.images import BadImageError, ImageDataset, read_image, verify_images
from sagkit.data.loaders import build_test_loader, build_train_loader, default_num_workers
from sagkit.data.market1501 import load_market1501
from sagkit.data.msmt17 import load_msmt17
from sagkit.data.records import DISTRACTOR_PID, JUNK_PID, DatasetFormatError, ImageRecord, ReIDDataset, relabel
from sagkit.data.registry import DATASETS, load_dataset, register_dataset
from sagkit.data.samplers import IdentitySampler
from sagkit.data.synthetic import SyntheticConfig, load_synthetic, make_synthetic_reid, synthetic_cache_dir
from sagkit.data.transforms import IMAGENET_MEAN, IMAGENET_STD, PAPER_MEAN, PAPER_STD, build_transforms, denormalize
from sagkit.data.validation import holdout_validation

__all__ = [
    "BadImageError", "DATASETS", "DISTRACTOR_PID", "DatasetFormatError", "IMAGENET_MEAN", "IMAGENET_STD",
    "IdentitySampler", "ImageDataset", "ImageRecord", "JUNK_PID", "PAPER_MEAN", "PAPER_STD", "ReIDDataset",
    "SyntheticConfig", "build_test_loader", "build_train_loader", "build_transforms", "default_num_workers",
    "denormalize", "holdout_validation", "load_cuhk01", "load_cuhk03", "load_dataset", "load_dukemtmc", "load_folder",
    "load_market1501", "load_msmt17", "load_synthetic", "make_synthetic_reid", "read_image", "relabel",
    "register_dataset", "synthetic_cache_dir", "verify_images",
]
