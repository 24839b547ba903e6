"""Project bundles: one .zip to move a project between machines.

Export writes project.json, the task indexes, the weights and the history (not in-progress checkpoints).
Import never writes outside the destination: every member name is checked (no absolute paths, no '..',
no drive letters, no links, no duplicates), sizes are bounded against zip bombs, and the project is
extracted to a temporary folder beside the destination, validated by the normal loader, then moved into
place — a bad bundle leaves nothing behind.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from clstudio.engine import project_file
from clstudio.engine.errors import ProjectError
from clstudio.engine.storage import atomic_write_bytes

MAX_TOTAL_BYTES = 8 * 2**30  # far above any CL Studio project (CLR tasks are KB to MB), far below a bomb
MAX_RATIO = 200  # compression ratio beyond which a member is a bomb, not weights
MAX_MEMBERS = 100_000
INCLUDE = ("project.json", "history.jsonl", "tasks/", "weights/", "evals/")


def export_project(folder: str | Path, out: str | Path) -> Path:
    folder, out = Path(folder), Path(out)
    project_file.load(folder)  # only a valid project is exported
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()]
    chosen = [p for p in files if any(p.relative_to(folder).as_posix().startswith(i) for i in INCLUDE)]
    with tempfile.SpooledTemporaryFile(max_size=64 * 2**20) as buf:
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for p in chosen:
                rel = p.relative_to(folder).as_posix()
                if rel.endswith(".tmp") or "/." in "/" + rel:
                    continue
                z.write(p, rel)
        buf.seek(0)
        atomic_write_bytes(out, buf.read())
    return out


def _safe_member(info: zipfile.ZipInfo) -> PurePosixPath:
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if name.startswith("/") or path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise ProjectError(f"Refusing bundle: member '{info.filename}' points outside the project folder.")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ProjectError(f"Refusing bundle: member '{info.filename}' is a link.")
    return path


def import_project(bundle: str | Path, dest: str | Path) -> Path:
    bundle, dest = Path(bundle), Path(dest).expanduser()
    if dest.exists() and any(dest.iterdir()):
        raise ProjectError(f"{dest} is not empty; import into a new or empty folder.")
    try:
        z = zipfile.ZipFile(bundle)
    except (zipfile.BadZipFile, OSError) as e:
        raise ProjectError(f"{bundle} is not a CL Studio bundle (not a readable zip: {e}).") from None
    with z:
        infos = z.infolist()
        if len(infos) > MAX_MEMBERS:
            raise ProjectError(f"Refusing bundle: {len(infos)} files is more than a project has.")
        seen: set[str] = set()
        total = 0
        for info in infos:
            path = _safe_member(info)
            key = path.as_posix().lower()
            if key in seen:
                raise ProjectError(f"Refusing bundle: '{info.filename}' appears twice.")
            seen.add(key)
            total += info.file_size
            if total > MAX_TOTAL_BYTES or (
                info.compress_size and info.file_size / info.compress_size > MAX_RATIO and info.file_size > 2**20
            ):
                raise ProjectError("Refusing bundle: it would unpack to far more data than a project holds.")
        if "project.json" not in seen:
            raise ProjectError(f"{bundle} holds no project.json: not a CL Studio bundle.")
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.import-", dir=dest.parent))
        try:
            for info in infos:
                target = staging.joinpath(*_safe_member(info).parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 2**20)
            project_file.load(staging)  # the normal validation, before anything reaches dest
            if dest.exists():
                dest.rmdir()
            staging.rename(dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return dest
