"""Atomic, self-describing, pickle-free persistence.

Every write goes to a temporary file in the same folder, is fsync'ed, then renamed over the target:
a crash at any moment leaves either the old file or the new one, never half of one. Weights are
safetensors (a JSON header plus raw bytes: loading can never run code).
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from clstudio.engine.errors import CheckpointError, ProjectError, StorageError

FORMAT_VERSION = 1
_read_only: str | None = None  # why this process must not write (a non-zero rank of a distributed run)


def forbid_writes(reason: str | None) -> None:
    """From now on any write through this module is a bug, and fails loudly instead of racing rank 0
    (None: allowed again)."""
    global _read_only
    _read_only = reason


def _check_writable(path: Path) -> None:
    if _read_only is not None:
        raise RuntimeError(f"{path} was about to be written by {_read_only}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write-temp, fsync, rename. A failure (disk full, read-only folder...) leaves the old file as it was
    and raises StorageError with a message a person can act on."""
    path = Path(path)
    _check_writable(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise StorageError(_write_failure(path, e)) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    _fsync_dir(path.parent)


def _write_failure(path: Path, e: OSError) -> str:
    hint = {
        errno.ENOSPC: "The disk is full: free some space and try again.",
        errno.EROFS: "The folder is on a read-only volume.",
        errno.EACCES: "You do not have permission to write there.",
        errno.EPERM: "You do not have permission to write there.",
        errno.EDQUOT: "Your disk quota is used up.",
    }.get(e.errno or 0, "")
    return f"Could not save {path}: {e.strerror or e}. {hint} Nothing already saved was changed.".replace("  ", " ")


def _fsync_dir(folder: Path) -> None:
    # The rename itself is durable only once the directory entry is flushed (POSIX; a no-op on Windows).
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProjectError(f"Missing file: {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProjectError(f"{path} is not valid JSON ({e}). The project may be damaged.") from None


def append_jsonl(path: Path, record: Mapping[str, Any]) -> None:
    """Append one line. A crash can at worst leave a torn last line, which ``read_jsonl`` skips."""
    _check_writable(Path(path))
    line = json.dumps(record, sort_keys=False) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    if not Path(path).exists():
        return records
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn line from a crash mid-append
    return records


def save_tensors(path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> None:
    """Write a safetensors file atomically. Metadata (format version, task, strategy...) lives in the
    file's own header so the file describes itself."""
    meta = {"format_version": str(FORMAT_VERSION), **{k: str(v) for k, v in metadata.items()}}
    # Sorted keys: the same tensors always give the same bytes, so files can be compared by hash.
    plain = {k: tensors[k].detach().to("cpu").contiguous() for k in sorted(tensors)}
    atomic_write_bytes(path, st_save(plain, metadata=meta))


def read_metadata(path: Path) -> dict[str, str] | None:
    """A safetensors file's own header metadata without reading its tensors; None when the file is missing
    or not readable as one (a reader that only wants to know what a file is must not fail on it)."""
    try:
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            if not 0 < header_len < 2**24:
                return None
            header = json.loads(f.read(header_len))
    except (OSError, ValueError):
        return None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return dict(metadata) if isinstance(metadata, dict) else {}


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file; never unpickles. Raises CheckpointError with the path on any problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"Weight file missing: {path}") from None
    except OSError as e:
        raise CheckpointError(f"Cannot read weight file {path}: {e.strerror or e}") from None
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
    except (SafetensorError, ValueError, json.JSONDecodeError, OverflowError) as e:
        raise CheckpointError(
            f"{path} is not a valid safetensors weight file ({e}). It may be damaged or not from CL Studio."
        ) from None
    metadata = header.get("__metadata__") or {}
    version = int(metadata.get("format_version", "0") or 0)
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer CL Studio (format {version}, this one reads {FORMAT_VERSION})."
        )
    return tensors, dict(metadata)
