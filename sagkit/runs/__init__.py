"""Run folders and their life cycle: the folder and its lock, the results record, the per-query file, evaluating
and exporting a finished run."""
