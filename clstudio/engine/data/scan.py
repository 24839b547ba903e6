"""Folder → ScanReport: which classes, which images, what was skipped and why.

Layouts accepted:
- flat: ``folder/<class>/**/image`` — split per class into train (65 %), val (15 %: picks the best epoch) and
  test (20 %: what the accuracy matrix is measured on) by a hash of each file's relative path, so a file's
  side of the split never changes between runs (adding files moves none of the existing ones);
- split: ``folder/train/<class>/...`` plus ``val/`` and/or ``test/``. With all three, they are used as given.
  With only one of val/ and test/, that folder is the test set and the epoch is picked on a hash slice of
  train/ instead: an accuracy is never measured on the images that chose the epoch.
Every candidate image is fully decoded (at reduced scale) here, so a broken file is reported now and can
never crash training later.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clstudio.engine.cancel import CancelToken
from clstudio.engine.data.decode import IMAGE_EXTENSIONS, check_image
from clstudio.engine.errors import DatasetError, StorageError
from clstudio.engine.paths import cache_dir
from clstudio.engine.storage import atomic_write_json

SYSTEM_FILES = {".ds_store", "thumbs.db", "desktop.ini", "icon\r", ".directory"}
SYSTEM_FOLDERS = {"__macosx", "$recycle.bin", "system volume information", "@eadir"}
TRAIN_NAMES = ("train", "training")
VAL_NAMES = ("val", "valid", "validation")
TEST_NAMES = ("test", "testing")
TEST_FRACTION = 0.2  # held out: never trained on, never used to pick an epoch; R is measured on it
VAL_FRACTION = 0.15  # picks the best epoch
MIN_IMAGES_PER_CLASS = 5  # below this a class still imports, with a warning: too few to learn or measure
MIN_EVAL_PER_CLASS = 10  # below this, one image more or less right moves a class's accuracy by > 10 points


@dataclass(frozen=True)
class Problem:
    path: str  # relative to the scanned folder
    reason: str


@dataclass
class ScanReport:
    root: str
    name: str
    layout: str  # "flat" | "split"
    classes: list[str]
    train: list[tuple[str, int]]  # (relative path, class index)
    val: list[tuple[str, int]]  # model selection (the best epoch)
    test: list[tuple[str, int]]  # held out, reported; empty only for classes too small to split three ways
    skipped: list[Problem] = field(default_factory=list)  # hidden / system / not-an-image-type: harmless
    problems: list[Problem] = field(default_factory=list)  # image-like files that cannot be used
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, tuple[int, int]]:
        out = {c: [0, 0] for c in self.classes}
        for _, y in self.train:
            out[self.classes[y]][0] += 1
        for _, y in self.eval_split:
            out[self.classes[y]][1] += 1
        return {c: (a, b) for c, (a, b) in out.items()}

    @property
    def eval_split(self) -> list[tuple[str, int]]:
        return self.test or self.val

    @property
    def eval_on(self) -> str:
        """Which images accuracies are measured on: 'test' (held out) or 'val' (they also chose the epoch)."""
        return "test" if self.test else "val"

    def fingerprint(self) -> str:
        """Hash of every used file's relative path and size: tells whether the folder changed since."""
        h = hashlib.sha256()
        for split in (self.train, self.val, self.test):
            for rel, y in split:
                try:
                    size = (Path(self.root) / rel).stat().st_size
                except OSError:
                    size = -1
                h.update(f"{rel}\0{y}\0{size}\n".encode("utf-8", "surrogateescape"))
        return h.hexdigest()[:32]


ProgressFn = Callable[[int, int], None]


class _ScanCache:
    """Per-folder record of each file's (size, mtime) and decode result, in CL Studio's cache folder."""

    MISS = object()

    def __init__(self, root: Path) -> None:
        key = hashlib.sha1(str(root).encode("utf-8", "surrogateescape")).hexdigest()[:20]
        self.path = cache_dir() / "scans" / f"{key}.json"
        self.root = root
        self.files: dict[str, list[Any]] = {}
        self.dirty = False
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            if doc.get("version") == 1 and doc.get("root") == str(root):
                self.files = doc["files"]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no cache, or a damaged one: check every file

    def _stamp(self, rel: str) -> list[int] | None:
        try:
            st = (self.root / rel).stat()
        except OSError:
            return None
        return [st.st_size, st.st_mtime_ns]

    def lookup(self, rel: str) -> Any:
        entry = self.files.get(rel)
        stamp = self._stamp(rel)
        if entry is None or stamp is None or entry[:2] != stamp:
            return self.MISS
        return entry[2]

    def store(self, rel: str, reason: str | None) -> None:
        stamp = self._stamp(rel)
        if stamp is not None:
            self.files[rel] = [*stamp, reason]
            self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            atomic_write_json(self.path, {"version": 1, "root": str(self.root), "files": self.files})
        except (OSError, StorageError):
            pass  # a cache that cannot be written only costs time next scan


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.lower() in SYSTEM_FILES or name.startswith("._")


def _list_images(folder: Path, root: Path, skipped: list[Problem]) -> list[str]:
    """Relative paths of image files under folder (recursively), following folder links once each."""
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            st = current.stat()
        except OSError as e:
            skipped.append(Problem(_rel(current, root), f"cannot open folder: {e.strerror or e}"))
            continue
        if (st.st_dev, st.st_ino) in seen:
            skipped.append(Problem(_rel(current, root), "folder link loop (visited already)"))
            continue
        seen.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as e:
            skipped.append(Problem(_rel(current, root), f"cannot list folder: {e.strerror or e}"))
            continue
        for entry in entries:
            path = Path(entry.path)
            if _is_hidden(entry.name) or entry.name.lower() in SYSTEM_FOLDERS:
                skipped.append(Problem(_rel(path, root), "hidden or system file"))
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                stack.append(path)
            elif path.suffix.lower() in IMAGE_EXTENSIONS:
                found.append(_rel(path, root))
            else:
                skipped.append(Problem(_rel(path, root), f"not an image type ({path.suffix or 'no extension'})"))
    return sorted(found)


def images_in(folder: str | Path) -> list[Path]:
    """Every image file under a folder, recursively, in a stable order (hidden and system files left out)."""
    root = Path(folder)
    return [root / rel for rel in _list_images(root, root, [])]


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(
            p
            for p in folder.iterdir()
            if p.is_dir() and not _is_hidden(p.name) and p.name.lower() not in SYSTEM_FOLDERS
        )
    except OSError as e:
        raise DatasetError(f"Cannot read folder {folder}: {e.strerror or e}") from None


def _find(folders: list[Path], names: tuple[str, ...]) -> Path | None:
    return next((p for p in folders if p.name.lower() in names), None)


def _hash_fraction(rel: str) -> float:
    digest = hashlib.sha1(rel.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


HASH_SPLIT_MIN = 100  # from here on, hash thresholds land within a few images of the shares; below, by rank


def _hash_split(files: list[str], test: float, val: float) -> dict[str, str]:
    """rel → 'test' | 'val' for one class's files held out of training. From HASH_SPLIT_MIN images on, by
    thresholds on the path hash (hash < test: test; the next ``val`` of the range: val), so adding files
    never moves an existing one. A smaller class would get 0 or 3 held-out images of 5 by chance, so it is
    split by hash rank into exact shares instead: at least one test image (from 2 images on) and one val
    image (from 3 on), always keeping one to train on."""
    ranked = sorted(files, key=_hash_fraction)
    n = len(ranked)
    if n >= HASH_SPLIT_MIN:
        part = {r: "test" for r in ranked if _hash_fraction(r) < test}
        part.update({r: "val" for r in ranked if test <= _hash_fraction(r) < test + val})
        return part
    n_test = max(1, round(test * n)) if test and n >= 2 else 0
    n_val = max(1, round(val * n)) if n >= 3 or (not test and n >= 2) else 0
    return {r: ("test" if i < n_test else "val") for i, r in enumerate(ranked[: n_test + n_val])}


def scan_folder(
    folder: str | Path,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    verify: bool = True,
    use_cache: bool = True,
) -> ScanReport:
    root = Path(folder).expanduser()
    if not root.exists():
        raise DatasetError(f"Folder not found: {root}")
    if not root.is_dir():
        raise DatasetError(f"{root} is a file. Drop a folder that holds one subfolder per class.")
    root = root.resolve()
    subs = _subfolders(root)
    train_dir, val_dir, test_dir = _find(subs, TRAIN_NAMES), _find(subs, VAL_NAMES), _find(subs, TEST_NAMES)
    skipped: list[Problem] = []
    layout = "split" if train_dir and (val_dir or test_dir) else "flat"
    class_root = train_dir if layout == "split" else root
    assert class_root is not None  # the split layout has a train folder by definition
    class_dirs = _subfolders(class_root)
    if not class_dirs:
        loose = [p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS] if root.is_dir() else []
        hint = f" It holds {len(loose)} images directly;" if loose else ""
        raise DatasetError(
            f"{root} has no class subfolders.{hint} Put the images of each class in a subfolder named after "
            f"the class (e.g. {root.name}/cat/*.jpg, {root.name}/dog/*.jpg)."
        )
    classes = [p.name for p in class_dirs]
    if len(classes) < 2:
        raise DatasetError(
            f"{class_root} has only one class ('{classes[0]}'). A task needs at least two classes to tell apart."
        )

    per_split: dict[str, dict[int, list[str]]] = {}
    split_dirs: dict[str, Path | None] = (
        {"train": class_root} if layout == "flat" else {"train": train_dir, "val": val_dir, "test": test_dir}
    )
    for split, base in split_dirs.items():
        if base is None:
            continue
        per_split[split] = {}
        for sub in _subfolders(base):
            if sub.name not in classes:
                skipped.append(Problem(_rel(sub, root), f"class '{sub.name}' is not in {class_root.name}/; ignored"))
                continue
            per_split[split][classes.index(sub.name)] = _list_images(sub, root, skipped)
        for stray in sorted(p for p in base.iterdir() if p.is_file()):
            if not _is_hidden(stray.name):
                skipped.append(Problem(_rel(stray, root), "file outside any class folder"))
            else:
                skipped.append(Problem(_rel(stray, root), "hidden or system file"))

    # Verify every candidate by decoding it; threads, because PIL releases the GIL while decoding. Results are
    # cached per file (size + mtime), so scanning the same large folder again takes seconds, not minutes.
    candidates = [rel for split in per_split.values() for files in split.values() for rel in files]
    problems: list[Problem] = []
    bad: set[str] = set()
    if cancel is not None:
        cancel.raise_if_cancelled()
    if verify and candidates:
        cache = _ScanCache(root) if use_cache else None
        todo: list[str] = []
        for rel in candidates:
            cached: Any = cache.lookup(rel) if cache else _ScanCache.MISS  # MISS, "" (good) or the reason
            if cached is _ScanCache.MISS:
                todo.append(rel)
            elif cached:
                problems.append(Problem(rel, cached))
                bad.add(rel)
        done = len(candidates) - len(todo)
        workers = max(1, min(8, os.cpu_count() or 1))
        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for rel, reason in zip(todo, pool.map(lambda r: check_image(root / r), todo), strict=True):
                    done += 1
                    if cache:
                        cache.store(rel, reason)
                    if reason:
                        problems.append(Problem(rel, reason))
                        bad.add(rel)
                    if progress and (done % 16 == 0 or done == len(candidates)):
                        progress(done, len(candidates))
                    if cancel is not None and cancel.cancelled:
                        pool.shutdown(wait=True, cancel_futures=True)
                        cancel.raise_if_cancelled()
            if progress and not todo:
                progress(done, len(candidates))
        finally:
            if cache:
                cache.save()  # also after a cancel: the files checked so far need not be checked again
        order = {rel: i for i, rel in enumerate(candidates)}
        problems.sort(key=lambda p: order[p.path])

    def good(split: str) -> dict[int, list[str]]:
        return {y: [r for r in files if r not in bad] for y, files in per_split.get(split, {}).items()}

    train_files = good("train")
    empty = [classes[y] for y in range(len(classes)) if not train_files.get(y)]
    if empty:
        raise DatasetError(
            f"In {class_root}, class folder(s) {', '.join(repr(c) for c in empty)} hold no usable image. "
            f"Add images or remove the folder."
        )
    train: list[tuple[str, int]] = []
    val: list[tuple[str, int]] = []
    test: list[tuple[str, int]] = []
    warnings: list[str] = []
    given_val, given_test = good("val"), good("test")
    if layout == "split" and given_val and given_test:
        train = [(r, y) for y, files in sorted(train_files.items()) for r in files]
        val = [(r, y) for y, files in sorted(given_val.items()) for r in files]
        test = [(r, y) for y, files in sorted(given_test.items()) for r in files]
    else:
        # One held-out folder given (it is the test set), or none: the rest is carved from the training images.
        held_out = given_test or given_val
        for y, files in sorted(train_files.items()):
            if layout == "split":
                part = _hash_split(files, 0.0, VAL_FRACTION / (1 - TEST_FRACTION))
                test += [(r, y) for r in held_out.get(y, [])]
            else:
                part = _hash_split(files, TEST_FRACTION, VAL_FRACTION)
                test += [(r, y) for r in files if part.get(r) == "test"]
            val += [(r, y) for r in files if part.get(r) == "val"]
            train += [(r, y) for r in files if r not in part]
    report = ScanReport(str(root), root.name, layout, classes, train, val, test, skipped, problems, warnings)
    n_val = {c: 0 for c in classes}
    for _, y in val:
        n_val[classes[y]] += 1
    sizes = []
    for c, (n_train, n_eval) in report.counts().items():
        total = n_train + n_val[c] + (n_eval if report.test else 0)
        sizes.append(total)
        if total < MIN_IMAGES_PER_CLASS:
            warnings.append(f"class '{c}' has only {total} images; accuracy on it will be noisy")
        if n_eval == 0:
            warnings.append(f"class '{c}' has no held-out image; its accuracy cannot be measured")
    thin = {c: n for c, (_, n) in report.counts().items() if 0 < n < MIN_EVAL_PER_CLASS}
    if thin:
        worst = ", ".join(f"{c}: {n}" for c, n in list(thin.items())[:4]) + (", …" if len(thin) > 4 else "")
        warnings.append(
            f"accuracy will rest on fewer than {MIN_EVAL_PER_CLASS} {report.eval_on} images per class ({worst}): "
            f"each image moves a class's accuracy by over 10 points"
        )
    if report.eval_on == "val":
        warnings.append(
            "too few images to hold a test set out: accuracy is measured on the images that chose the epoch"
        )
    if max(sizes) >= 3 * max(1, min(sizes)):
        warnings.append(f"classes are imbalanced ({min(sizes)} to {max(sizes)} images per class)")
    return report
