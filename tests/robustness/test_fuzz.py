"""Fuzzing the two places that read what users and other programs hand us: the folder scanner and the
project loader. Bounded in CI; set CLSTUDIO_FUZZ_EXAMPLES=2000 for a long run by hand."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clstudio.engine.data.scan import scan_folder
from clstudio.engine.data.synthetic import make_task_folder
from clstudio.engine.errors import CLStudioError, DatasetError
from clstudio.engine.project import Project

EXAMPLES = int(os.environ.get("CLSTUDIO_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"), min_size=1, max_size=12)
names = names.filter(lambda n: n not in (".", ".."))
blobs = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"RIFF\0\0\0\0WEBP"]),
    st.binary(max_size=64).map(lambda b: b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + b),
)
trees = st.dictionaries(
    st.tuples(names, st.one_of(st.none(), names), names.map(lambda n: n + st_ext(n))), blobs, max_size=12
)


def st_ext(name: str) -> str:
    return (".png", ".jpg", ".gif", ".txt", "")[sum(map(ord, name)) % 5]


@FUZZ
@given(tree=trees)
def test_scanner_never_fails_with_anything_but_a_clear_error(tree):
    root = Path(tempfile.mkdtemp(prefix="fuzz-scan-"))
    try:
        for (cls, sub, fname), data in tree.items():
            folder = root / cls / sub if sub else root / cls
            try:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / fname).write_bytes(data)
            except OSError:
                continue  # a name the file system refuses (too long, a clash with a folder): not our input
        try:
            report = scan_folder(root, use_cache=False)
        except DatasetError as e:
            assert str(e)
            return
        used = {rel for rel, _ in report.train + report.val + report.test}
        assert not used & {p.path for p in report.problems}
        assert len(report.classes) >= 2
    finally:
        shutil.rmtree(root, ignore_errors=True)


_template: dict | None = None


def _valid_doc(tmp: Path) -> dict:
    global _template
    if _template is None:
        data = make_task_folder(tmp / "d", ("a", "b"), 4, size=16)
        p = Project.create(tmp / "p", backbone="tiny", config={"epochs": 1})
        p.add_task(data)
        p.train_pending()
        _template = json.loads((p.folder / "project.json").read_text())
    return json.loads(json.dumps(_template))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _paths(doc, prefix=()):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


@FUZZ
@given(data=st.data())
def test_project_loader_gives_clear_errors_for_any_damage(data, tmp_path_factory):
    base = tmp_path_factory.getbasetemp() / "fuzz-project-template"
    base.mkdir(exist_ok=True)
    doc = _valid_doc(base)
    paths = list(_paths(doc))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        target = doc
        try:
            for key in path[:-1]:
                target = target[key]
            if data.draw(st.booleans()):
                target[path[-1]] = data.draw(json_values)
            elif isinstance(target, dict):
                target.pop(path[-1], None)
        except (KeyError, IndexError, TypeError):
            continue
    folder = Path(tempfile.mkdtemp(prefix="fuzz-open-"))
    try:
        shutil.copytree(base / "p", folder, dirs_exist_ok=True)
        (folder / "project.json").write_text(json.dumps(doc))
        try:
            p = Project.open(folder)
            p.strategy  # noqa: B018 - loading every file the document points at
            p.info()
            p.accuracy_matrix()
            p.metrics()
        except CLStudioError as e:
            assert str(e)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
