"""Run folders and their life cycle: ``train(config)`` (``training``), the folder and its lock, the results
record, the per-query file, evaluating and exporting a finished run."""

from sagkit.runs.training import train

__all__ = ["train"]
