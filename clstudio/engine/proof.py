"""The zero-forgetting proof of per-task strategies (CLR, linear probe): when a task is trained, its weight
file's digest, a digest of each of its tensors and a digest of its answers on its evaluation images are
recorded; after every later task (and on ``clstudio verify``) they are recomputed and compared, so "nothing
was forgotten" is a checked fact with the digest to show, or names exactly what changed.

Answers are compared by digest of the float32 probabilities first (bit-identical: the same device and
threads give the same bits); when that differs but every predicted class is the same and every stored
probability within ``ROUNDING`` (another device or thread count), the verdict says so instead of claiming
bits it cannot show."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from clstudio.engine.evaluate import TaskPredictions

ROUNDING = 2e-4  # stored probabilities carry 4 decimals (±5e-5); kernels on other hardware move the last bits
IDENTICAL, WITHIN_ROUNDING, CHANGED = "identical", "within float rounding", "changed"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tensor_digests(tensors: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """A short digest per tensor of dtype, shape and bytes: what lets a check name the tensor that changed."""
    out = {}
    for name, t in sorted(tensors.items()):
        t = t.detach().cpu().contiguous()
        h = hashlib.sha256(f"{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        out[name] = h.hexdigest()[:16]
    return out


def record_for(weights_file: Path, tensors: Mapping[str, torch.Tensor], preds: TaskPredictions) -> dict[str, Any]:
    """What a task's entry keeps when it is trained (its ``proof``)."""
    return {
        "weights_sha256": file_sha256(weights_file),
        "tensors": tensor_digests(tensors),
        "probs_sha256": preds.probs_sha256,
        "images": preds.readable,
    }


def compare_answers(first: Mapping[str, Any], now: TaskPredictions) -> str:
    """``first``: the task's entry in the evaluation record written when it was trained."""
    if first["probs_sha256"] == now.probs_sha256:
        return IDENTICAL
    if list(first["pred"]) != list(now.pred):
        return CHANGED
    worst = max((abs(a - b) for a, b in zip(first["p_pred"], now.p_pred, strict=True)), default=0.0)
    return WITHIN_ROUNDING if worst <= ROUNDING else CHANGED


def compare_weights(proof: Mapping[str, Any], weights_file: Path, load: Any) -> dict[str, Any]:
    """The weight file against its proof: ``{"weights": "unchanged"|"changed"|"missing", "changed_tensors",
    "missing_tensors", "extra_tensors"}``; the tensors are only read when the file's digest differs.
    ``load``: reads a weight file to a dict of tensors (storage.load_tensors without its metadata)."""
    if not weights_file.exists():
        return {"weights": "missing", "changed_tensors": [], "missing_tensors": [], "extra_tensors": []}
    if file_sha256(weights_file) == proof["weights_sha256"]:
        return {"weights": "unchanged", "changed_tensors": [], "missing_tensors": [], "extra_tensors": []}
    try:
        now = tensor_digests(load(weights_file))
    except Exception as e:  # noqa: BLE001 - a damaged file is a finding, not a crash
        return {"weights": f"unreadable ({e})", "changed_tensors": [], "missing_tensors": [], "extra_tensors": []}
    then = proof["tensors"]
    return {
        "weights": "changed",
        "changed_tensors": sorted(k for k in then if k in now and now[k] != then[k]),
        "missing_tensors": sorted(set(then) - set(now)),
        "extra_tensors": sorted(set(now) - set(then)),
    }


def verdict(weights: Mapping[str, Any], answers: str | None) -> str:
    if weights["weights"] == "unchanged" and answers in (IDENTICAL, None):
        return "unchanged since trained"
    if weights["weights"] == "unchanged" and answers == WITHIN_ROUNDING:
        return "unchanged since trained (answers equal within float rounding)"
    parts = []
    if weights["weights"] != "unchanged":
        named = [
            *(f"{k} changed" for k in weights["changed_tensors"]),
            *(f"{k} missing" for k in weights["missing_tensors"]),
            *(f"{k} added" for k in weights["extra_tensors"]),
        ]
        detail = f": {', '.join(named[:6])}{' …' if len(named) > 6 else ''}" if named else ""
        parts.append(f"weight file {weights['weights']}{detail}")
    if answers == CHANGED:
        parts.append("its answers on its evaluation images changed")
    return "; ".join(parts)


def checks(store: Any, preds: Mapping[str, TaskPredictions], only: set[str] | None = None) -> dict[str, Any]:
    """The proof of every trained task that has one (``only``: of these ids), against answers just computed
    (``preds``, by task id) and the weight files as they are now. ``store``: the project's ProjectStore."""
    from clstudio.engine.storage import load_tensors

    out = {}
    for row, tid in enumerate(store.doc["R_tasks"]):
        task = next(t for t in store.doc["tasks"] if t["id"] == tid)
        if "proof" not in task or (only is not None and tid not in only):
            continue
        record = store.evaluation(row)
        first = record["tasks"].get(tid) if record else None
        answers = compare_answers(first, preds[tid]) if first is not None and tid in preds else None
        weights = compare_weights(task["proof"], store.folder / task["weights"], lambda p: load_tensors(p)[0])
        out[tid] = {**weights, "answers": answers, "verdict": verdict(weights, answers)}
    return out
