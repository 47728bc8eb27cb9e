"""Re-identification evaluation: CMC/mAP/mINP, distance matrices, k-reciprocal re-ranking, feature extraction."""

from .distance import compute_distance_matrix
from .features import extract_features
from .intervals import rank_interval, wilson_interval
from .metrics import PROTOCOLS, QueryResults, evaluate, evaluate_queries
from .multi_query import pool_multi_query
from .rerank import re_rank, re_rank_features

__all__ = ["PROTOCOLS", "QueryResults", "compute_distance_matrix", "evaluate", "evaluate_queries", "extract_features", "pool_multi_query", "rank_interval",
           "re_rank", "re_rank_features", "wilson_interval"]
