"""Training losses as parts: cross-entropy with label smoothing, batch-hard triplet, center loss, and the
criterion that sums those a config names (``ExperimentConfig.losses``)."""
from sagkit.losses.center import CenterLoss
from sagkit.losses.cross_entropy import CrossEntropyLoss
from sagkit.losses.registry import LOSS_NAMES, Criterion, build_criterion
from sagkit.losses.triplet import TripletLoss, hardest_pairs, pairwise_distances

__all__ = ["CenterLoss", "CrossEntropyLoss", "Criterion", "LOSS_NAMES", "TripletLoss", "build_criterion",
           "hardest_pairs", "pairwise_distances"]
