"""Per-task cost of CLR: parameters and bytes on disk, broken down CLR / BN affine / BN stats / head.

    python bench/clr_overhead.py [--classes 10]

Counts come from the real strategy's per-task state (what CL Studio stores per task), saved to a real
safetensors file to measure bytes on disk. Percentages are of the backbone's parameters without its
ImageNet classifier (the anchor CL Studio keeps frozen).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from clstudio.engine.models.backbones import create_backbone
from clstudio.engine.storage import save_tensors
from clstudio.engine.strategies import create_strategy
from clstudio.engine.strategies.registry import make_config


def breakdown(arch: str, classes: int, full: bool = False) -> dict[str, float]:
    bb = create_backbone(arch, weights="random")  # shapes only; pretrained values do not change the counts
    anchor = sum(p.numel() for p in bb.model.parameters())
    s = create_strategy("clr", bb, make_config("clr", {"full": full}), "cpu")
    s.begin_task("t", classes)
    s.end_task("t")
    state = s.task_states["t"]
    parts = {"clr": 0, "bn_affine": 0, "bn_stats": 0, "head": 0}
    for k, v in state.items():
        if k.startswith("head."):
            parts["head"] += v.numel()
        elif k.endswith(".conv.weight"):
            parts["clr"] += v.numel()
        elif k.endswith((".weight", ".bias")):
            parts["bn_affine"] += v.numel()
        elif k.endswith(("running_mean", "running_var")):
            parts["bn_stats"] += v.numel()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "task.safetensors"
        save_tensors(path, state, {"kind": "task"})
        size = path.stat().st_size
    trainable = s.count_trainable()
    return {"anchor": anchor, **parts, "trainable": trainable, "bytes": size}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, default=10)
    args = ap.parse_args()
    print(f"Per-task CLR state with C = {args.classes} classes (percent of the frozen backbone's parameters)\n")
    head = (
        f"{'backbone':<22}{'anchor params':>14}{'CLR':>16}{'BN γβ':>16}{'BN μσ²':>16}{'head':>14}"
        f"{'trainable':>18}{'bytes/task':>12}"
    )
    print(head)
    for arch, full in (("resnet50", False), ("resnet50", True), ("resnet18", False), ("efficientnet_lite0", False)):
        r = breakdown(arch, args.classes, full)

        def pct(n: int, anchor: int = r["anchor"]) -> str:
            return f"{n:,} {100 * n / anchor:.2f}%"

        name = arch + (" (CLR-Full)" if full else "")
        print(
            f"{name:<22}{r['anchor']:>14,}{pct(r['clr']):>16}{pct(r['bn_affine']):>16}{pct(r['bn_stats']):>16}"
            f"{pct(r['head']):>14}{pct(r['trainable']):>18}{r['bytes']:>12,}"
        )
    print("\nTarget (paper, ResNet-50): trainable parameters per task ≤ 0.6 % of the backbone.")


if __name__ == "__main__":
    main()
