"""What a project holds, as plain data for the CLI (`info`, `eval`) and the GUI (task list, sparsity panel):
tasks with their sizes, and for one-head strategies the per-layer sparsity and training FLOPs per task."""

from __future__ import annotations

from typing import Any

from clstudio.engine.records import ProjectDoc, TaskEntry
from clstudio.engine.store import ProjectStore


def task_names_in_order(doc: ProjectDoc) -> list[str]:
    """The trained tasks' names in training order: the column order of R."""
    names = {t["id"]: t["name"] for t in doc["tasks"]}
    return [names[t] for t in doc["R_tasks"]]


def info(store: ProjectStore, class_incremental: bool) -> dict[str, Any]:
    doc = store.doc
    tasks = []
    for t in doc["tasks"]:
        tasks.append(
            {
                "name": t["name"],
                "id": t["id"],
                "classes": t["classes"],
                "images": t["train_images"] + t["val_images"] + (t["eval_images"] if held_out(store, t) else 0),
                "train_images": t["train_images"],
                "eval_images": t["eval_images"],
                "trained": t["trained"],
                "bytes": store.file_size(t.get("weights")),
                "trainable_params": t.get("trainable_params", 0),
                "best_val_acc": t.get("best_val_acc"),
                "source": t["source"],
            }
        )
    return {
        "project": str(store.folder),
        "strategy": doc["strategy"]["name"],
        "backbone": doc["backbone"]["name"],
        "backbone_params": doc["backbone"].get("params"),
        "shared_bytes": store.file_size(doc.get("shared_weights")),
        "image_size": doc["preprocessing"]["image_size"],
        "tasks": tasks,
        "class_incremental": class_incremental,
        "sparsity": sparsity_report(doc) if class_incremental else None,
    }


def held_out(store: ProjectStore, task: TaskEntry) -> bool:
    """Whether the task's accuracies are measured on a test set of its own, not on the images that chose the
    epoch (projects from before the three-way split have no 'eval_on': their index says)."""
    eval_on = task.get("eval_on")
    return eval_on == "test" if eval_on else bool(store.index(task)["test"])


def sparsity_report(doc: ProjectDoc) -> dict[str, Any]:
    """Per-layer weight sparsity after each trained task (layers × tasks, for the heatmap) and the
    training FLOPs used vs the dense method on the same schedule, summed over tasks."""
    by_id = {t["id"]: t for t in doc["tasks"]}
    trained = [by_id[t] for t in doc["R_tasks"]]
    layers = list(trained[-1].get("sparsity", {})) if trained else []
    return {
        "layers": layers,
        "tasks": [
            {
                "name": t["name"],
                "sparsity": [t.get("sparsity", {}).get(k, 0.0) for k in layers],
                "flops_used": t.get("flops_used", 0.0),
                "flops_dense": t.get("flops_dense", 0.0),
            }
            for t in trained
        ],
        "flops_used": sum(t.get("flops_used", 0.0) for t in trained),
        "flops_dense": sum(t.get("flops_dense", 0.0) for t in trained),
        # What the masks reach (None: no masks, or trained before CL Studio measured it)
        "masked_weight_share": trained[-1].get("masked_weight_share") if trained else None,
        "masked_mac_share": trained[-1].get("masked_mac_share") if trained else None,
    }
