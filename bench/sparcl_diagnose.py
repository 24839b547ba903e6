"""Where does a rehearsal method's Class-IL accuracy go? Trains each method as ``bench/sparcl_real.py --mode app``
does (Fashion-MNIST 5 tasks × 2 classes, 100 training / 20 validation / 200 test images per class, Lite0 with
ImageNet weights), then reads the full logits of every test image and splits Class-IL into

- task-ID accuracy: the image's own task block holds the largest logit;
- within-task accuracy: the right class inside its own block (Task-IL over the pooled images);
- per task: its Class-IL entry and the share of all answers that land in its block;
- the mean largest logit per block, and the Class-IL left after subtracting it from each block (a label-free
  bias per task: if that recovers the accuracy, the loss was an offset, not the features);
- the mean norm of each task's head rows (about 0.58 at initialisation for Lite0's 1,280 features).

    python bench/sparcl_diagnose.py --seed 10 --methods "derpp[lr=0.01],sparcl-0.75[lr=0.01]"

A seed kept apart from the reported ones (10) is the place to choose settings; each method prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from fashion_mnist import write_tasks  # noqa: E402
from sparcl_real import train_project  # noqa: E402

from clstudio.engine.project import Project  # noqa: E402


@torch.no_grad()
def all_logits(p: Project) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
    """(logits over every class, global label, task number) of every test image, and each task's block."""
    s, evaluator = p.strategy, p.evaluator()
    s.show_all_classes()
    s.eval()
    logits, labels, tasks, blocks = [], [], [], []
    for number, task in enumerate(p.tasks):
        lo, hi = s.class_range(task["id"])
        blocks.append((lo, hi))
        test = p._eval_set(task)
        for xb, yb, _ in evaluator.loader(test.root, test.items):
            logits.append(s.forward(p.preprocessing.normalise(xb)).float())
            labels.append(yb + lo)
            tasks.append(torch.full_like(yb, number))
    return torch.cat(logits), torch.cat(labels), torch.cat(tasks), blocks


def diagnose(p: Project) -> dict:
    logits, y, task, blocks = all_logits(p)
    n_tasks = len(blocks)
    block_max = torch.stack([logits[:, lo:hi].max(1).values for lo, hi in blocks], 1)
    answer = logits.argmax(1)
    answer_task = torch.zeros_like(answer)
    for k, (lo, hi) in enumerate(blocks):
        answer_task[(answer >= lo) & (answer < hi)] = k
    lo_of = torch.tensor([lo for lo, _ in blocks])[task]
    within = (
        torch.stack([logits[i, blocks[t][0] : blocks[t][1]].argmax() for i, t in enumerate(task.tolist())]) + lo_of == y
    )
    offset = block_max.mean(0)
    shifted = logits.clone()
    for k, (lo, hi) in enumerate(blocks):
        shifted[:, lo:hi] -= offset[k]
    head = p.strategy.head
    assert head is not None
    return {
        "cil": round((answer == y).float().mean().item(), 4),
        "task_id_acc": round((block_max.argmax(1) == task).float().mean().item(), 4),
        "within": round(within.float().mean().item(), 4),
        "cil_block_offset": round((shifted.argmax(1) == y).float().mean().item(), 4),
        "per_task_cil": [round((answer == y)[task == k].float().mean().item(), 3) for k in range(n_tasks)],
        "answer_share": [round((answer_task == k).float().mean().item(), 3) for k in range(n_tasks)],
        "block_mean_max": [round(v, 2) for v in offset.tolist()],
        "head_row_norms": [round(float(head.weight[lo:hi].detach().norm(dim=1).mean()), 3) for lo, hi in blocks],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("--methods", default="derpp,sparcl-0.75")
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "clstudio-bench-diagnose"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    folders = write_tasks(work / f"fmnist-s{args.seed}-100-20-200-28px", 100, 20, 200, pad_to=0, seed=args.seed)
    for method in args.methods.split(","):
        p, _, wall = train_project(method, folders, work, args.seed, "app", args.image_size)
        train_s = sum(t["seconds"] for t in p.tasks)
        facts = {"method": method, "seed": args.seed, "wall_s": round(wall), "train_s": round(train_s)}
        print(json.dumps({**facts, **diagnose(p)}), flush=True)


if __name__ == "__main__":
    main()
