"""Experiment configuration: ``ExperimentConfig`` (schema), the check of every field (validation), run keys
(keys) and named profiles (profiles). Torch-free: the command line checks a config before torch loads."""

from sagkit.config.keys import EXECUTION_FIELDS, LEGACY_VALUES
from sagkit.config.profiles import (CPU_BACKBONES, PROFILE_COSTS, PROFILES, PROFILES_DOC, TINY_SYNTHETIC, get_profile,
                                    sized_for_gpu)
from sagkit.config.schema import ExperimentConfig

__all__ = [
    "ExperimentConfig",
    "PROFILES",
    "PROFILES_DOC",
    "PROFILE_COSTS",
    "CPU_BACKBONES",
    "TINY_SYNTHETIC",
    "sized_for_gpu",
    "get_profile",
    "EXECUTION_FIELDS",
    "LEGACY_VALUES",
]
