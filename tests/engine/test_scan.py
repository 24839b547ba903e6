import pytest
from PIL import Image

from clstudio.engine.data.scan import scan_folder
from clstudio.engine.data.synthetic import make_task_folder
from clstudio.engine.errors import DatasetError


def _img(path, size=(16, 16), colour=(200, 10, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def _names(split):
    return {r for r, _ in split}


def test_flat_layout_split_is_deterministic_disjoint_and_holds_a_test_set_out(tmp_path):
    make_task_folder(tmp_path / "t", ("circle", "square"), per_class=25, size=24)
    a, b = scan_folder(tmp_path / "t"), scan_folder(tmp_path / "t")
    assert a.classes == ["circle", "square"] and a.layout == "flat"
    assert (a.train, a.val, a.test) == (b.train, b.val, b.test)
    train, val, test = _names(a.train), _names(a.val), _names(a.test)
    assert not train & val and not train & test and not val & test
    assert len(train | val | test) == 50
    # 25 per class: exact shares by hash rank, 20 % test (measures R) and 15 % val (picks the epoch)
    assert (len(a.train), len(a.val), len(a.test)) == (2 * 16, 2 * 4, 2 * 5)
    assert a.eval_split == a.test and a.eval_on == "test"
    assert any("fewer than 10 test images per class" in w for w in a.warnings)


@pytest.mark.parametrize("n, shares", [(1, (1, 0, 0)), (2, (1, 0, 1)), (3, (1, 1, 1)), (10, (6, 2, 2))])
def test_small_classes_keep_one_image_to_train_and_hold_out_what_they_can(tmp_path, n, shares):
    make_task_folder(tmp_path / "t", ("a", "b"), per_class=n, size=16)
    r = scan_folder(tmp_path / "t")
    assert (len(r.train), len(r.val), len(r.test)) == tuple(2 * k for k in shares)
    assert r.eval_on == ("test" if shares[2] else "val")


def test_adding_files_moves_no_existing_file_across_the_split(tmp_path):
    make_task_folder(tmp_path / "t", ("a", "b"), per_class=100, size=8)
    before = scan_folder(tmp_path / "t")
    make_task_folder(tmp_path / "more", ("a", "b"), per_class=30, size=8, seed=9)
    for c in ("a", "b"):
        for i, f in enumerate(sorted((tmp_path / "more" / c).iterdir())):
            f.rename(tmp_path / "t" / c / f"new_{i}.png")
    after = scan_folder(tmp_path / "t")
    for split in ("train", "val", "test"):
        assert _names(getattr(before, split)) <= _names(getattr(after, split)), split


def test_split_layout_used_as_given(tmp_path):
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        for c in ("cat", "dog"):
            for i in range(n):
                _img(tmp_path / "pets" / split / c / f"{i}.png")
    r = scan_folder(tmp_path / "pets")
    assert r.layout == "split" and r.classes == ["cat", "dog"]
    assert (len(r.train), len(r.val), len(r.test)) == (12, 4, 6)
    assert r.eval_split == r.test


@pytest.mark.parametrize("given", ["val", "test"])
def test_one_held_out_folder_is_the_test_set_and_the_epoch_is_picked_on_train(tmp_path, given):
    """train/ + val/ only: measuring on val/ after picking the epoch on it would be optimistic, so val/ is
    the test set and the epoch is picked on a slice of train/ (likewise for train/ + test/)."""
    for split, n in (("train", 20), (given, 4)):
        for c in ("cat", "dog"):
            for i in range(n):
                _img(tmp_path / "pets" / split / c / f"{i}.png")
    r = scan_folder(tmp_path / "pets")
    assert _names(r.test) == {f"{given}/{c}/{i}.png" for c in ("cat", "dog") for i in range(4)}
    assert _names(r.val) < {f"train/{c}/{i}.png" for c in ("cat", "dog") for i in range(20)}
    assert len(r.val) == 2 * 4 and len(r.train) == 2 * 16 and not _names(r.val) & _names(r.train)
    assert r.eval_on == "test"


def test_hidden_and_system_files_skipped_with_reason(tmp_path):
    make_task_folder(tmp_path / "t", ("a", "b"), per_class=5, size=16)
    (tmp_path / "t" / "a" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / "t" / "a" / "Thumbs.db").write_bytes(b"x")
    (tmp_path / "t" / "a" / "._a_000.png").write_bytes(b"\0\5\26\7")
    (tmp_path / "t" / ".hidden").mkdir()
    _img(tmp_path / "t" / ".hidden" / "x.png")
    (tmp_path / "t" / ".DS_Store").write_bytes(b"x")
    r = scan_folder(tmp_path / "t")
    assert r.classes == ["a", "b"]  # the dot-folder is not a class
    skipped = {p.path: p.reason for p in r.skipped}
    assert "a/.DS_Store" in skipped and "a/Thumbs.db" in skipped and "a/._a_000.png" in skipped
    assert all("hidden or system" in skipped[k] for k in ("a/.DS_Store", "a/Thumbs.db"))
    assert not r.problems
    assert len(r.train) + len(r.val) + len(r.test) == 10


def test_corrupt_jpeg_reported_and_excluded(tmp_path):
    make_task_folder(tmp_path / "t", ("a", "b"), per_class=6, size=32, ext="jpg")
    good = (tmp_path / "t" / "a" / "a_000.jpg").read_bytes()
    (tmp_path / "t" / "a" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "t" / "b" / "notes.jpg").write_text("this is not a picture")
    (tmp_path / "t" / "b" / "empty.png").write_bytes(b"")
    (tmp_path / "t" / "b" / "header.jpg").write_bytes(b"P1")  # a PPM cut inside its header (found by fuzzing)
    r = scan_folder(tmp_path / "t")
    problems = {p.path: p.reason for p in r.problems}
    assert set(problems) == {"a/truncated.jpg", "b/notes.jpg", "b/empty.png", "b/header.jpg"}
    assert "damaged header" in problems["b/header.jpg"]
    assert "damaged" in problems["a/truncated.jpg"]
    assert "not an image" in problems["b/notes.jpg"]
    assert "empty" in problems["b/empty.png"]
    used = {rel for rel, _ in r.train + r.val + r.test}
    assert not used & set(problems) and len(used) == 12


def test_folder_without_class_subfolders_rejected(tmp_path):
    for i in range(3):
        _img(tmp_path / "loose" / f"{i}.png")
    with pytest.raises(DatasetError, match="no class subfolders.*3 images directly"):
        scan_folder(tmp_path / "loose")


def test_one_class_rejected(tmp_path):
    make_task_folder(tmp_path / "one", ("only",), per_class=4, size=16)
    with pytest.raises(DatasetError, match="only one class"):
        scan_folder(tmp_path / "one")


def test_empty_class_rejected_naming_it(tmp_path):
    make_task_folder(tmp_path / "t", ("a", "b"), per_class=4, size=16)
    (tmp_path / "t" / "empty_class").mkdir()
    (tmp_path / "t" / "empty_class" / "readme.txt").write_text("no images")
    with pytest.raises(DatasetError, match="'empty_class'"):
        scan_folder(tmp_path / "t")


def test_missing_folder_and_file_rejected(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        scan_folder(tmp_path / "nope")
    (tmp_path / "f.png").write_bytes(b"x")
    with pytest.raises(DatasetError, match="is a file"):
        scan_folder(tmp_path / "f.png")


def test_progress_reported_and_cancel_honoured(tmp_path):
    from clstudio.engine.cancel import CancelToken
    from clstudio.engine.errors import Cancelled

    make_task_folder(tmp_path / "t", ("a", "b"), per_class=20, size=16)
    seen = []
    scan_folder(tmp_path / "t", progress=lambda d, n: seen.append((d, n)))
    assert seen[-1] == (40, 40)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        scan_folder(tmp_path / "t", cancel=token)


def test_two_tasks_may_share_class_names(tmp_path):
    from clstudio.engine.project import Project

    make_task_folder(tmp_path / "x", ("red", "blue"), per_class=4, size=16)
    make_task_folder(tmp_path / "y", ("red", "blue"), per_class=4, size=16, seed=3)
    p = Project.create(tmp_path / "p", backbone="tiny")
    p.add_task(tmp_path / "x")
    p.add_task(tmp_path / "y")
    assert [t["classes"] for t in p.tasks] == [["blue", "red"], ["blue", "red"]]
    assert len({t["id"] for t in p.tasks}) == 2
