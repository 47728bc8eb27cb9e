"""Re-identification evaluation: CMC/mAP/mINP, distance matrices, k-reciprocal re-ranking, feature extraction."""

from sagkit.evaluation.distance import compute_distance_matrix
from sagkit.evaluation.features import extract_features
from sagkit.evaluation.intervals import rank_interval, wilson_interval
from sagkit.evaluation.metrics import PROTOCOLS, QueryResults, evaluate, evaluate_queries
from sagkit.evaluation.multi_query import pool_multi_query
from sagkit.evaluation.rerank.k_reciprocal import re_rank, re_rank_features

__all__ = ["PROTOCOLS", "QueryResults", "compute_distance_matrix", "evaluate", "evaluate_queries", "extract_features", "pool_multi_query", "rank_interval",
           "re_rank", "re_rank_features", "wilson_interval"]
