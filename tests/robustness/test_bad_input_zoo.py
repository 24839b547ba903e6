"""Importing a folder full of trouble: nothing crashes or hangs, every good image is kept, every bad one
is reported with a reason a person understands, and training on it never raises."""

from __future__ import annotations

import numpy as np
import pytest

from clstudio.engine.data.decode import decode_rgb
from clstudio.engine.data.scan import scan_folder
from clstudio.engine.project import Project

from .zoo import GOOD_PER_CLASS, build_zoo


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo") / "pets"
    root.mkdir()
    return root, build_zoo(root)


def test_scan_keeps_every_good_image_and_reports_every_bad_one(zoo):
    root, expect = zoo
    report = scan_folder(root)
    assert report.classes == ["cats", "dogs"]
    used = {rel for rel, _ in report.train + report.val + report.test}
    good = {rel for rel, kind in expect.items() if kind == "good"}
    bad = {rel for rel, kind in expect.items() if kind == "bad"}
    assert used == good
    problems = {p.path: p.reason for p in report.problems}
    assert set(problems) == bad
    assert "empty file" in problems["cats/zero_bytes.jpg"]
    assert "damaged" in problems["cats/truncated.jpg"]
    assert "damaged" in problems["cats/bad_crc.png"] or "not an image" in problems["cats/bad_crc.png"]
    assert "not an image" in problems["cats/text.jpg"] and "not an image" in problems["dogs/page.png"]
    assert "too large" in problems["dogs/bomb.png"] and "megapixels" in problems["dogs/bomb.png"]
    skipped = {p.path for p in report.skipped}
    assert {"cats/.DS_Store", "dogs/Thumbs.db", "dogs/desktop.ini", "cats/._plain_0.png"} <= skipped
    assert any(p.path == "dogs/loop" and "loop" in p.reason for p in report.skipped)
    assert len(good) >= 2 * GOOD_PER_CLASS


def test_conversions_give_upright_rgb(zoo):
    root, _ = zoo
    for rel in (
        "cats/cmyk.jpg",
        "cats/sixteen_bit.png",
        "dogs/rgba.png",
        "dogs/palette.png",
        "dogs/grey.png",
        "dogs/animated.gif",
        "cats/one_pixel.png",
    ):
        arr = decode_rgb(root / rel)
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3, rel
    assert decode_rgb(root / "cats/sixteen_bit.png").std() > 10  # not clipped to white
    assert decode_rgb(root / "dogs/rotated.jpg").shape[:2] == (40, 20)  # EXIF-rotated: portrait
    rgba = decode_rgb(root / "dogs/rgba.png")
    assert rgba.shape == (30, 40, 3)


def test_training_on_the_zoo_never_raises_and_counts_files_that_vanished(zoo, tmp_path):
    root, expect = zoo
    p = Project.create(tmp_path / "p", backbone="tiny", config={"epochs": 2, "augment": "light"})
    p.add_task(root)
    # A file that passed the scan is replaced by garbage before training: skipped with a warning, counted.
    victim = root / "cats" / "plain_1.png"
    original = victim.read_bytes()
    victim.write_bytes(b"garbage now")
    try:
        task = p.train_task("pets")
    finally:
        victim.write_bytes(original)
    assert task["trained"]
    index = p.task_index(task)
    in_train = any(r == "cats/plain_1.png" for r, _ in index["train"])
    assert task["skipped_images"] == (2 if in_train else 0)


def test_unreadable_file_is_reported_not_fatal(zoo, monkeypatch):
    # Root reads any file whatever its mode bits, so the refusal is simulated where the OS would raise it.
    import PIL.Image

    root, _ = zoo
    real_open = PIL.Image.open

    def guarded(fp, *a, **k):
        if str(fp).endswith("plain_2.png"):
            raise PermissionError(13, "Permission denied")
        return real_open(fp, *a, **k)

    monkeypatch.setattr(PIL.Image, "open", guarded)
    report = scan_folder(root)
    reasons = {p.path: p.reason for p in report.problems}
    assert reasons["cats/plain_2.png"].startswith("permission denied")
    assert reasons["dogs/plain_2.png"].startswith("permission denied")


def test_ten_thousand_images_progress_cancel_and_cached_rescan(tmp_path, monkeypatch):
    from PIL import Image

    import clstudio.engine.data.scan as scan_module
    from clstudio.engine.cancel import CancelToken
    from clstudio.engine.errors import Cancelled

    root = tmp_path / "big"
    for c in range(4):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(2500):
            Image.new("RGB", (4, 4), (c * 60, i % 256, 0)).save(root / f"c{c}" / f"{i}.png")
    token = CancelToken()
    seen: list[tuple[int, int]] = []

    def progress(done, total):
        seen.append((done, total))
        if done >= 2000:
            token.cancel()

    with pytest.raises(Cancelled):
        scan_folder(root, progress=progress, cancel=token)
    assert seen and seen[-1][1] == 10_000 and seen[-1][0] < 10_000  # stopped early, having said how far
    decoded: list[str] = []
    real_check = scan_module.check_image
    monkeypatch.setattr(scan_module, "check_image", lambda p: decoded.append(str(p)) or real_check(p))
    first = scan_folder(root)  # continues: what was checked before the cancel is not checked again
    assert 0 < len(decoded) <= 10_000 - 2000
    decoded.clear()
    again = scan_folder(root)  # reopening the same folder: nothing is decoded again
    assert decoded == []
    assert len(first.train + first.val + first.test) == len(again.train + again.val + again.test) == 10_000
    (root / "c0" / "0.png").write_bytes(b"changed: no longer an image")
    changed = scan_folder(root)
    assert [p.path for p in changed.problems] == ["c0/0.png"]  # a changed file is checked again
