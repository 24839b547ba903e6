"""Training: one loop (``loop.py``) and the two ways a task trains inside it — a head per task
(``per_task.py``: CLR, linear probe, fine-tune) and rehearsal over one growing head (``rehearsal.py``:
ER, DER++, SparCL), plus the linear probe's fit on frozen features (``probe.py``). Each strategy names its
way in ``Strategy.training``."""

from __future__ import annotations

from clstudio.engine.data.dataset import DecodeCache, Preprocessing
from clstudio.engine.strategies.base import Strategy
from clstudio.engine.strategies.rehearsal import RehearsalStrategy
from clstudio.engine.training.loop import FitResult, TaskData, TrainingLoop, TrainingMethod
from clstudio.engine.training.per_task import PerTaskHeadTraining
from clstudio.engine.training.probe import FrozenFeatureProbe
from clstudio.engine.training.rehearsal import RehearsalTraining, TaskSource

__all__ = ["FitResult", "TaskData", "TrainingLoop", "TrainingMethod", "training_for"]


def training_for(
    strategy: Strategy, prep: Preprocessing, cache: DecodeCache, task_source: TaskSource
) -> TrainingMethod:
    """The training method the strategy declares; ``task_source`` gives earlier tasks' data to replay."""
    if strategy.training == "rehearsal":
        assert isinstance(strategy, RehearsalStrategy)
        return RehearsalTraining(strategy, prep, cache, task_source)
    if strategy.training == "frozen_features":
        return FrozenFeatureProbe(strategy, prep, cache)
    return PerTaskHeadTraining(strategy, prep, cache)
