"""The linear probe as a strong baseline (training/probe.py): features once, logistic regression fit to
convergence by L-BFGS, L2 chosen on validation; and the paper's Adam probe still there as 'faithful'."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clstudio.engine import events as ev
from clstudio.engine.data.synthetic import make_task_folder
from clstudio.engine.evaluate import Evaluator
from clstudio.engine.project import Project
from clstudio.engine.storage import load_tensors
from clstudio.engine.training.probe import L2_GRID, fit_logistic_regression


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    return make_task_folder(tmp_path_factory.mktemp("probe") / "colours", ("red", "green", "blue"), 30, size=32, seed=2)


def test_fit_reaches_the_optimum_of_its_objective():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 16, generator=g, dtype=torch.float64)
    y = (x[:, 0] + 0.5 * torch.randn(120, generator=g, dtype=torch.float64) > 0).long() + (x[:, 1] > 1).long()
    w, b, ce = fit_logistic_regression(x, y, 3, l2=1e-2)
    assert ce == pytest.approx(float(F.cross_entropy(x @ w.T + b, y)))
    w.requires_grad_(True)
    b.requires_grad_(True)
    loss = F.cross_entropy(x @ w.T + b, y) + 1e-2 * (w * w).sum()
    gw, gb = torch.autograd.grad(loss, (w, b))
    assert max(gw.abs().max(), gb.abs().max()) < 1e-5  # a stationary point of a convex objective: the optimum
    w_strong, _, _ = fit_logistic_regression(x, y, 3, l2=1.0)
    assert w_strong.norm() < w.norm()  # the L2 strength is really applied


def _few_images_many_features(seed: int = 0):
    """Like a small folder on Lite0: fewer training images (60) than feature dimensions (200), noisy classes."""
    g = torch.Generator().manual_seed(seed)
    centers = 0.15 * torch.randn(3, 200, generator=g, dtype=torch.float64)
    ys, yv = torch.arange(60) % 3, torch.arange(30) % 3
    xs = centers[ys] + torch.randn(60, 200, generator=g, dtype=torch.float64)
    xv = centers[yv] + torch.randn(30, 200, generator=g, dtype=torch.float64)
    return xs, ys, xv, yv


@pytest.mark.parametrize("select", ["loss", "accuracy"])
def test_fit_head_keeps_the_l2_its_selection_rule_prefers(select):
    """Every L2 of the grid fit on its own (full dimension, from zeros) and scored by hand on validation: the
    head fit_head returns is the preferred one (lowest val loss / highest val accuracy, ties to the lower
    loss, then the stronger L2) — through the span-of-the-data and warm-start shortcuts."""
    from clstudio.engine.training.probe import fit_head

    xs, ys, xv, yv = _few_images_many_features()
    mean, std = xs.mean(0), xs.std(0, unbiased=False).clamp(min=1e-6)
    zs, zv = (xs - mean) / std, (xv - mean) / std
    scores = {}
    for l2 in L2_GRID:
        w, b, _ = fit_logistic_regression(zs, ys, 3, l2)
        logits = zv @ w.T + b
        acc, loss = float((logits.argmax(1) == yv).double().mean()), float(F.cross_entropy(logits, yv))
        scores[l2] = (-loss, acc, l2) if select == "loss" else (acc, -loss, l2)
    preferred = max(scores, key=lambda k: scores[k])
    # The grid really disagrees on this data (in val loss; accuracy may tie, and then the tie rule decides).
    assert len({round(v[0] if select == "loss" else v[1], 3) for v in scores.values()}) > 1
    head = torch.nn.Linear(200, 3).double()
    acc, l2, _ = fit_head(head, xs, ys, xv, yv, 3, select=select)
    assert l2 == preferred
    w, b, _ = fit_logistic_regression(zs, ys, 3, l2)
    with torch.no_grad():  # the same function of the features as the full-dimension fit of that L2
        assert torch.allclose(head(xv), zv @ w.T + b, rtol=0.02, atol=0.05)


def test_probe_task_trains_in_one_pass_and_its_head_is_the_fit(tmp_path, colours):
    p = Project.create(tmp_path / "p", strategy="linear_probe", backbone="tiny")
    p.add_task(colours)
    seen: list = []
    task = p.train_task("colours", observers=[seen.append])
    epochs = [e for e in seen if isinstance(e, ev.EpochEnded)]
    assert len(epochs) == 1 and task["epochs_run"] == 1 and task["probe_l2"] in L2_GRID
    steps = [e for e in seen if isinstance(e, ev.StepProgress)]
    assert steps and steps[-1].step == steps[-1].steps  # progress over the feature passes
    assert epochs[0].val_acc == task["best_val_acc"] and epochs[0].train_loss == epochs[0].train_loss  # not NaN
    # the stored head equals refitting on the same features: standardisation folded back in exactly
    index = p.task_index(task)
    method = p.training_method
    strategy = p.strategy
    strategy.activate_task(task["id"])
    strategy.eval()
    ev_ = p.evaluator()
    loader = ev_.loader(index["root"], [(r, int(y)) for r, y in index["train"]])
    feats, labels = [], []
    with torch.no_grad():
        for xb, yb, _ in loader:
            feats.append(strategy.features(p.preprocessing.normalise(xb)).double())
            labels.append(yb)
    x, y = torch.cat(feats), torch.cat(labels)
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp(min=1e-6)
    w, b, _ = fit_logistic_regression((x - mean) / std, y, 3, task["probe_l2"])
    head, _ = load_tensors(p.folder / task["weights"])
    # The same function of the features as a fit of the chosen L2 on them, standardisation folded back in
    # (weights of a weakly penalised fit are only as converged as L-BFGS leaves them: compare the logits).
    stored = x @ head["head.weight"].double().T + head["head.bias"].double()
    refit = ((x - mean) / std) @ w.T + b
    assert torch.equal(stored.argmax(1), refit.argmax(1))
    assert torch.allclose(stored, refit, rtol=0.02, atol=0.05)
    assert method.strategy is strategy
    # frozen backbone: the probe's task state is its head (beside it in the file: the router's class means)
    assert set(k for k in head if not k.startswith(("head.", "router."))) == set()


class Crash(Exception):
    pass


def test_probe_is_deterministic_and_resumes_after_its_one_epoch(tmp_path, colours, monkeypatch):
    p = Project.create(tmp_path / "ref", strategy="linear_probe", backbone="tiny")
    p.add_task(colours)
    p.train_pending()
    ref = load_tensors(p.folder / p.tasks[0]["weights"])[0]
    # A crash after the fit (its checkpoint is written) but before the commit: the next run resumes the fit.
    run = Project.create(tmp_path / "run", strategy="linear_probe", backbone="tiny")
    run.add_task(colours)
    real_rows = Evaluator.rows

    real_routed = Evaluator.routed_rows

    def crash(self, *args, **kwargs):
        raise Crash()

    monkeypatch.setattr(Evaluator, "rows", crash)
    monkeypatch.setattr(Evaluator, "routed_rows", crash)  # the probe evaluates through its router too
    with pytest.raises(Crash):
        run.train_pending()
    monkeypatch.setattr(Evaluator, "rows", real_rows)
    monkeypatch.setattr(Evaluator, "routed_rows", real_routed)
    again = Project.open(run.folder)
    assert again.resumable_tasks() == ["colours"]
    seen: list = []
    again.train_pending(observers=[seen.append], resume=True)
    assert any(isinstance(e, ev.TaskResumed) for e in seen)
    assert not any(isinstance(e, ev.StepProgress) for e in seen)  # no feature pass again
    got = load_tensors(again.folder / again.tasks[0]["weights"])[0]
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)
    assert again.doc["R"] == p.doc["R"]


def test_faithful_probe_trains_the_head_with_adam_epochs(tmp_path, colours):
    p = Project.create(tmp_path / "p", strategy="linear_probe", backbone="tiny", preset="faithful")
    p.reconfigure("linear_probe", {**p.config, "epochs": 3})
    p.add_task(colours)
    seen: list = []
    p.train_task("colours", observers=[seen.append])
    assert [e.epoch for e in seen if isinstance(e, ev.EpochEnded)] == [1, 2, 3]
    assert all(e.lr > 0 for e in seen if isinstance(e, ev.EpochEnded))


def test_clr_starts_from_the_probe_head_and_trains_its_adapters_from_epoch_one(tmp_path, colours, monkeypatch):
    """probe_head (with frozen BN): before epoch 1 the head is the logistic-regression fit on the identity-
    initialised network's features, picked by validation loss, and the CLR layers train in every epoch
    (no head-only warm-up eating the schedule)."""
    from clstudio.engine.data.dataset import ImageListDataset, image_loader
    from clstudio.engine.models.clr import clr_layers
    from clstudio.engine.training.per_task import PerTaskHeadTraining
    from clstudio.engine.training.probe import fit_head, frozen_features

    cfg = {"epochs": 2, "patience": 100, "bn": "frozen"}
    p = Project.create(tmp_path / "clr", strategy="clr", backbone="tiny", config=cfg)
    p.add_task(colours)
    heads, adapters_trained = [], []
    real_step = PerTaskHeadTraining.train_step

    def step(self, xb, yb, share=1.0):
        if not heads:
            heads.append((self.strategy.head.weight.detach().clone(), self.strategy.head.bias.detach().clone()))
        layers = clr_layers(self.strategy.features).values()
        adapters_trained.append(all(layer.conv.weight.requires_grad for layer in layers))
        return real_step(self, xb, yb, share)

    monkeypatch.setattr(PerTaskHeadTraining, "train_step", step)
    task = p.train_task("colours")
    assert task["probe_l2"] in L2_GRID and 0.0 <= task["probe_val_acc"] <= 1.0
    assert all(adapters_trained) and len(adapters_trained) >= 2

    # The same fit by hand, on the plain backbone's features (the CLR layers are the identity at epoch 0).
    probe = Project.create(tmp_path / "probe", strategy="linear_probe", backbone="tiny")
    probe.strategy.begin_task("x", 3)
    index = p.task_index(task)
    feats = []
    for split in ("train", "val"):
        items = [(r, int(y)) for r, y in index[split]]
        ds = ImageListDataset(index["root"], items, p.preprocessing.image_size, "none")
        feats.append(frozen_features(probe.strategy, probe.preprocessing, image_loader(ds, 64, False)))
    (xs, ys, _), (xv, yv, _) = feats
    head = torch.nn.Linear(xs.shape[1], 3)
    _, l2, _ = fit_head(head, xs, ys, xv, yv, 3, select="loss")
    assert l2 == task["probe_l2"]
    assert torch.allclose(heads[0][0], head.weight, atol=1e-5) and torch.allclose(heads[0][1], head.bias, atol=1e-5)


def test_probe_head_is_not_used_when_bn_re_estimates_statistics(tmp_path, colours):
    # A random backbone ('auto' → BN 'train'): the probe's eval-mode features are not what training sees.
    p = Project.create(tmp_path / "clr", strategy="clr", backbone="tiny", config={"epochs": 1, "patience": 100})
    p.add_task(colours)
    assert "probe_l2" not in p.train_task("colours")


def test_clr_keeps_the_probe_when_no_epoch_beats_it_on_validation(tmp_path, colours):
    """The probe head is 'epoch 0' of the best-epoch choice: with a learning rate that wrecks every epoch,
    the task ends as the probe (adapters at the identity), never worse than it on validation."""
    from clstudio.engine.models.clr import clr_layers

    cfg = {"epochs": 2, "patience": 100, "bn": "frozen", "lr": 50.0}
    p = Project.create(tmp_path / "clr", strategy="clr", backbone="tiny", config=cfg)
    p.add_task(colours)
    seen: list = []
    task = p.train_task("colours", observers=[seen.append])
    epochs = [e for e in seen if isinstance(e, ev.EpochEnded)]
    assert task["best_epoch"] == 0 and all(e.val_acc < task["best_val_acc"] for e in epochs)
    assert task["best_val_acc"] == pytest.approx(task["probe_val_acc"], abs=1e-6)
    weights = load_tensors(p.folder / task["weights"])[0]
    for path in clr_layers(p.strategy.features):
        kernel = weights[f"{path}.conv.weight"]
        identity = torch.zeros_like(kernel)
        identity[:, 0, 1, 1] = 1.0
        assert torch.equal(kernel, identity), path


def _image_of(folder, cls):
    return next(p for p in sorted((folder / cls).iterdir()) if p.is_file())


def test_clr_probe_model_is_live_for_classify_while_clr_trains(tmp_path, colours):
    """The first usable model: the probe head CLR starts from is saved before epoch 1, and a second Project
    opened from disk (what the app's Classify does while the training process works) answers with it; when
    the task commits the live file goes and the trained model answers."""
    from clstudio.engine.views import SavedProject

    cfg = {"epochs": 2, "patience": 100, "bn": "frozen"}
    p = Project.create(tmp_path / "clr", strategy="clr", backbone="tiny", config=cfg)
    p.add_task(colours)
    image = _image_of(colours, "green")
    seen: list = []
    while_training: dict = {}

    def observe(event):
        seen.append(event)
        if isinstance(event, ev.ModelLive):
            view = SavedProject(p.folder)
            while_training["listed"] = view.classifiable_names()
            while_training["live"] = view.live_model("colours")
            # What answers is the probe: the live file holds the head the trainer has just fit.
            trainer_head = p.strategy.head.weight.detach()
            live_head = load_tensors(p.store.live_model_path(p.task("colours")))[0]["head.weight"]
            while_training["same_head"] = torch.equal(trainer_head, live_head)
            while_training["rows"] = Project.open(p.folder, device="cpu").classify([image], "colours", top_k=3)
        if isinstance(event, ev.EpochEnded):
            while_training.setdefault("epochs_after_live", 0)
            while_training["epochs_after_live"] += "live" in while_training

    task = p.train_task("colours", observers=[observe])
    live = [e for e in seen if isinstance(e, ev.ModelLive)]
    assert len(live) == 1 and live[0].model == "probe" and live[0].seconds > 0
    assert live[0].val_acc == pytest.approx(task["probe_val_acc"], abs=1e-6)
    assert while_training["listed"] == ["colours"] and while_training["epochs_after_live"] == 2
    assert while_training["live"]["val_acc"] == pytest.approx(live[0].val_acc, abs=1e-5)
    (row,) = while_training["rows"]
    assert row["task"] == "colours" and [c for c, _ in row["top"]][0] in task["classes"]
    assert sum(prob for _, prob in row["top"]) == pytest.approx(1.0, abs=1e-4)
    assert while_training["same_head"]
    assert not any(p.folder.glob("checkpoints/*"))  # the live file went when the task committed...
    assert SavedProject(p.folder).live_model("colours") is None  # ...and a trained task has no live model
    assert [r["event"] for r in p.history()].count("ModelLive") == 1
    assert Project.open(p.folder, device="cpu").classify([image], "colours")[0]["top"]


def test_a_live_model_goes_with_a_cancel_stays_for_resume_and_is_ignored_after_a_settings_change(tmp_path, colours):
    from clstudio.engine.errors import Cancelled
    from clstudio.engine.errors import ProjectError as NotTrained
    from clstudio.engine.storage import load_tensors as load

    cfg = {"epochs": 3, "patience": 100, "bn": "frozen"}
    image = _image_of(colours, "red")

    def stop_in_second_epoch(kind):
        def observe(event):  # the second epoch's end: epoch 1's checkpoint is written
            if isinstance(event, ev.EpochEnded) and event.epoch == 2:
                raise kind()

        return observe

    # Cancelled: the person's choice, everything of the run goes.
    p = Project.create(tmp_path / "cancelled", strategy="clr", backbone="tiny", config=cfg)
    p.add_task(colours)
    with pytest.raises(Cancelled):
        p.train_task("colours", observers=[stop_in_second_epoch(Cancelled)])
    assert not p.store.live_model_path(p.task("colours")).exists()
    with pytest.raises(NotTrained, match="not trained yet"):
        Project.open(p.folder).classify([image], "colours")

    # A crash (any other error): the checkpoint and the live model stay, and Classify uses the probe.
    p = Project.create(tmp_path / "crashed", strategy="clr", backbone="tiny", config=cfg)
    p.add_task(colours)
    with pytest.raises(KeyboardInterrupt):
        p.train_task("colours", observers=[stop_in_second_epoch(KeyboardInterrupt)])
    task = p.task("colours")
    head = load(p.store.live_model_path(task))[0]["head.weight"]
    reopened = Project.open(p.folder)
    assert reopened.classifiable_names() == ["colours"] and reopened.resumable_tasks() == ["colours"]
    row = reopened.classify([image], "colours")[0]
    assert row["task"] == "colours" and torch.equal(reopened.strategy.task_states[task["id"]]["head.weight"], head)
    # Other settings make it another training: that probe is not this task's model any more.
    reopened.reconfigure("clr", {**cfg, "lr": 0.01})
    assert Project.open(p.folder).live_model("colours") is None
    with pytest.raises(NotTrained, match="not trained yet"):
        Project.open(p.folder).classify([image], "colours")


def test_clearly_better_is_a_sign_test_on_the_images_the_two_disagree_on():
    from clstudio.engine.metrics import clearly_better

    assert not clearly_better(0, 0)  # the same answers: nothing to choose
    assert not clearly_better(3, 1)  # +2 points on 100 images: luck at this size
    assert not clearly_better(6, 2)
    assert clearly_better(4, 0) and clearly_better(12, 3)
    assert not clearly_better(3, 12)


@pytest.mark.parametrize(("gain", "kept"), [(2, "probe"), (12, "clr")])
def test_clr_replaces_its_probe_only_when_clearly_better_on_validation(tmp_path, colours, monkeypatch, gain, kept):
    """Scripted validation answers: the probe gets the first 30 of 60 images right; every CLR epoch gets
    ``gain`` more right (and loses none). Two more is what the best of many epochs reaches by luck: the probe
    stays (its weights: adapters at the identity) and the task says why; twelve more is a clear win."""
    from clstudio.engine.models.clr import clr_layers
    from clstudio.engine.training.per_task import PerTaskHeadTraining

    calls: list[int] = []

    def scripted(self):
        right = torch.zeros(60, dtype=torch.bool)
        right[: 30 if not calls else 30 + gain] = True
        calls.append(1)
        return float(right.double().mean()), 1.0 - len(calls) * 0.01, right

    monkeypatch.setattr(PerTaskHeadTraining, "_validate_answers", scripted)
    monkeypatch.setattr(PerTaskHeadTraining, "_probe_answers", lambda self, xv, yv: scripted(self))
    cfg = {"epochs": 2, "patience": 100, "bn": "frozen"}
    p = Project.create(tmp_path / "clr", strategy="clr", backbone="tiny", config=cfg)
    p.add_task(colours)
    seen: list = []
    task = p.train_task("colours", observers=[seen.append])
    finished = next(e for e in seen if isinstance(e, ev.TaskFinished))
    weights = load_tensors(p.folder / task["weights"])[0]
    at_identity = []
    for path in clr_layers(p.strategy.features):
        identity = torch.zeros_like(weights[f"{path}.conv.weight"])
        identity[:, 0, 1, 1] = 1.0
        at_identity.append(torch.equal(weights[f"{path}.conv.weight"], identity))
    if kept == "probe":
        assert task["best_epoch"] == 0 and finished.best_epoch == 0 and all(at_identity)
        assert task["best_val_acc"] == pytest.approx(0.5)
        assert task["probe_kept_over"] == {"epoch": 2, "val_acc": pytest.approx(32 / 60), "wins": 2, "losses": 0}
    else:
        assert task["best_epoch"] == 2 and not all(at_identity) and "probe_kept_over" not in task
    # 'better' is the old rule: any gain replaces the probe
    p2 = Project.create(tmp_path / "better", strategy="clr", backbone="tiny", config={**cfg, "replace_probe": "better"})
    p2.add_task(colours)
    calls.clear()
    assert p2.train_task("colours")["best_epoch"] == 2


def test_the_probe_answers_come_from_its_fit_features_and_equal_a_validation_pass(tmp_path, colours, monkeypatch):
    """CLR's probe is judged on the validation features its fit computed (no second pass over the images):
    the same answers, accuracy and loss as a pass through the model, the adapters being the identity."""
    from clstudio.engine.training.per_task import PerTaskHeadTraining

    pairs: list = []
    from_features = PerTaskHeadTraining._probe_answers

    def both(self, xv, yv):
        mine = from_features(self, xv, yv)
        pairs.append((mine, self._validate_answers()))
        return mine

    monkeypatch.setattr(PerTaskHeadTraining, "_probe_answers", both)
    p = Project.create(tmp_path / "clr", strategy="clr", backbone="tiny", config={"epochs": 1, "bn": "frozen"})
    p.add_task(colours)
    p.train_task("colours")
    assert len(pairs) == 1
    (acc, loss, right), (acc_pass, loss_pass, right_pass) = pairs[0]
    assert right.dtype == torch.bool and len(right) >= 3  # the task's validation images, each answered
    assert torch.equal(right, right_pass) and acc == acc_pass and loss == pytest.approx(loss_pass, rel=1e-5)
