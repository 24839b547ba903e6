"""Which task an image belongs to, and whether it belongs to any: a router on the frozen backbone's features.

Each class of every task is a Gaussian over the backbone's pooled features with one covariance shared by all
classes (Lee et al. 2018, "A Simple Unified Framework for Detecting Out-of-Distribution Samples"): an image
goes to the task of the nearest class mean in Mahalanobis distance, and is "none of my tasks" when that
distance is larger than the task's threshold, calibrated on the task's validation images.

Why the anchor's features: for CLR and the linear probe they are the same for every task and never change,
so the router reads nothing any task trains and cannot change any task's weights (zero forgetting holds).

What is stored (``router.*`` tensors in the task's weight file, a few KB plus a sample of validation features
for calibration): the class means and counts. The shared covariance is a project file of its own
(``weights/router-<n>.safetensors``: the within-class scatter summed over tasks), replaced at each commit.
The covariance is shrunk toward a scaled identity: a few hundred images in 1280 dimensions give a singular
one. The Oracle Approximating Shrinkage rule (Chen et al. 2010), which needs only the scatter's traces, is
the candidate used when there is nothing to choose on.

Before any of this the features go through Tukey's power transform (λ = ½, signed square root) and are scaled
to unit length, as FeCAM (Goswami et al., NeurIPS 2023) does for Mahalanobis on frozen features: pooled
activations are skewed, and the transform makes the classes closer to Gaussian. The shrinkage strength is
chosen on the stored validation features of every task (class accuracy; ties to the stronger shrinkage), the
way the probe's L2 is chosen; measured on Fashion-MNIST in bench/routing.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clstudio.engine.strategies.base import TensorDict

PREFIX = "router."
CALIBRATION_PER_CLASS = 16  # validation features kept per class to recalibrate thresholds as the covariance grows
THRESHOLD_QUANTILE = 0.98  # of a task's own validation images, this share stay inside its threshold
SHRINK_GRID = (0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9)  # shrinkage strengths tried, besides OAS's own


def prepare(features: torch.Tensor) -> torch.Tensor:
    """Tukey's λ = ½ (signed square root), then unit length: what the router's Gaussians are fit on."""
    x = features.double()
    x = x.sign() * x.abs().sqrt()
    return x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)


@dataclass
class TaskFeatureStats:
    """What one task contributes to the router, computed once from its training and validation features."""

    means: torch.Tensor  # [C, D] float64, class means of the training features
    counts: torch.Tensor  # [C] training images per class
    scatter: torch.Tensor  # [D, D] float64, within-class scatter Σ (x - μ_y)(x - μ_y)ᵀ of the training features
    calibration: torch.Tensor  # [V, D] float16, a per-class sample of the validation features
    calibration_labels: torch.Tensor  # [V]

    def task_tensors(self) -> TensorDict:
        """The task's own router tensors (not the scatter: it goes into the shared sum)."""
        return {
            "means": self.means.float(),
            "counts": self.counts.long(),
            "calibration": self.calibration.half(),
            "calibration_labels": self.calibration_labels.long(),
        }


def join_task_tensors(model: TensorDict, router: TensorDict) -> TensorDict:
    """One weight file's tensors: the task's model and, prefixed, its router tensors."""
    return {**model, **{PREFIX + k: v for k, v in router.items()}}


def task_feature_stats(
    train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor, classes: int
) -> TaskFeatureStats:
    """The task's router statistics from its anchor features (raw; ``prepare`` is applied here)."""
    x, val_x = prepare(train_x), prepare(val_x)
    means = torch.stack(
        [
            x[train_y == c].mean(0) if (train_y == c).any() else torch.zeros(x.shape[1], dtype=x.dtype)
            for c in range(classes)
        ]
    )
    centred = x - means[train_y]
    counts = torch.bincount(train_y, minlength=classes)
    keep = torch.cat([torch.nonzero(val_y == c).flatten()[:CALIBRATION_PER_CLASS] for c in range(classes)])
    return TaskFeatureStats(means, counts, centred.T @ centred, val_x[keep].half(), val_y[keep])


def split_task_tensors(tensors: TensorDict) -> tuple[TensorDict, TensorDict]:
    """(the task's model tensors, its router tensors) from one weight file."""
    model = {k: v for k, v in tensors.items() if not k.startswith(PREFIX)}
    router = {k[len(PREFIX) :]: v for k, v in tensors.items() if k.startswith(PREFIX)}
    return model, router


def add_to_shared(shared: TensorDict | None, stats: TaskFeatureStats) -> TensorDict:
    """The project's router file after a task: scatter, sample count and class count summed over tasks."""
    n, k = int(stats.counts.sum()), int((stats.counts > 0).sum())
    if shared is None:
        return {"scatter": stats.scatter.clone(), "samples": torch.tensor(n), "classes": torch.tensor(k)}
    return {
        "scatter": shared["scatter"].double() + stats.scatter,
        "samples": shared["samples"] + n,
        "classes": shared["classes"] + k,
    }


def remove_from_shared(shared: TensorDict, stats: TaskFeatureStats) -> TensorDict:
    """The router file with one task's statistics taken out again (the task was deleted): the sums are
    plain sums, so this is what the other tasks alone give, up to float64 rounding."""
    n, k = int(stats.counts.sum()), int((stats.counts > 0).sum())
    return {
        "scatter": shared["scatter"].double() - stats.scatter,
        "samples": shared["samples"] - n,
        "classes": shared["classes"] - k,
    }


def oas_shrinkage(cov: torch.Tensor, dof: int) -> float:
    """The OAS shrinkage strength ρ toward (tr Σ / D)·I for a sample covariance with ``dof`` degrees of freedom."""
    p = cov.shape[0]
    tr, tr2 = float(torch.trace(cov)), float((cov * cov).sum())
    num = (1 - 2 / p) * tr2 + tr * tr
    den = (dof + 1 - 2 / p) * (tr2 - tr * tr / p)
    return 1.0 if den <= 0 else min(1.0, num / den)


def shrunk_covariance(scatter: torch.Tensor, samples: int, classes: int, rho: float | None = None) -> torch.Tensor:
    """The pooled within-class covariance, shrunk toward (tr Σ / D)·I by ``rho`` (default: OAS's)."""
    dof = max(samples - classes, 1)
    s = scatter.double() / dof
    p = s.shape[0]
    rho = oas_shrinkage(s, dof) if rho is None else rho
    return (1 - rho) * s + rho * (float(torch.trace(s)) / p) * torch.eye(p, dtype=s.dtype)


@dataclass(frozen=True)
class Route:
    """Where one image goes: the task (None when far from every task), its distance and the task's threshold."""

    task: str | None
    nearest: str  # the nearest task, even when the image is too far from it
    distance: float
    threshold: float


class TaskRouter:
    """Routes features among the trained tasks given by ``tasks`` (task id → its router tensors)."""

    def __init__(self, tasks: dict[str, TensorDict], shared: TensorDict) -> None:
        if not tasks:
            raise ValueError("a router needs at least one trained task")
        self.task_ids = list(tasks)
        means: list[torch.Tensor] = []
        owner: list[int] = []
        calib: list[torch.Tensor] = []
        calib_labels: list[torch.Tensor] = []
        for i, tid in enumerate(self.task_ids):
            m = tasks[tid]["means"].double()
            if "calibration" in tasks[tid]:
                calib.append(tasks[tid]["calibration"].double())
                calib_labels.append(tasks[tid]["calibration_labels"].long() + len(owner))
            means.append(m)
            owner += [i] * len(m)
        self._raw_means = torch.cat(means)
        self._owner = torch.tensor(owner)
        samples, classes = int(shared["samples"]), int(shared["classes"])
        dof = max(samples - classes, 1)
        cov = shared["scatter"].double() / dof
        # One eigendecomposition serves every shrinkage strength: Σ_ρ = V ((1-ρ)Λ + ρ·tr(Σ)/D) Vᵀ.
        self._eigvals, self._eigvecs = torch.linalg.eigh(cov)
        self._target = float(torch.trace(cov)) / cov.shape[0]
        x_cal = torch.cat(calib) if calib else torch.zeros(0, cov.shape[0], dtype=torch.float64)
        y_cal = torch.cat(calib_labels) if calib_labels else torch.zeros(0, dtype=torch.long)
        self.shrinkage = self._choose_shrinkage(oas_shrinkage(cov, dof), x_cal, y_cal)
        self._use(self.shrinkage)
        self.thresholds = {tid: self._calibrate(i, tasks[tid]) for i, tid in enumerate(self.task_ids)}

    def _use(self, rho: float) -> None:
        scale = ((1 - rho) * self._eigvals.clamp(min=0) + rho * self._target).rsqrt()
        self._whiten = self._eigvecs * scale  # z = x W: Mahalanobis distance becomes Euclidean
        self._means = self._raw_means @ self._whiten

    def _choose_shrinkage(self, oas: float, x: torch.Tensor, y: torch.Tensor) -> float:
        """The strength whose nearest-class-mean accuracy on the stored validation features is highest; ties
        go to the stronger shrinkage (safer with few images). OAS's own when there is nothing to choose on."""
        if len(x) == 0:
            return oas
        best: tuple[float, float] | None = None
        for rho in sorted({*SHRINK_GRID, round(oas, 4)}):
            self._use(rho)
            acc = float((torch.cdist(x @ self._whiten, self._means).argmin(1) == y).double().mean())
            if best is None or (acc, rho) >= best:
                best = (acc, rho)
        assert best is not None
        return best[1]

    def task_distances(self, features: torch.Tensor) -> torch.Tensor:
        """[N, T] squared Mahalanobis distance of each image (raw anchor features) to the nearest class of each
        task."""
        return self._distances(prepare(features))

    def _distances(self, prepared: torch.Tensor) -> torch.Tensor:
        z = prepared @ self._whiten
        d = torch.cdist(z, self._means).pow(2)
        out = torch.full((len(z), len(self.task_ids)), float("inf"), dtype=d.dtype)
        return out.scatter_reduce(1, self._owner.expand(len(z), -1), d, reduce="amin")

    def route(self, features: torch.Tensor) -> list[Route]:
        d = self.task_distances(features)
        best, arg = d.min(dim=1)
        routes = []
        for dist, i in zip(best.tolist(), arg.tolist(), strict=True):
            tid = self.task_ids[i]
            thr = self.thresholds[tid]
            routes.append(Route(tid if dist <= thr else None, tid, dist, thr))
        return routes

    def _calibrate(self, index: int, tensors: TensorDict) -> float:
        """The distance within which THRESHOLD_QUANTILE of the task's validation images fall (to its own classes)."""
        x = tensors.get("calibration")
        if x is None or len(x) == 0:
            return float("inf")
        d = self._distances(x.double())[:, index]
        return float(torch.quantile(d, THRESHOLD_QUANTILE))


def ood_auroc(in_scores: torch.Tensor, out_scores: torch.Tensor) -> float:
    """Area under the ROC curve for telling out-of-distribution images (higher score) from in-distribution
    ones: the probability that a random OOD image scores above a random in-distribution one (ties count ½)."""
    a, b = in_scores.double().flatten(), out_scores.double().flatten()
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    greater = (b[:, None] > a[None, :]).double().mean()
    ties = (b[:, None] == a[None, :]).double().mean()
    return float(greater + 0.5 * ties)
