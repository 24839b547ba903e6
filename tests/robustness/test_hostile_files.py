"""Loading never runs code, and bundles never write outside the project folder."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch

from clstudio.engine import events as ev
from clstudio.engine.bundle import export_project, import_project
from clstudio.engine.data.synthetic import make_task_folder
from clstudio.engine.errors import CLStudioError, ProjectError
from clstudio.engine.project import Project


class Payload:
    """Unpickling this would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def project(tmp_path):
    data = make_task_folder(tmp_path / "d", ("red", "green"), 10, size=32)
    p = Project.create(tmp_path / "p", strategy="finetune", backbone="tiny", config={"epochs": 2})
    p.add_task(data)
    p.train_pending()
    return p


@pytest.mark.parametrize(
    "target", ["weights/task-t1.safetensors", "weights/anchor.safetensors", "weights/shared-1.safetensors"]
)
def test_pickle_payload_in_any_referenced_weight_file_never_runs(project, tmp_path, target):
    marker = tmp_path / "pwned"
    torch.save({"x": Payload(marker)}, project.folder / target)
    with pytest.raises(CLStudioError, match="not a valid safetensors"):
        Project.open(project.folder).strategy  # noqa: B018
    assert not marker.exists()


def test_pickle_payload_as_checkpoint_is_ignored_not_run(tmp_path):
    data = make_task_folder(tmp_path / "d", ("red", "green"), 10, size=32)
    p = Project.create(tmp_path / "p", backbone="tiny", config={"epochs": 2})
    p.add_task(data)
    marker = tmp_path / "pwned"
    ckpt = p.checkpoint_path(p.tasks[0])
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"x": Payload(marker)}, ckpt)
    seen = []
    p.train_task(p.tasks[0]["name"], observers=[seen.append], resume=True)
    assert not marker.exists()
    assert not any(isinstance(e, ev.TaskResumed) for e in seen)  # a bad checkpoint means: start over


def test_export_import_round_trip_gives_identical_predictions(project, tmp_path):
    bundle = export_project(project.folder, tmp_path / "p.zip")
    names = zipfile.ZipFile(bundle).namelist()
    assert "project.json" in names and not any(n.startswith("checkpoints/") for n in names)
    copy = import_project(bundle, tmp_path / "copy")
    img = next((Path(project.task_index(project.tasks[0])["root"]) / "red").iterdir())
    assert Project.open(copy).classify([img], "d") == [{**r, "path": str(img)} for r in project.classify([img], "d")]


def _zip(path: Path, members: dict[str, bytes], link: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = 0o120777 << 16
            z.writestr(info, "/etc/passwd")
    return path


@pytest.mark.parametrize(
    "evil",
    ["../escaped.txt", "/tmp/abs-escape.txt", "tasks/../../escaped.txt", "C:/windows/escaped.txt", "..\\escaped.txt"],
)
def test_zip_slip_refused_and_nothing_written(project, tmp_path, evil):
    good = json.loads((project.folder / "project.json").read_text())
    bundle = _zip(tmp_path / "evil.zip", {"project.json": json.dumps(good).encode(), evil: b"gotcha"})
    with pytest.raises(ProjectError, match="outside the project folder"):
        import_project(bundle, tmp_path / "dest" / "proj")
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/abs-escape.txt").exists()
    assert not (tmp_path / "dest" / "proj").exists()
    assert not list((tmp_path / "dest").glob(".*import*"))


def test_links_bombs_and_junk_refused(project, tmp_path):
    good = (project.folder / "project.json").read_bytes()
    with pytest.raises(ProjectError, match="is a link"):
        import_project(_zip(tmp_path / "l.zip", {"project.json": good}, link="weights/x"), tmp_path / "dest-a")
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("project.json", good)
        z.writestr("weights/huge.bin", b"\0" * (64 * 2**20))
    with pytest.raises(ProjectError, match="far more data"):
        import_project(tmp_path / "bomb.zip", tmp_path / "dest-b")
    (tmp_path / "junk.zip").write_bytes(b"not a zip at all")
    with pytest.raises(ProjectError, match="not a readable zip"):
        import_project(tmp_path / "junk.zip", tmp_path / "dest-c")
    bad = json.loads(good)
    bad["format_version"] = 99
    with pytest.raises(ProjectError, match="newer CL Studio"):
        import_project(_zip(tmp_path / "future.zip", {"project.json": json.dumps(bad).encode()}), tmp_path / "dest-d")
    assert not any((tmp_path / f"dest-{n}").exists() for n in "abcd")
