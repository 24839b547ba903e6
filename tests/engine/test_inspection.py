"""Under the numbers (issue 14): per-class results and per-image answers stored with every row of R and
consistent with classify, the forgetting explorer (0 flips for CLR, flips that add up to R's change for
fine-tune), the zero-forgetting proof and `clstudio verify` naming an altered tensor, and FWT left out."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
import torch

from clstudio.engine.data.synthetic import make_task_folder
from clstudio.engine.per_class import confusion, flips, per_class_scores
from clstudio.engine.project import Project
from clstudio.engine.storage import load_tensors, save_tensors
from clstudio.engine.views import SavedProject
from tests.engine.helpers import clstudio

FAST = dict(epochs=4, lr=1e-2, augment="none", patience=100)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    return [
        make_task_folder(d / "stripes", ("horizontal", "vertical"), 30, size=32, seed=1),
        make_task_folder(d / "colours", ("red", "green", "blue"), 30, size=32, seed=2),
        make_task_folder(d / "shapes", ("circle", "square", "triangle"), 20, size=32, seed=3),
    ]


def _project(folder, folders, strategy):
    p = Project.create(folder, strategy=strategy, backbone="tiny", config=dict(FAST))
    for f in folders:
        p.add_task(f)
    p.train_pending()
    return p


@pytest.fixture(scope="module")
def clr(tmp_path_factory, folders):
    return _project(tmp_path_factory.mktemp("clr") / "p", folders, "clr")


@pytest.fixture(scope="module")
def finetune(tmp_path_factory, folders):
    return _project(tmp_path_factory.mktemp("ft") / "p", folders, "finetune")


def test_scores_from_a_crafted_confusion():
    labels, pred = [0, 0, 0, 1, 1, 2, 2, 2], [0, 0, 1, 1, -1, 1, 1, 1]
    counts = confusion(labels, pred, 3)
    assert counts == [[2, 1, 0], [0, 1, 0], [0, 3, 0]]  # the unreadable image (-1) is left out
    scores = per_class_scores(counts, ["a", "b", "c"])
    assert scores[0] == {"class": "a", "precision": 1.0, "recall": 2 / 3, "f1": pytest.approx(0.8), "support": 3}
    assert scores[1]["precision"] == pytest.approx(0.2) and scores[1]["recall"] == 1.0
    assert scores[2]["precision"] is None and scores[2]["recall"] == 0.0 and scores[2]["f1"] is None
    lost, gained = flips([0, 1, 2, 0], [0, 1, 0, -1], [1, 1, 2, 0])
    assert (lost, gained) == ([0], [2])  # position 3 was unreadable before: not counted


@pytest.mark.parametrize("strategy", ["clr", "finetune"])
def test_every_row_keeps_per_image_answers_that_match_R_and_classify(strategy, clr, finetune):
    p = clr if strategy == "clr" else finetune
    names = p.trained_names()
    assert len(p.doc["R_evaluations"]) == len(p.doc["R"]) == 3
    for i, after in enumerate(names):
        for j, name in enumerate(names[: i + 1]):
            res = p.per_class(name, after)
            diag = sum(res["confusion"][c][c] for c in range(len(res["classes"])))
            assert diag / res["images"] == pytest.approx(p.doc["R"][i][j])
            assert sum(r["support"] for r in res["per_class"]) == res["images"]
    # The last row's answers are what classify says for the same files now.
    for name in names:
        a = p.answers(name)
        out = p.classify(a.files, name, top_k=1)
        said = [a.classes.index(r["top"][0][0]) for r in out]
        assert said == a.pred
        assert [r["top"][0][1] for r in out] == pytest.approx(a.p_pred, abs=1e-4)


def test_clr_has_no_flips_and_its_proof_holds_after_reopening(clr):
    assert clr.flips() and all(not f["right_to_wrong"] and not f["wrong_to_right"] for f in clr.flips())
    saved = SavedProject(clr.store.folder)
    status = saved.proof_status()
    assert set(status) == {"stripes", "colours", "shapes"}
    assert status["stripes"]["verdict"] == "unchanged since trained" and status["stripes"]["checked_after"] == "shapes"
    assert status["shapes"]["unchanged"] is None  # the last task: checked after the next one
    assert saved.per_class("colours", "shapes") == clr.per_class("colours", "shapes")


def test_finetune_flips_add_up_to_the_change_in_R(finetune):
    R, names = finetune.doc["R"], finetune.trained_names()
    seen = 0
    for f in finetune.flips():
        i, j = names.index(f["after"]), names.index(f["task"])
        n = finetune.per_class(f["task"], f["after"])["images"]
        assert (len(f["wrong_to_right"]) - len(f["right_to_wrong"])) / n == pytest.approx(R[i][j] - R[i - 1][j])
        seen += len(f["wrong_to_right"]) + len(f["right_to_wrong"])
    assert seen > 0, "fine-tune at lr 1e-2 moves the shared weights: some earlier answer changes"
    assert finetune.proof_status() == {}


def test_forgetting_timeline_is_R_columns_with_their_flips(finetune):
    R, names = finetune.doc["R"], finetune.trained_names()
    timeline = finetune.forgetting_timeline()
    assert [t["task"] for t in timeline] == names
    flips = {(f["task"], f["after"]): f for f in finetune.flips()}
    for j, entry in enumerate(timeline):
        assert [m["after"] for m in entry["moments"]] == names[j:]
        first, *later = entry["moments"]
        assert first["accuracy"] == R[j][j] and first["right_to_wrong"] == first["wrong_to_right"] == []
        for i, m in enumerate(later, start=j + 1):
            f = flips[(entry["task"], names[i])]
            assert m["accuracy"] == R[i][j]
            assert (m["right_to_wrong"], m["wrong_to_right"]) == (f["right_to_wrong"], f["wrong_to_right"])


def test_eval_json_and_verify_through_the_cli(clr, tmp_path):
    folder = tmp_path / "p"
    shutil.copytree(clr.store.folder, folder)
    res = json.loads(clstudio("eval", "--project", str(folder), "--json", "--flips").stdout)
    assert "FWT" not in res  # no strategy here measures a task before training it
    assert set(res["per_task"]) == set(res["tasks"])
    colours = res["per_task"]["colours"]
    assert colours["classes"] == ["blue", "green", "red"] and len(colours["confusion"]) == 3
    assert {"precision", "recall", "f1", "support"} <= set(colours["per_class"][0])
    assert res["zero_forgetting"]["stripes"]["unchanged"] is True
    assert all(not f["right_to_wrong"] for f in res["flips"])
    text = clstudio("eval", "--project", str(folder), "--task", "colours", "--after", "colours").stdout
    assert "Confusion matrix" in text and "precision" in text

    ok = clstudio("verify", "--project", str(folder))
    assert ok.stdout.count("unchanged since trained") == 3

    # Alter one value of one tensor of the second task: verify names exactly that tensor and fails.
    weights = folder / SavedProject(folder).task("colours")["weights"]
    tensors, meta = load_tensors(weights)
    name = next(k for k in sorted(tensors) if k.startswith("head.weight"))
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] += torch.tensor(0.5, dtype=tensors[name].dtype)
    save_tensors(weights, tensors, meta)
    bad = clstudio("verify", "--project", str(folder), check=False)
    assert bad.returncode == 1
    line = next(ln for ln in bad.stdout.splitlines() if "colours" in ln)
    assert line.startswith("CHANGED") and f"{name} changed" in line and "answers" in line
    assert "OK  stripes: unchanged since trained" in bad.stdout


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.sources: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.sources += [v for k, v in attrs if k in ("src", "href") and v]

    def handle_data(self, data):
        self.text.append(data)


def test_report_is_one_self_contained_file_a_browser_renders(clr, finetune, tmp_path):
    out = tmp_path / "run.html"
    clstudio("report", "--project", str(clr.store.folder), "-o", str(out))
    page = _Page()
    page.feed(out.read_text(encoding="utf-8"))
    text = " ".join(page.text)
    for heading in (
        "Accuracy matrix R",
        "Validation accuracy per epoch",
        "Per class",
        "Zero-forgetting proof",
        "Environment",
        "Settings",
        "Data",
    ):
        assert heading in text
    assert "unchanged since trained" in text and "svg" in page.tags and "img" in page.tags
    assert page.sources and all(s.startswith("data:image/") for s in page.sources)  # nothing outside the file
    assert "<script" not in out.read_text(encoding="utf-8")
    ft = tmp_path / "ft.html"
    clstudio("report", "--project", str(finetune.store.folder), "-o", str(ft))
    assert "Forgetting: answers that changed" in ft.read_text(encoding="utf-8")

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium here to render the report (apt install chromium); the structure is checked above")
    png = tmp_path / "run.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1000,1400",
            f"--screenshot={png}",
            out.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    from PIL import Image

    pixels = Image.open(png).convert("L")
    lo, hi = pixels.getextrema()
    assert pixels.size == (1000, 1400) and hi - lo > 100  # drawn: text and heatmap cells, not a blank page


def test_the_per_task_footprint_is_what_a_trained_task_trains_besides_its_head(clr, finetune):
    footprint = clr.doc["strategy"]["per_task"]
    for t in clr.trained_tasks():
        head = (32 + 1) * len(t["classes"])  # the tiny backbone's 32 features, a bias per class
        assert t["trainable_params"] == footprint["params"] + head
    assert footprint["bytes"] > footprint["params"] * 4  # BN running statistics are stored too
    assert finetune.doc["strategy"]["per_task"]["shared_params"] == finetune.doc["backbone"]["params"]
