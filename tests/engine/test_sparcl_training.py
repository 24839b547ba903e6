"""SparCL / DER++ / ER through the real training loop and project (sparcl.md §12), on tiny generated folders."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from clstudio.cli import run as cli_run
from clstudio.engine import events as ev
from clstudio.engine.cancel import CancelToken
from clstudio.engine.data.synthetic import make_task_folder
from clstudio.engine.errors import Cancelled
from clstudio.engine.project import Project

FAST = dict(epochs=10, batch_size=8, lr=0.05, buffer_size=24, augment="none", dgm_refresh=3)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    d = tmp_path_factory.mktemp("sparcl-data")
    return [
        make_task_folder(d / "stripes", ("horizontal", "vertical"), 40, size=32, seed=1),
        make_task_folder(d / "colours", ("red", "green"), 40, size=32, seed=2),
        make_task_folder(d / "shapes", ("circle", "square"), 40, size=32, seed=3),
    ]


class Watcher:
    """Checks the loop's invariants as it runs (through the trainer's probe) and records what it saw."""

    def __init__(self, project: Project) -> None:
        self.s = project.strategy
        self.cfg = self.s.config
        self.removed: dict[str, set[int]] = {}
        self.ddr_sizes: dict[str, list[int]] = {}
        self.first_epoch_indices: dict[str, set[int]] = {}
        self.replayed: dict[str, int] = {}
        self.updates: list[int] = []
        self.support: dict[str, torch.Tensor] = {}
        self.refresh_density: list[float] = []

    def __call__(self, kind: str, facts: dict) -> None:
        getattr(self, kind)(**facts)

    def mask_update(self, epoch, step, before):
        self.updates.append(epoch)
        masks = self.s.masks
        for name, conv in masks.layers.items():
            n, mask = conv.weight.numel(), masks.masks[name]
            grown = mask & ~before[name]
            assert (conv.weight[grown] == 0).all(), "grown weights start at 0"
            if step.grow_to is not None and step.grow_to < step.shrink_to:
                assert step.grow_to * n <= int((~mask).sum()) < step.grow_to * n + 1
            else:
                assert int((~mask).sum()) >= step.shrink_to * n - 1
            g = self.s.retained_grads.get(name)
            if g is not None:  # the CWI gradient is the retained, masked one: zero where the old mask was off
                assert (g[~before[name]] == 0).all()

    def ddr(self, epoch, removed, scores):
        task = self.s.active
        kept_before = set(range(len(scores))) - self.removed.get(task, set())
        kept_after = kept_before - set(removed.tolist())
        assert scores[removed].max() <= min(scores[list(kept_after)])  # ties aside: easiest go first
        self.removed.setdefault(task, set()).update(removed.tolist())
        self.ddr_sizes.setdefault(task, []).append(len(kept_after))

    def step(self, epoch, batch, indices, replayed, task):
        assert not set(indices.tolist()) & self.removed.get(task, set()), "a removed sample came back"
        if epoch == 0:
            self.first_epoch_indices.setdefault(task, set()).update(indices.tolist())
        self.replayed[task] = self.replayed.get(task, 0) + replayed
        masks = self.s.masks
        for name, conv in masks.layers.items():
            assert (conv.weight[~masks.masks[name]] == 0).all(), "a masked weight moved"
            nz = conv.weight.grad != 0
            if batch % self.cfg.dgm_refresh == 0:
                self.support[name] = nz.clone()
                self.refresh_density.append(float(nz.float().mean()))
            else:
                assert not (nz & ~self.support[name]).any(), "update outside the DGM support"
        stem = self.s.features.features[0].weight
        assert (stem != 0).all(), "the stem is dense and never masked"


def test_sparcl_invariants_in_the_training_loop(tmp_path, folders):
    p = Project.create(tmp_path / "p", strategy="sparcl", backbone="tiny", config=FAST)
    for f in folders[:2]:
        p.add_task(f)
    watch = Watcher(p)
    p.training_method.probe = watch
    events: list = []
    p.train_pending(observers=[events.append])

    # TDM: updates only at the schedule's epochs (every epoch for 10 epochs), masks stay at the budget
    assert watch.updates == list(range(10)) * 2
    for name, frac in p.strategy.masks.sparsity().items():
        n = p.strategy.masks.layers[name].weight.numel()
        assert int(round(frac * n)) >= 0.75 * n - 1
    # DDR: 4 stages (epochs 1-4 of 10) of int(0.3·N/4), only the current task, full data again next task
    n_train = p.tasks[0]["train_images"]
    per = int(0.3 * n_train / 4)
    assert watch.ddr_sizes["t1"] == [n_train - per * k for k in range(1, 5)]
    assert len(watch.first_epoch_indices["t2"]) >= p.tasks[1]["train_images"] - FAST["batch_size"] + 1
    # DGM: density at refresh = min(1 − s, 1 − gs) = 0.2 (or a little less where gradients are exactly 0)
    assert watch.refresh_density and all(0.15 <= d <= 0.2 + 1e-3 for d in watch.refresh_density)
    # Replay: none on the first task though the buffer filled, then on every step
    assert watch.replayed["t1"] == 0 and watch.replayed["t2"] > 0
    buf = p.strategy.buffer
    assert len(buf) == FAST["buffer_size"] and set(buf.task.tolist()) <= {1, 2}
    second = buf.task == 2
    assert second.any() and (buf.width[second] == 4).all()
    assert (buf.logits[second][:, :2] != 0).all()  # DER++ stores raw, unmasked logits
    # Events and stored report
    assert any(isinstance(e, ev.SparsityUpdated) and e.per_layer for e in events)
    assert sum(isinstance(e, ev.DataRemoved) for e in events) == 8
    report = p.sparsity_report()
    assert report["layers"] == ["features.3", "features.6", "features.9"]  # every dense conv but the stem
    assert 0.9 < report["masked_weight_share"] < 1 and 0.5 < report["masked_mac_share"] < 1
    assert report["flops_dense"] / report["flops_used"] > 2.5
    assert len(p.doc["R_class_il"]) == 2 and len(p.doc["R_class_il"][1]) == 2


def test_reopen_restores_buffer_masks_and_predictions(tmp_path, folders):
    p = Project.create(tmp_path / "p", strategy="sparcl", backbone="tiny", config={**FAST, "epochs": 3})
    for f in folders[:2]:
        p.add_task(f)
    p.train_pending()
    image = sorted(folders[1].rglob("*.png"))[0]
    before = p.classify([image], "colours")
    again = Project.open(p.folder)
    assert again.classify([image], "colours") == before
    s1, s2 = p.strategy, again.strategy
    assert torch.equal(s1.buffer.logits, s2.buffer.logits) and torch.equal(s1.buffer.item, s2.buffer.item)
    assert all(torch.equal(s1.masks.masks[k], s2.masks.masks[k]) for k in s1.masks.masks)
    assert [c for c, _ in before[0]["top"]] and {c for c, _ in before[0]["top"]} <= {"red", "green"}  # Task-IL view


def test_cancel_rolls_back_head_masks_and_buffer(tmp_path, folders):
    p = Project.create(tmp_path / "p", strategy="sparcl", backbone="tiny", config={**FAST, "epochs": 3})
    for f in folders[:2]:
        p.add_task(f)
    p.train_task("stripes")
    saved = {k: v.clone() for k, v in p.strategy.shared_state().items()}
    token = CancelToken()

    def cancel(event):
        if isinstance(event, ev.StepProgress) and event.epoch == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        p.train_task("colours", observers=[cancel], cancel=token)
    now = p.strategy.shared_state()
    assert set(now) == set(saved) and all(torch.equal(now[k], saved[k]) for k in saved)
    assert p.strategy.head.out_features == 2 and [t["trained"] for t in p.tasks] == [True, False]
    p.train_task("colours")  # still usable
    assert p.strategy.head.out_features == 4


def test_dense_rehearsal_baselines_run(tmp_path, folders):
    for name in ("er", "derpp"):
        dense = {k: v for k, v in FAST.items() if k != "dgm_refresh"}
        p = Project.create(tmp_path / name, strategy=name, backbone="tiny", config={**dense, "epochs": 2})
        for f in folders[:2]:
            p.add_task(f)
        p.train_pending()
        assert p.strategy.masks is None and len(p.doc["R_class_il"]) == 2
        assert p.sparsity_report()["layers"] == []
        assert p.tasks[1]["flops_used"] == pytest.approx(p.tasks[1]["flops_dense"])  # dense: ratio exactly 1


def test_three_task_cli_run(tmp_path, folders, capsys):
    project = tmp_path / "cli"
    args = [
        "train",
        "--project",
        str(project),
        "--strategy",
        "sparcl",
        "--sparsity",
        "0.9",
        "--replay",
        "derpp",
        "--buffer",
        "30",
        "--backbone",
        "tiny",
        "--epochs",
        "4",
        "--batch-size",
        "8",
        "--augment",
        "none",
    ]
    for f in folders:
        args += ["--task", str(f)]
    assert cli_run(args) == 0
    out = capsys.readouterr().out
    assert "Class-IL" in out and "Task-IL" in out and "Training FLOPs" in out
    assert cli_run(["eval", "--project", str(project), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["tasks"] == ["stripes", "colours", "shapes"]
    cil = np.array([[v if v is not None else np.nan for v in row] for row in result["class_il"]["R"]])
    assert cil.shape == (3, 3) and np.isnan(cil[0, 1])
    assert result["strategy"] == "sparcl" and len(result["sparsity"]["tasks"]) == 3
    assert all(min(t["sparsity"]) >= 0.89 for t in result["sparsity"]["tasks"])
    assert result["sparsity"]["flops_dense"] / result["sparsity"]["flops_used"] > 3


def _easy_and_hard_folder(root, per_class_easy=20, per_class_hard=40):
    """Two classes: solid red / solid blue images (easy: learned in a few steps and never forgotten) and
    uniform noise filed under either class (hard: no pattern to learn). Returns (folder, easy file names)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    easy = set()
    for cls, colour in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
        (root / cls).mkdir(parents=True)
        for i in range(per_class_easy):
            pixels = np.clip(np.array(colour) + rng.integers(-15, 16, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / cls / f"easy-{i}.png")
            easy.add(f"{cls}/easy-{i}.png")
        for i in range(per_class_hard):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / cls / f"noise-{i}.png")
    return root, easy


def test_ddr_at_the_apps_epochs_removes_the_easy_samples(tmp_path):
    """10 epochs (the app's), so DDR's stages are one epoch apart: the removal must take the consistently
    easy images, not a random draw of whatever was right once (here half the removals would be noise)."""
    folder, easy = _easy_and_hard_folder(tmp_path / "easy-hard")
    p = Project.create(tmp_path / "p", strategy="sparcl", backbone="tiny", config=FAST)
    p.add_task(folder)
    watch = Watcher(p)
    p.training_method.probe = watch
    p.train_pending()
    index = p.store.index(p.tasks[0])
    names = [path for path, _ in index["train"]]
    removed = sorted(watch.removed["t1"])
    assert len(removed) == p.tasks[0]["ddr_removed"] >= 12
    removed_easy = sum(names[i] in easy for i in removed)
    share_easy_in_train = sum(n in easy for n in names) / len(names)
    assert share_easy_in_train < 0.4  # a random removal would be mostly noise
    assert removed_easy >= 0.9 * len(removed), f"{removed_easy} of {len(removed)} removed images are easy"


def test_unreadable_replay_images_are_replaced_counted_and_in_the_dense_reference(tmp_path, folders):
    """Files of an earlier task deleted before the next one trains: each unreadable buffer pick is replaced
    (DER++'s two replay batches stay full), counted and reported; the dense FLOPs reference counts the
    replay images the steps drew, not an assumed full stream."""
    cfg = {k: v for k, v in FAST.items() if k != "dgm_refresh"}
    p = Project.create(tmp_path / "p", strategy="derpp", backbone="tiny", config=cfg)
    p.add_task(folders[0])
    p.train_pending()
    index = p.store.index(p.tasks[0])
    (tmp_path / "gone").mkdir()
    for path, _ in index["train"][::2]:
        (folders[0] / path).rename(tmp_path / "gone" / path.replace("/", "_"))
    p = Project.open(p.folder)  # a new process: nothing decoded in memory
    p.add_task(folders[1])
    replayed: list[int] = []
    p.training_method.probe = lambda kind, facts: kind == "step" and replayed.append(facts["replayed"])
    events: list = []
    p.train_pending(observers=[events.append])
    t2 = p.tasks[1]
    assert t2["replay_unreadable"] > 0
    assert replayed and all(r == 2 * cfg["batch_size"] for r in replayed)
    assert any(isinstance(e, ev.Warning) and "could not be read" in e.message for e in events)
    macs = sum(p.training_method.macs.values())
    steps = t2["train_images"] // cfg["batch_size"]
    per_image = 2 * 3 * macs
    assert t2["flops_dense"] == pytest.approx(cfg["epochs"] * steps * per_image * 3 * cfg["batch_size"], rel=1e-9)


def test_cubic_ramp_prunes_the_first_task_gradually_then_tdm_takes_over(tmp_path, folders):
    """prune_start='cubic': the first epoch trains dense, then the
    masks reach s along s(1-(1-e/R)^3), R = 5 of 10 epochs, then TDM's schedule; the next task starts at s."""
    from clstudio.engine.strategies.sparcl import cubic_ramp

    p = Project.create(tmp_path / "p", strategy="sparcl", backbone="tiny", config={**FAST, "prune_start": "cubic"})
    assert all(v == 0.0 for v in p.strategy.masks.sparsity().values())  # nothing pruned before training
    for f in folders[:2]:
        p.add_task(f)
    seen: list[tuple[str, int, float, float]] = []

    def probe(kind, facts):
        if kind == "mask_update":
            got = float(np.mean(list(p.strategy.masks.sparsity().values())))
            seen.append((p.strategy.active, facts["epoch"], facts["step"].shrink_to, got))

    p.training_method.probe = probe
    p.train_pending()
    ramp = cubic_ramp(10, 0.75, 0.5)
    assert list(ramp) == [1, 2, 3, 4, 5] and ramp[5] == pytest.approx(0.75) and ramp[1] == pytest.approx(0.366)
    first = [(e, want, got) for task, e, want, got in seen if task == "t1"]
    assert [e for e, _, _ in first] == list(range(1, 10))  # epoch 0 dense; the ramp, then TDM on 6..9
    for e, want, got in first[:5]:
        assert want == pytest.approx(ramp[e]) and got == pytest.approx(ramp[e], abs=0.01)
    assert all(got >= 0.74 for _, _, got in first[5:])
    second = [e for task, e, _, _ in seen if task == "t2"]
    assert second == list(range(10))  # the second task: TDM's schedule from its first epoch


def test_prune_start_is_one_shot_unless_asked_and_checked():
    from clstudio.engine.errors import ProjectError
    from clstudio.engine.strategies.registry import make_config

    assert make_config("sparcl", {}).prune_start == "one-shot"  # what measured best on Lite0 (README)
    with pytest.raises(ProjectError, match="prune_start.* must be one of one-shot, cubic"):
        Project.create(Path(tempfile.mkdtemp()) / "p", "sparcl", backbone="tiny", config={"prune_start": "gradual"})


def test_app_learning_rates_are_the_measured_ones_and_the_paper_preset_keeps_its_own():
    from clstudio.engine.strategies.registry import make_config

    # README, "SparCL in the app": the rehearsal baselines' best rate and SparCL's differ on a pretrained Lite0.
    assert (make_config("derpp").lr, make_config("er").lr, make_config("sparcl").lr) == (0.1, 0.1, 0.3)
    assert make_config("sparcl").masked_lr == 0.0  # one rate for every weight: a separate one was not robust
    assert {make_config(name, preset="paper").lr for name in ("derpp", "er", "sparcl")} == {0.03}
    assert make_config("sparcl", {"lr": 0.05}).lr == 0.05  # a user's own rate still wins


def test_masked_convs_step_at_their_own_rate_and_the_rest_at_lr(tmp_path, folders):
    p = Project.create(tmp_path / "p", "sparcl", backbone="tiny", config={**FAST, "epochs": 1, "masked_lr": 0.4})
    p.add_task(folders[0])
    s, method = p.strategy, p.training_method
    seen: list[dict[str, float]] = []

    def probe(kind: str, facts: dict) -> None:
        if kind != "step" or seen:
            return
        # After the first step: every trainable tensor moved by exactly −rate·gradient (plain SGD).
        for name, param in named.items():
            if param.grad is None:
                continue
            moved = before[name] - param.detach()
            rate = float((moved.flatten() @ param.grad.flatten()) / param.grad.pow(2).sum().clamp(min=1e-30))
            seen.append({"name": name, "rate": rate, "masked": id(param) in masked})

    named = {n: q for n, q in s.features.named_parameters() if q.requires_grad}
    masked = {id(m.weight) for m in s.masks.layers.values()}
    before = {n: q.detach().clone() for n, q in named.items()}
    method.probe = probe
    p.train_pending()
    rates = {(row["masked"], round(row["rate"], 4)) for row in seen if abs(row["rate"]) > 0}
    assert rates == {(True, 0.4), (False, 0.05)}
    assert {n.removesuffix(".weight") for n, q in named.items() if id(q) in masked} == set(s.masks.layers)
    assert len(masked) >= 2
