"""The task router (classify without choosing the task): its math on crafted features, and in a project —
it picks tasks the way eval says it does, never touches a task's weights, and says 'none of my tasks'."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from clstudio.engine.classify import AUTO
from clstudio.engine.data.synthetic import make_task_folder
from clstudio.engine.errors import ProjectError
from clstudio.engine.project import Project
from clstudio.engine.results_csv import csv_rows
from clstudio.engine.routing import (
    CALIBRATION_PER_CLASS,
    THRESHOLD_QUANTILE,
    TaskRouter,
    add_to_shared,
    ood_auroc,
    shrunk_covariance,
    task_feature_stats,
)
from tests.engine.helpers import tensor_hash

D = 24


def _samples(means: torch.Tensor, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.arange(len(means)).repeat_interleave(n)
    return means[y] + torch.randn(len(y), D, generator=g, dtype=torch.float64), y


def _crafted_router(g: torch.Generator) -> tuple[TaskRouter, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Two tasks of two classes, Gaussian features (unit covariance) with means 6 apart on their own axes."""
    eye = torch.eye(D, dtype=torch.float64) * 6
    means = {"a": eye[[0, 1]], "b": eye[[2, 3]]}
    tensors, shared, calibration = {}, None, {}
    for tid, m in means.items():
        (xt, yt), (xv, yv) = _samples(m, 40, g), _samples(m, CALIBRATION_PER_CLASS, g)
        stats = task_feature_stats(xt, yt, xv, yv, 2)
        tensors[tid] = stats.task_tensors()
        calibration[tid] = xv  # all of them are kept for calibration
        shared = add_to_shared(shared, stats)
    assert shared is not None and int(shared["samples"]) == 160 and int(shared["classes"]) == 4
    return TaskRouter(tensors, shared), means, calibration


def test_router_sends_images_to_their_task_and_flags_far_ones():
    g = torch.Generator().manual_seed(0)
    router, means, calibration = _crafted_router(g)
    for i, (tid, x) in enumerate(calibration.items()):
        inside = router.task_distances(x)[:, i] <= router.thresholds[tid]
        assert inside.double().mean() >= THRESHOLD_QUANTILE - 1 / len(x)
    for i, (tid, m) in enumerate(means.items()):
        x, _ = _samples(m, 200, g)
        routes = router.route(x)
        assert sum(r.nearest == tid for r in routes) / len(routes) > 0.97
        # Calibrated on 32 validation images: fresh in-task images stay inside up to sampling noise.
        assert sum(r.task == tid for r in routes) / len(routes) > 0.8
        assert router.task_distances(x).argmin(1).eq(i).double().mean() > 0.97
    far = torch.zeros(50, D, dtype=torch.float64)
    far[:, 10:] = 8.0 + torch.randn(50, D - 10, generator=g, dtype=torch.float64)
    assert all(r.task is None for r in router.route(far))


def test_oas_shrinkage_is_positive_definite_and_vanishes_with_many_samples():
    g = torch.Generator().manual_seed(1)
    few = torch.randn(10, D, generator=g, dtype=torch.float64)  # fewer samples than dimensions: singular
    cov = shrunk_covariance((few - few.mean(0)).T @ (few - few.mean(0)), 10, 1)
    assert torch.linalg.eigvalsh(cov).min() > 0
    a = torch.randn(D, D, generator=g, dtype=torch.float64) / D**0.5
    true = a @ a.T + torch.eye(D, dtype=torch.float64)
    many = torch.randn(50_000, D, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(true).T
    c = many - many.mean(0)
    est = shrunk_covariance(c.T @ c, len(many), 1)
    assert (est - true).abs().max() < 0.1


def test_auroc_counts_order_and_ties():
    assert ood_auroc(torch.tensor([0.0, 1.0]), torch.tensor([2.0, 3.0])) == 1.0
    assert ood_auroc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 0.0
    assert ood_auroc(torch.tensor([1.0]), torch.tensor([1.0])) == 0.5


@pytest.fixture(scope="module")
def routed_project(tmp_path_factory):
    d = tmp_path_factory.mktemp("routing")
    a = make_task_folder(d / "stripes", ("horizontal", "vertical"), 24, size=32, seed=1)
    b = make_task_folder(d / "colours", ("red", "green", "blue"), 24, size=32, seed=2)
    project = Project.create(d / "p", "clr", backbone="tiny", config=dict(epochs=3, lr=0.01))
    project.add_task(a)
    project.train_pending()
    first = {k: v.clone() for k, v in project.strategy.task_states["t1"].items()}
    project.add_task(b)
    project.train_pending()
    return project, first, (a, b)


def test_eval_reports_routing_and_it_matches_classify_auto(routed_project):
    project, _, folders = routed_project
    routed = project.routed()
    assert routed is not None and len(routed["R"]) == 2 and len(routed["routing_accuracy"][-1]) == 2
    for t, routing, acc, task_il in zip(
        project.trained_tasks(), routed["routing_accuracy"][-1], routed["R"][-1], project.last_row(), strict=True
    ):
        index = project.task_index(t)
        paths = [Path(index["root"]) / rel for rel, _ in index["test"]]
        results = project.classify(paths, AUTO)
        share = sum(r["route"]["nearest"] == t["name"] for r in results) / len(results)
        assert share == pytest.approx(routing)
        assert 0.0 <= acc <= min(routing, task_il) + 1e-9  # routed right and classified right
    stored = json.loads((project.folder / "project.json").read_text())
    assert len(stored["R_routing"]) == 2 and stored["router_weights"].startswith("weights/router-")


def test_the_router_never_changes_a_tasks_weights(routed_project):
    project, first, _ = routed_project
    before = {tid: tensor_hash(s.values()) for tid, s in project.strategy.task_states.items()}
    files = {p.name: p.read_bytes() for p in (project.folder / "weights").glob("task-*.safetensors")}
    index = project.task_index(project.trained_tasks()[0])
    project.classify([Path(index["root"]) / rel for rel, _ in index["test"][:8]], AUTO)
    assert {tid: tensor_hash(s.values()) for tid, s in project.strategy.task_states.items()} == before
    assert tensor_hash(first.values()) == before["t1"]  # training the second task (and its router) left t1 alone
    assert files == {p.name: p.read_bytes() for p in (project.folder / "weights").glob("task-*.safetensors")}
    reopened = Project.open(project.folder).strategy.task_states["t1"]  # router tensors stay out of the model
    assert set(reopened) == set(first) and all(torch.equal(reopened[k], first[k]) for k in first)


@pytest.fixture(scope="module")
def lite0_probe(tmp_path_factory):
    """The app's real backbone (EfficientNet-Lite0, ImageNet) at 64 px with the probe: seconds to train, and
    features that mean something, which is what telling 'none of my tasks' rests on."""
    d = tmp_path_factory.mktemp("lite0-routing")
    project = Project.create(d / "p", "linear_probe", config=dict(image_size=64))
    project.add_task(make_task_folder(d / "shapes", ("circle", "square", "triangle"), 20, size=64, seed=1))
    project.add_task(make_task_folder(d / "colours", ("red", "green", "blue"), 20, size=64, seed=2))
    project.train_pending()
    return project


def test_far_images_are_none_of_my_tasks_and_csv_says_so(lite0_probe, tmp_path):
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    text = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(text).text((4, 20), "invoice 42", fill="black")
    odd = {  # nothing like mid-grey canvases with one shape or one coloured square on them
        "noise": Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)),
        "checker": Image.fromarray((np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)).convert("RGB"),
        "text": text,
    }
    (tmp_path / "odd" / "deeper").mkdir(parents=True)
    for name, img in odd.items():
        img.save(tmp_path / "odd" / "deeper" / f"far_{name}.png")
    (tmp_path / "odd" / "broken.png").write_bytes(b"not a png")
    results = lite0_probe.classify([tmp_path / "odd"], AUTO)  # a folder: every image inside, recursively
    assert len(results) == 4
    broken = next(r for r in results if r["path"].endswith("broken.png"))
    assert "error" in broken and "top" not in broken
    far = [r for r in results if Path(r["path"]).name.startswith("far_")]
    assert [r["none_of_my_tasks"] for r in far] == [True] * 3, [(r["path"], r["route"]) for r in far]
    assert all(r["task"] is None and r["route"]["distance"] > r["route"]["threshold"] for r in far)
    rows = csv_rows(results)
    assert {r["none_of_my_tasks"] for r in rows if Path(r["path"]).name.startswith("far_")} == {"true"}
    assert next(r for r in rows if r["path"].endswith("broken.png"))["error"]
    # New draws of the tasks' own concepts are routed, not refused, and mostly to their task (a shape is drawn
    # in a colour, so some overlap is the data's, not the router's).
    near = make_task_folder(tmp_path / "new", ("circle", "red"), 10, size=64, seed=9)
    again = lite0_probe.classify([near], AUTO)
    assert sum(r["task"] is not None for r in again) >= 17
    home = [r["route"]["nearest"] == ("shapes" if "circle_" in r["path"] else "colours") for r in again]
    assert sum(home) >= 14, [(Path(r["path"]).name, r["route"]) for r in again]
    # Auto's answer within the routed task is the one that task gives when chosen (the probe reuses the
    # router's features instead of a second forward: the same numbers).
    for name in ("shapes", "colours"):
        routed = [r for r in again if r["route"]["nearest"] == name]
        direct = lite0_probe.classify([r["path"] for r in routed], name)
        for a, b in zip(routed, direct, strict=True):
            assert [c for c, _ in a["top"]] == [c for c, _ in b["top"]]
            assert [p for _, p in a["top"]] == pytest.approx([p for _, p in b["top"]], abs=1e-5)


def test_auto_needs_a_strategy_with_a_fixed_backbone(tmp_path):
    folder = make_task_folder(tmp_path / "t", ("red", "green"), 8, size=32, seed=3)
    project = Project.create(tmp_path / "ft", "finetune", backbone="tiny", config=dict(epochs=1))
    project.add_task(folder)
    project.train_pending()
    assert project.routed() is None
    with pytest.raises(ProjectError, match="Auto needs"):
        project.classify([folder / "red"], AUTO)


def test_a_task_cannot_be_called_auto(tmp_path):
    folder = make_task_folder(tmp_path / "Auto", ("red", "green"), 4, size=32, seed=3)
    project = Project.create(tmp_path / "p", "clr", backbone="tiny")
    with pytest.raises(ProjectError, match="reserved"):
        project.add_task(folder)
    assert project.add_task(folder, name="auto-colours")["name"] == "auto-colours"
