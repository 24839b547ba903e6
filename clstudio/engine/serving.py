"""Classify on the CPU through ONNX Runtime: the same task model `export-model` writes, run by a runtime
that fuses BatchNorm into the convolutions and picks faster CPU kernels than eager torch (EfficientNet-Lite0
CLR at 224 px, 2 threads: about 10 ms a forward instead of 31 ms; bench/classify_latency.py).

Each task's model (and, for Auto, the anchor's feature extractor) is exported once and kept in the user's
cache folder under a key made of everything its weights come from — the backbone's fingerprint, the
strategy and its settings, the preprocessing, the task's and the shared weight files' digests — so a
changed or retrained task can never be served from a stale file, and the app (which reopens the project
for each classify job) pays the export (about 2 s) once per task, not per image.

Eager torch stays the fallback, with a note in the log, whenever the fast path is not there: onnxruntime
not installed, a GPU (torch is already fast there), a one-head strategy (no task model to export), an
export that fails, or ``CLSTUDIO_CLASSIFY_RUNTIME=torch``. The two agree within 1e-4 on every probability
(tests/engine/test_serving.py, tests/engine/test_export.py)."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from clstudio.engine.data.dataset import Preprocessing
from clstudio.engine.records import TaskEntry
from clstudio.engine.storage import atomic_write_bytes
from clstudio.engine.strategies.base import Strategy

log = logging.getLogger(__name__)

RUNTIME_ENV = "CLSTUDIO_CLASSIFY_RUNTIME"  # "torch": always the eager path (comparisons, debugging)
KEEP_FILES = 32  # cached models kept (least recently used go first): ~14 MB each for Lite0
Predict = Callable[[torch.Tensor], torch.Tensor]  # uint8 [N,3,S,S] → float32 [N, C] (or features [N, D])


class AnchorModel(nn.Module):
    """Pixels in 0..1 → the anchor's pooled features (what the task router reads)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, features: nn.Module, prep: Preprocessing) -> None:
        super().__init__()
        self.features = features
        self.register_buffer("mean", torch.tensor(prep.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(prep.std).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features((images - self.mean) / self.std)


def runtime_available(strategy: Strategy) -> bool:
    if os.environ.get(RUNTIME_ENV, "").lower() == "torch" or strategy.device.type != "cpu":
        return False
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OnnxServing:
    """ONNX Runtime sessions of one project's task models, built on first use and cached on disk."""

    def __init__(
        self,
        strategy: Strategy,
        prep: Preprocessing,
        identity: dict[str, Any],
        weights_digest: Callable[[TaskEntry], str],
        folder: Path,
    ) -> None:
        """``identity``: what every model of this project is made from (backbone fingerprint, strategy and
        config, shared weights' digest); ``weights_digest``: of a task's own weight file; ``folder``: where
        the exported files are kept."""
        self.strategy, self.prep, self.folder = strategy, prep, folder
        self.weights_digest = weights_digest
        self.identity_in = identity
        self.identity = {**identity, "prep": asdict(prep), "torch": torch.__version__, "format": 1}
        self._sessions: dict[str, Any] = {}
        self._failed: set[str] = set()

    @property
    def enabled(self) -> bool:
        return runtime_available(self.strategy) and not self.strategy.class_incremental

    def task(self, task: TaskEntry) -> Predict | None:
        """The task's probabilities through ONNX Runtime, or None where it is not available."""

        def build() -> nn.Module:
            from clstudio.engine.export import task_model

            return task_model(self.strategy, task, self.prep)

        if not self.enabled:
            return None
        return self._predictor({"task_weights": self.weights_digest(task)}, build, "probabilities")

    def anchor(self) -> Predict | None:
        """The anchor's features through ONNX Runtime (Auto's router input), or None."""

        def build() -> nn.Module:
            with self.strategy.at_anchor():
                return AnchorModel(copy.deepcopy(self.strategy.features), self.prep)

        return self._predictor({"anchor": True}, build, "features")

    def _predictor(self, what: dict[str, Any], build: Callable[[], nn.Module], output: str) -> Predict | None:
        if not self.enabled:
            return None
        key = hashlib.sha256(json.dumps({**self.identity, **what}, sort_keys=True).encode()).hexdigest()[:32]
        if key in self._failed:
            return None
        session = self._sessions.get(key)
        if session is None:
            try:
                session = self._session(key, build, output)
            except Exception as e:  # an exporter or runtime gap must never stop classify: torch answers
                log.warning("ONNX Runtime path unavailable (%s: %s); classifying with torch", type(e).__name__, e)
                self._failed.add(key)
                return None
            self._sessions[key] = session

        def run(images_uint8: torch.Tensor) -> torch.Tensor:
            x = images_uint8.numpy().astype(np.float32) / np.float32(255.0)
            return torch.from_numpy(session.run(None, {"image": x})[0])

        return run

    def _session(self, key: str, build: Callable[[], nn.Module], output: str) -> Any:
        import onnxruntime as ort

        path = self.folder / f"{key}.onnx"
        if path.exists():
            os.utime(path)  # recently used: kept longest
        else:
            from clstudio.engine.export import onnx_bytes

            model = build().to("cpu", torch.float32).eval()
            atomic_write_bytes(path, onnx_bytes(model, self.prep.image_size, output))
            self._forget_old()
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # the thread count torch would have used
        options.inter_op_num_threads = 1
        # Without spinning, idle runtime threads sleep: a desktop app must not burn a core between images,
        # and torch's threads get the CPU back for decoding (measured: one image no slower).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def _forget_old(self) -> None:
        files = sorted(self.folder.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[KEEP_FILES:]:
            old.unlink(missing_ok=True)
