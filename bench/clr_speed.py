"""Train-step time of CLR ÷ full fine-tuning, same backbone, batch and device, measured in one run.

    python bench/clr_speed.py [--backbones resnet18,resnet50,efficientnet_lite0] [--size 224] [--batch 32]

Both strategies run CL Studio's own training step (PerTaskHeadTraining.train_step: channels_last, Adam, the CLR
regulariser), interleaved round by round so machine noise hits both alike; the median step is reported.
Frozen convs need no weight gradients, which is where CLR saves.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from clstudio.engine.data.dataset import DecodeCache, Preprocessing
from clstudio.engine.device import resolve_device
from clstudio.engine.models.backbones import create_backbone
from clstudio.engine.strategies import create_strategy
from clstudio.engine.strategies.registry import make_config
from clstudio.engine.training.per_task import PerTaskHeadTraining


def make(strategy: str, arch: str, device: str, classes: int, bn: str):
    bb = create_backbone(arch, weights="random")  # timing does not depend on the weight values
    config = make_config(strategy, {"bn": bn} if strategy == "clr" else {})
    s = create_strategy(strategy, bb, config, device)
    s.begin_task("t", classes)
    method = PerTaskHeadTraining(s, Preprocessing(224, bb.mean, bb.std), DecodeCache(0))
    params = [p for p in s.trainable_parameters() if p.requires_grad]
    # The step alone, without the loop's data: the optimiser and scaler begin() would make.
    method.params = params
    method.optimizer = torch.optim.Adam(params, lr=1e-4)
    method.scaler = torch.amp.GradScaler("cuda", enabled=False)
    return s, method


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbones", default="resnet18,resnet50,efficientnet_lite0")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--bn",
        default="frozen",
        choices=["frozen", "train"],
        help="CLR's BN mode: 'frozen' is the app default on pretrained backbones, 'train' the paper's",
    )
    args = ap.parse_args()
    device = resolve_device(args.device)
    print(
        f"device {device}, {torch.get_num_threads()} threads, batch {args.batch}, {args.size}×{args.size}, "
        f"CLR BN {args.bn}\n"
    )
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (args.batch, 3, args.size, args.size), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (args.batch,), generator=g)
    for arch in args.backbones.split(","):
        runs = {name: make(name, arch, device, 10, args.bn) for name in ("clr", "finetune", "linear_probe")}
        times: dict[str, list[float]] = {name: [] for name in runs}
        for r in range(args.rounds + 1):
            for name, (s, method) in runs.items():
                s.set_train_mode()
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                method.train_step(x, y)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                if r:  # round 0 warms up allocators and kernels
                    times[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"{arch:<20} step: CLR {med['clr'] * 1000:7.0f} ms   fine-tune {med['finetune'] * 1000:7.0f} ms   "
            f"linear probe {med['linear_probe'] * 1000:7.0f} ms   CLR ÷ fine-tune = {med['clr'] / med['finetune']:.2f}"
        )
    print("\nTarget on CPU: CLR ÷ fine-tune ≤ 0.70.")


if __name__ == "__main__":
    main()
