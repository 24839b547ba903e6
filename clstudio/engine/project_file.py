"""project.json: the one file that says what a project is. Validated on every open, so a damaged or
hand-edited file gives a clear error instead of a traceback deep inside training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clstudio import __version__
from clstudio.engine.errors import ProjectError
from clstudio.engine.records import BackboneSpec, ProjectDoc, StrategySpec
from clstudio.engine.storage import FORMAT_VERSION, atomic_write_json, read_json

PROJECT_FILE = "project.json"
MAGIC = "clstudio-project"


def _expect(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise ProjectError(f"{where}: missing '{key}'. The project file is damaged.")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ProjectError(
            f"{where}: '{key}' should be {names}, found {type(value).__name__}. The project file is damaged."
        )
    return value


def _safe_relpath(value: str, where: str) -> str:
    p = Path(value)
    if p.is_absolute() or ".." in p.parts:
        raise ProjectError(f"{where}: path '{value}' points outside the project folder; refusing to use it.")
    return value


def validate(doc: Any, path: Path) -> dict[str, Any]:
    where = str(path)
    if not isinstance(doc, dict) or doc.get("format") != MAGIC:
        raise ProjectError(f"{where} is not a CL Studio project file.")
    version = _expect(doc, "format_version", int, where)
    if version > FORMAT_VERSION:
        raise ProjectError(
            f"{where} was written by a newer CL Studio (project format {version}; this version reads up to "
            f"{FORMAT_VERSION}). Update CL Studio to open it."
        )
    if version < 1:
        raise ProjectError(f"{where}: unknown project format version {version}.")
    backbone = _expect(doc, "backbone", dict, where)
    _expect(backbone, "name", str, where + " backbone")
    _expect(backbone, "weights", str, where + " backbone")
    _expect(backbone, "fingerprint", str, where + " backbone")
    strategy = _expect(doc, "strategy", dict, where)
    _expect(strategy, "name", str, where + " strategy")
    _expect(strategy, "config", dict, where + " strategy")
    prep = _expect(doc, "preprocessing", dict, where)
    size = _expect(prep, "image_size", int, where + " preprocessing")
    if not 8 <= size <= 4096:
        raise ProjectError(f"{where}: image_size {size} is out of range (8-4096).")
    for key in ("mean", "std"):
        seq = _expect(prep, key, list, where + " preprocessing")
        if len(seq) != 3 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in seq):
            raise ProjectError(f"{where}: preprocessing {key} must be three numbers.")
    _expect(backbone, "source", str, where + " backbone")
    if backbone.get("weights_file") is not None:
        _expect(backbone, "weights_file", str, where + " backbone")
    if backbone.get("params") is not None:
        _expect(backbone, "params", int, where + " backbone")
    for key in ("shared_weights", "router_weights"):
        if doc.get(key) is not None:
            _safe_relpath(_expect(doc, key, str, where), where)
    tasks = _expect(doc, "tasks", list, where)
    ids, names = set(), set()
    for i, task in enumerate(tasks):
        tw = f"{where} task {i}"
        tid = _expect(task, "id", str, tw)
        name = _expect(task, "name", str, tw)
        classes = _expect(task, "classes", list, tw)
        if len(classes) < 2 or not all(isinstance(c, str) for c in classes):
            raise ProjectError(f"{tw}: 'classes' must be a list of at least two names. The project file is damaged.")
        trained = _expect(task, "trained", bool, tw)
        _expect(task, "source", str, tw)
        _expect(task, "fingerprint", str, tw)
        _safe_relpath(_expect(task, "index", str, tw), tw)
        for key in ("train_images", "val_images", "eval_images"):
            if _expect(task, key, int, tw) < 0:
                raise ProjectError(f"{tw}: '{key}' cannot be negative. The project file is damaged.")
        if trained or task.get("weights") is not None:
            _safe_relpath(_expect(task, "weights", str, tw), tw)
        for key in ("trainable_params", "best_epoch", "epochs_run", "skipped_images"):
            if key in task:
                _expect(task, key, int, tw)
        for key in ("best_val_acc", "seconds"):
            if key in task:
                _expect(task, key, (int, float), tw)
        if tid in ids or name in names:
            raise ProjectError(f"{where}: two tasks share the id '{tid}' or name '{name}'.")
        ids.add(tid)
        names.add(name)
    order = _expect(doc, "R_tasks", list, where)
    trained_ids = {t["id"] for t in tasks if t["trained"]}
    if not all(isinstance(t, str) and t in trained_ids for t in order):
        raise ProjectError(f"{where}: the accuracy matrix does not match the task list.")
    _check_matrix(_expect(doc, "R", list, where), len(order), where)
    if "R_class_il" in doc:
        _check_matrix(_expect(doc, "R_class_il", list, where), len(order), where)
    if "R_evaluations" in doc:
        rels = _expect(doc, "R_evaluations", list, where)
        if len(rels) != len(order) or not all(r is None or isinstance(r, str) for r in rels):
            raise ProjectError(f"{where}: the per-image evaluation records do not match the accuracy matrix.")
    return doc


def _check_matrix(R: list, tasks: int, where: str) -> None:
    """Lower-triangular rows, one per trained task, values in [0, 1]."""
    if len(R) != tasks:
        raise ProjectError(f"{where}: the accuracy matrix does not match the task list.")
    for i, row in enumerate(R):
        if not isinstance(row, list) or len(row) != i + 1:
            raise ProjectError(f"{where}: accuracy matrix row {i} should have {i + 1} values.")
        for v in row:
            if not isinstance(v, int | float) or isinstance(v, bool) or not 0.0 <= v <= 1.0:  # NaN fails too
                raise ProjectError(f"{where}: accuracy matrix values must be numbers between 0 and 1.")


def new_document(backbone: BackboneSpec, strategy: StrategySpec, preprocessing: dict[str, Any]) -> ProjectDoc:
    return {
        "format": MAGIC,
        "format_version": FORMAT_VERSION,
        "app_version": __version__,
        "backbone": backbone,
        "strategy": strategy,
        "preprocessing": preprocessing,
        "tasks": [],
        "shared_weights": None,
        "R": [],
        "R_tasks": [],
    }


def load(folder: Path) -> dict[str, Any]:
    path = folder / PROJECT_FILE
    if not path.exists():
        raise ProjectError(f"No CL Studio project at {folder} (no {PROJECT_FILE}).")
    return validate(read_json(path), path)


def save(folder: Path, doc: ProjectDoc | dict[str, Any]) -> None:
    atomic_write_json(folder / PROJECT_FILE, doc)
