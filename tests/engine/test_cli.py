"""A user's two-task run through the real CLI entry point, in subprocesses, on generated folders."""

from __future__ import annotations

import json

import pytest

from clstudio.engine.data.synthetic import make_task_folder
from tests.engine.helpers import clstudio


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    a = make_task_folder(d / "flowers", ("horizontal", "vertical"), 20, size=32, seed=1)
    b = make_task_folder(d / "xray", ("red", "green", "blue"), 20, size=32, seed=2)
    project = d / "demo"
    out = clstudio(
        "train",
        "--project",
        str(project),
        "--strategy",
        "clr",
        "--backbone",
        "tiny",
        "--epochs",
        "6",
        "--lr",
        "0.01",
        "--task",
        str(a),
        "--task",
        str(b),
    )
    return project, a, b, out


def test_train_prints_progress_and_matrix(trained):
    _, _, _, out = trained
    assert "Training 'flowers'" in out.stderr and "Training 'xray'" in out.stderr
    assert "epoch   6/6" in out.stderr
    assert "Accuracy matrix R" in out.stdout and "forgetting" in out.stdout


def test_eval_json(trained):
    project, *_ = trained
    res = json.loads(clstudio("eval", "--project", str(project), "--json").stdout)
    assert res["tasks"] == ["flowers", "xray"]
    R = res["R"]
    assert len(R) == 2 and R[0][1] is None
    assert all(0.0 <= v <= 1.0 for row in R for v in row if v is not None)
    assert R[1][0] == R[0][0]  # CLR: the first task is untouched by the second
    assert res["BWT"] == 0.0 and res["forgetting"] == 0.0
    assert res["ACC"] == pytest.approx((R[1][0] + R[1][1]) / 2)
    # 20 images per class: 4 held out per class measure R (never trained on, never chose an epoch)
    basis = res["evaluation"]
    assert [(b["task"], b["eval_on"], b["eval_images"], b["min_per_class"]) for b in basis] == [
        ("flowers", "test", 8, 4),
        ("xray", "test", 12, 4),
    ]
    assert all(any("fewer than 10" in w for w in b["warnings"]) for b in basis)


def test_eval_says_what_each_number_rests_on(trained):
    project, *_ = trained
    out = clstudio("eval", "--project", str(project)).stdout
    assert "flowers: 8 held-out test images (at least 4 per class)" in out
    assert "warning: rests on 4 images for its smallest class (fewer than 10)" in out


def test_eval_recompute_matches_stored(trained):
    project, *_ = trained
    out = clstudio("eval", "--project", str(project), "--recompute")
    assert "max difference to stored last row: 0.0000" in out.stderr


def test_classify_json_top_k(trained):
    project, _, b, _ = trained
    imgs = [str(next((b / "red").iterdir())), str(next((b / "blue").iterdir()))]
    res = json.loads(clstudio("classify", "--project", str(project), "--task", "xray", "--json", *imgs).stdout)
    assert [r["path"] for r in res] == imgs and all(r["task"] == "xray" for r in res)
    for r in res:
        classes = [c for c, _ in r["top"]]
        probs = [p for _, p in r["top"]]
        assert sorted(classes) == ["blue", "green", "red"]
        assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-5)
    text = clstudio("classify", "--project", str(project), "--task", "xray", imgs[0]).stdout
    assert "%" in text and "red" in text


def test_classify_auto_folders_to_csv(trained, tmp_path):
    project, a, b, _ = trained
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    csv_file = tmp_path / "labels.csv"
    out = clstudio(
        "classify",
        "--project",
        str(project),
        "--json",
        "--csv",
        str(csv_file),
        str(b),
        str(tmp_path / "broken.jpg"),
        check=False,
    )
    assert out.returncode == 1  # one image could not be read: said, not crashed
    res = json.loads(out.stdout)
    images = sorted(str(p) for p in b.rglob("*.png"))
    assert sorted(r["path"] for r in res[:-1]) == images and "error" in res[-1]  # no --task: auto, recursive
    assert all("route" in r and r["route"]["nearest"] in ("flowers", "xray") for r in res[:-1])
    import csv

    rows = list(csv.DictReader(csv_file.open()))
    assert len(rows) == len(images) + 1 and rows[-1]["error"] and not rows[-1]["top_class"]
    for row, r in zip(rows[:-1], res[:-1], strict=True):  # the CSV says what --json says
        assert row["top_class"] == r["top"][0][0] and float(row["probability"]) == pytest.approx(
            r["top"][0][1], abs=1e-6
        )
        assert row["task"] == (r["task"] or "") and row["top_k"].count(":") == len(r["top"])
    text = clstudio("classify", "--project", str(project), "--task", "auto", images[0]).stdout
    assert "chosen by the router" in text or "none of my tasks" in text


def test_export_model_through_the_cli(trained, tmp_path):
    project, *_ = trained
    out = clstudio("export-model", "--project", str(project), "--task", "xray", "-o", str(tmp_path / "x.onnx"))
    assert (tmp_path / "x.onnx").stat().st_size > 0 and "x.onnx.json" in out.stdout
    side = json.loads((tmp_path / "x.onnx.json").read_text())
    assert side["classes"] == ["blue", "green", "red"] and side["input"]["shape"][1:] == [3, 32, 32]
    bad = clstudio("export-model", "--project", str(project), "--task", "nope", "-o", str(tmp_path), check=False)
    assert bad.returncode == 2 and "No task named 'nope'" in bad.stderr


def test_info_json(trained):
    project, *_ = trained
    info = json.loads(clstudio("info", "--project", str(project), "--json").stdout)
    assert [t["name"] for t in info["tasks"]] == ["flowers", "xray"]
    assert info["tasks"][0]["classes"] == ["horizontal", "vertical"]
    assert info["tasks"][1]["images"] == 60
    assert all(t["bytes"] > 0 and t["trainable_params"] > 0 for t in info["tasks"])
    assert info["backbone_params"] > 0
    assert "flowers" in clstudio("info", "--project", str(project)).stdout


def test_adding_a_task_later_trains_only_it(trained, tmp_path):
    project, *_ = trained
    before = json.loads(clstudio("eval", "--project", str(project), "--json").stdout)["R"]
    c = make_task_folder(tmp_path / "shapes", ("circle", "square"), 15, size=32, seed=4)
    out = clstudio("train", "--project", str(project), "--task", str(c))
    assert "Training 'shapes'" in out.stderr and "Training 'flowers'" not in out.stderr
    after = json.loads(clstudio("eval", "--project", str(project), "--json").stdout)["R"]
    assert after[:2] == [row + [None] for row in before]
    assert after[2][:2] == before[1]


def test_errors_are_one_clear_line(tmp_path):
    out = clstudio("eval", "--project", str(tmp_path / "nothing"), check=False)
    assert out.returncode == 2 and "No CL Studio project" in out.stderr and "Traceback" not in out.stderr
    make_task_folder(tmp_path / "one", ("only",), 3, size=16)
    out = clstudio(
        "train", "--project", str(tmp_path / "p"), "--backbone", "tiny", "--task", str(tmp_path / "one"), check=False
    )
    assert out.returncode == 2 and "only one class" in out.stderr and "Traceback" not in out.stderr


def test_strategy_of_existing_project_cannot_change(trained):
    project, a, *_ = trained
    out = clstudio("train", "--project", str(project), "--strategy", "finetune", "--task", str(a), check=False)
    assert out.returncode == 2 and "uses strategy 'clr'" in out.stderr


def test_make_demo_and_list(tmp_path):
    out = clstudio("make-demo", str(tmp_path / "demo"), "--per-class", "4")
    assert (tmp_path / "demo" / "shapes" / "circle").is_dir() and "clstudio train" in out.stdout
    listing = clstudio("list").stdout
    assert "clr" in listing and "efficientnet_lite0" in listing and "epochs=" in listing


def test_bundle_export_and_import_through_the_cli(trained, tmp_path):
    project, *_ = trained
    out = clstudio("bundle", "export", "--project", str(project), str(tmp_path / "b.zip"))
    assert "Bundled" in out.stdout and (tmp_path / "b.zip").exists()
    clstudio("bundle", "import", str(tmp_path / "b.zip"), "--project", str(tmp_path / "copy"))
    a = json.loads(clstudio("eval", "--project", str(project), "--json").stdout)
    b = json.loads(clstudio("eval", "--project", str(tmp_path / "copy"), "--json").stdout)
    assert a["R"][:2] == b["R"][:2]
    assert a["per_task"] == b["per_task"] and b["per_task"]  # the per-image records travel in the bundle
