"""Can anything CLR's adapters learn from a small folder carry to new images? Epoch by epoch, on a *dev* set.

One 10-class task (30 training and 10 validation images per class by default), trained in this process with
the engine's own per-task training. After the probe head is fit and after every epoch, the model is scored on
a dev set of further images (50 per class by default) that neither trained it nor chose its epoch, and that
are not the test images `real_data.py` reports on: a recipe may be chosen here without touching those.
The default seed, 10, is kept apart from the seeds 0-2 the README reports.

Variants run one after another on the same images:
    clr[k=v;...]     CLR with any of its settings (`replace_probe` only decides what is kept at the end)
    lpft[backbone_lr=3e-5;k=v;...]
                     an upper bound, not a method the app offers: CLR plus *every* other backbone weight
                     trained at `backbone_lr` (LP-FT: linear probe, then fine-tune everything; Kumar et al.
                     2022), BatchNorm statistics kept as CLR keeps them. If even this does not beat the probe
                     on dev, no choice of which tensors to adapt will.

    python bench/clr_dev_curve.py --variants "clr,clr[augment=strong;adapter_lr=0.0003],lpft[backbone_lr=3e-5]"
    python bench/clr_dev_curve.py --dataset digits
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from real_data import DATASETS, parse_variant  # noqa: E402

from clstudio.engine.data.dataset import DecodeCache, Preprocessing  # noqa: E402
from clstudio.engine.evaluate import Evaluator  # noqa: E402
from clstudio.engine.events import EpochEnded, Event  # noqa: E402
from clstudio.engine.models.backbones import create_backbone  # noqa: E402
from clstudio.engine.models.clr import batchnorms, clr_layers  # noqa: E402
from clstudio.engine.strategies.clr import CLRStrategy  # noqa: E402
from clstudio.engine.strategies.registry import make_config  # noqa: E402
from clstudio.engine.training.loop import TaskData, TrainingLoop  # noqa: E402
from clstudio.engine.training.per_task import PerTaskHeadTraining  # noqa: E402


class FineTuneEverything(CLRStrategy):
    """CLR whose frozen backbone weights train too, at their own rate (the `lpft` upper bound)."""

    backbone_lr = 3e-5

    def _backbone_weights(self) -> list[nn.Parameter]:
        own = {id(layer.conv.weight) for layer in clr_layers(self.features).values()}  # type: ignore[union-attr]
        for bn in batchnorms(self.features).values():
            own |= {id(bn.weight), id(bn.bias)}
        weights = [p for p in self.features.parameters() if id(p) not in own]
        for p in weights:
            p.requires_grad_(True)
        return weights

    def trainable_parameters(self) -> list[nn.Parameter]:
        return super().trainable_parameters() + self._backbone_weights()

    def param_groups(self, params: list[nn.Parameter], lr: float) -> list[dict[str, Any]]:
        backbone = {id(p) for p in self._backbone_weights()}
        groups = super().param_groups([p for p in params if id(p) not in backbone], lr)
        return groups + [{"params": [p for p in params if id(p) in backbone], "lr": self.backbone_lr}]


class DevScored(PerTaskHeadTraining):
    """Scores the probe head on the dev set right after it is fit (before epoch 1 trains)."""

    def __init__(self, *args: Any, on_probe: Any) -> None:
        super().__init__(*args)
        self.on_probe = on_probe

    def start_epoch(self, epoch: int) -> None:
        super().start_epoch(epoch)
        if epoch == 1 and self.probe_state is not None:
            self.on_probe()


def split_items(folder: Path, split: str, lo: int, hi: int) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for label, d in enumerate(sorted(p for p in (folder / split).iterdir() if p.is_dir())):
        out += [(str(p.relative_to(folder)), label) for p in sorted(d.glob("*.png"))[lo:hi]]
    return out


def run_variant(spec: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    name, sets = parse_variant(spec)
    values: dict[str, Any] = {"image_size": args.image_size, "seed": args.seed}
    lpft_lr = None
    for kv in sets:
        key, raw = kv.split("=", 1)
        try:
            value = json.loads(raw)  # as `clstudio train --set` reads it
        except json.JSONDecodeError:
            value = raw
        if key == "backbone_lr":
            lpft_lr = float(value)
        else:
            values[key] = value
    if name not in ("clr", "lpft"):
        raise SystemExit(f"unknown variant {name!r}: clr[...] or lpft[...]")
    torch.manual_seed(args.seed)
    backbone = create_backbone(args.backbone, weights="pretrained")
    strategy = (FineTuneEverything if name == "lpft" else CLRStrategy)(backbone, make_config("clr", values), "cpu")
    if lpft_lr is not None:
        strategy.backbone_lr = lpft_lr  # type: ignore[attr-defined]
    prep = Preprocessing(args.image_size, backbone.mean, backbone.std)
    cache = DecodeCache(1 << 30)
    evaluator = Evaluator(strategy, prep, cache)
    dev = evaluator.loader(str(folder), split_items(folder, "val", args.val_per_class, args.val_per_class + args.dev))
    scores: dict[int, float] = {}  # epoch (0: the probe head) → dev accuracy

    def score(epoch: int, line: str) -> None:
        scores[epoch], _ = evaluator.accuracy_and_loss(dev)
        strategy.set_train_mode()
        print(f"{spec:<40} {line}  dev {scores[epoch]:.1%}", flush=True)

    method = DevScored(strategy, prep, cache, on_probe=lambda: score(0, "probe head        "))

    def observe(event: Event) -> None:
        if isinstance(event, EpochEnded):
            score(event.epoch, f"epoch {event.epoch:2d} loss {event.train_loss:.3f} val {event.val_acc:.1%}")

    train = split_items(folder, "train", 0, args.per_class)
    val = split_items(folder, "val", 0, args.val_per_class)
    start = time.monotonic()
    task = TaskData(str(folder), train, val, 10)
    result = TrainingLoop(method, [observe]).fit("dev-curve", "t", task, seed=args.seed)
    kept = result.best_epoch if result.best_epoch in scores else max(scores)
    row = {
        "variant": spec,
        "probe_dev": scores.get(0),
        "kept_epoch": result.best_epoch,
        "kept_dev": scores[kept],
        "best_dev_any_epoch": max(v for k, v in scores.items() if k > 0),
        "seconds": round(time.monotonic() - start, 1),
    }
    print(f"{spec:<40} kept epoch {result.best_epoch} (0 = the probe): dev {scores[kept]:.1%}", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="fashion-mnist", choices=sorted(DATASETS))
    ap.add_argument("--variants", default="clr,lpft[backbone_lr=3e-5]", help="settings go in [k=v;k=v]")
    ap.add_argument("--seed", type=int, default=10, help="10: kept apart from the seeds the README reports")
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--val-per-class", type=int, default=10)
    ap.add_argument("--dev", type=int, default=50, help="dev images per class")
    ap.add_argument("--image-size", type=int, default=160, help="what 'auto' picks for these 28 / 8 px images")
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "clstudio-bench"))
    ap.add_argument("--out", help="append one JSON line per variant here")
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    data = Path(args.work) / f"dev-{args.dataset}-{args.per_class}-{args.val_per_class}-{args.dev}-s{args.seed}"
    (folder,) = DATASETS[args.dataset](
        data, args.per_class, args.val_per_class + args.dev, 0, classes_per_task=10, seed=args.seed
    )
    rows = [run_variant(v, folder, args) for v in args.variants.split(",")]
    print(f"\n{args.dataset}, seed {args.seed}: accuracy on {args.dev} dev images per class (never trained on)")
    for r in rows:
        probe = "—" if r["probe_dev"] is None else f"{r['probe_dev']:.1%}"
        print(
            f"  {r['variant']:<40} probe {probe}   kept epoch {r['kept_epoch']}: {r['kept_dev']:.1%}"
            f"   best trained epoch on dev (optimistic) {r['best_dev_any_epoch']:.1%}   {r['seconds']:.0f} s"
        )
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps({"dataset": args.dataset, "seed": args.seed, **r}) + "\n")


if __name__ == "__main__":
    main()
