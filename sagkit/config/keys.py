"""Run identity: which config fields name a run folder (a readable prefix plus a hash of the fields that change
results), so that an identical config finds its finished run instead of training again."""

from __future__ import annotations

import hashlib
import json

__all__ = ["EXECUTION_FIELDS", "LEGACY_VALUES", "result_fields", "run_key", "run_name"]

# Fields that say where or how fast a run executes, not what it computes. They are left out of the run
# key, so the same experiment started on another machine (other device, workers, paths) reuses the run.
EXECUTION_FIELDS = frozenset(
    {
        "name",
        "runs_dir",
        "data_root",
        "device",
        "amp",
        "channels_last",
        "compile",
        "deterministic",
        "num_workers",
        "num_threads",
        "retain_memory",
        "eval_batch_size",
    }
)

# Fields added after runs were already made, each with the value that reproduces those runs. A config read
# back from a run folder that lacks such a field gets this value (``from_run``), and a field at this value is
# left out of the run key, so adding a field never orphans the runs made before it.
LEGACY_VALUES = {
    "bn_stats": "shared",
    "neck": "paper",
    "last_stride": 2,
    "pad_crop": 0,
    "optimizer": "sgd",
    "lr_schedule": "step",
    "lr_milestones": (),
    "warmup_epochs": 0,
    "warmup_factor": 0.01,
    "losses": {"ce": 1.0},
    "triplet_margin": 0.3,
    "center_alpha": 0.5,
    "sag_output": "replace",
    "input_scale": 1,
    "sync_bn": False,
}


def result_fields(fields: dict) -> dict:
    """The fields of a config (``to_dict()``) that change what a run computes, JSON-ready: all but
    ``EXECUTION_FIELDS``, and none at its ``LEGACY_VALUES`` value (``bn_stats`` and ``sag_output`` count as
    legacy where they have no effect)."""
    kept = {k: v for k, v in fields.items() if k not in EXECUTION_FIELDS}
    if not fields["depths"] or not fields["share_weights"]:
        kept["bn_stats"] = LEGACY_VALUES["bn_stats"]
    if not fields["depths"]:
        kept["sag_output"] = LEGACY_VALUES["sag_output"]
    for name, value in LEGACY_VALUES.items():
        if kept.get(name) == value:
            del kept[name]
    return json.loads(json.dumps(kept))


def run_key(fields: dict) -> str:
    """Short hash (10 hex digits) of ``result_fields(fields)``."""
    blob = json.dumps(result_fields(fields), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def run_name(fields: dict) -> str:
    """``name`` if set, else e.g. ``synthetic-efficientnet_lite0-D4-<hash>`` or ``...-baseline-<hash>``."""
    if fields["name"]:
        return str(fields["name"])
    depths = fields["depths"]
    arch = "D" + "-".join(str(d) for d in depths) if depths else "baseline"
    return f"{fields['dataset']}-{fields['backbone']}-{arch}-{run_key(fields)}"
