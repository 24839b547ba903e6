"""The command line's arguments. Strategy, backbone and preset choices come from the registries, so a
newly registered strategy or backbone shows up here without editing help text."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

Command = Callable[[argparse.Namespace], int]


def _choices() -> tuple[dict[str, str], dict[str, str], dict[str, list[str]]]:
    from clstudio.engine.models.backbones import list_backbones
    from clstudio.engine.strategies import get_strategy_class, list_strategies

    strategies = list_strategies()
    presets = {name: list(get_strategy_class(name).PRESETS) for name in strategies}
    return strategies, list_backbones(), presets


def build_parser(commands: dict[str, Command]) -> argparse.ArgumentParser:
    from clstudio import __version__

    strategies, backbones, presets = _choices()
    p = argparse.ArgumentParser(
        prog="clstudio",
        description="CL Studio: learn image tasks one after another, without forgetting. "
        "With no command, opens the app.",
    )
    p.add_argument("--version", action="version", version=f"clstudio {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def project_arg(sp: argparse.ArgumentParser, device: bool = True) -> None:
        # None: resolved in run(), since creating the data folder is not the parser's business.
        sp.add_argument("--project", default=None, help="project folder (default: <data dir>/projects/default)")
        if device:
            sp.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")

    def command(name: str, help_: str, **kwargs: Any) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, **kwargs)
        sp.set_defaults(func=commands[name])
        return sp

    # Handled in __main__ before this parser (it needs Qt); listed here so --help shows it.
    sub.add_parser("app", help="open the desktop app (as clstudio-gui does): clstudio app [PROJECT]")
    t = command("train", "add tasks (folders of class subfolders) and train every untrained task")
    project_arg(t)
    t.add_argument("--task", action="append", metavar="FOLDER", help="a folder with one subfolder per class; repeat")
    t.add_argument(
        "--strategy",
        choices=list(strategies),
        help="fixed at project creation (default clr); `clstudio list` describes each",
    )
    t.add_argument("--backbone", choices=list(backbones), help="default efficientnet_lite0 (see `clstudio list`)")
    t.add_argument("--backbone-weights", metavar="FILE", help="ImageNet weights file for resnet18/resnet50")
    all_presets = sorted({name for names in presets.values() for name in names})
    t.add_argument(
        "--preset",
        choices=all_presets,
        help="the paper's recipe instead of the defaults for small folders: "
        + "; ".join(f"{k}: {', '.join(v)}" for k, v in presets.items() if v),
    )
    t.add_argument("--sparsity", type=float, help="SparCL weight sparsity (0.75, 0.90, 0.95 in the paper)")
    t.add_argument("--replay", choices=["derpp", "er"], help="rehearsal of SparCL / DER++ / ER")
    t.add_argument("--buffer", type=int, dest="buffer_size", help="rehearsal buffer size in samples")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--image-size", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--augment", choices=["none", "light", "crop_pad"])
    t.add_argument("--resume", action="store_true", help="continue an interrupted task from its last epoch checkpoint")
    t.add_argument(
        "--nproc",
        type=int,
        default=0,
        metavar="N",
        help="train with N processes on this machine (torch.distributed: gloo on the CPU, NCCL with one GPU each); "
        "for several machines run `torchrun ... -m clstudio train` (README)",
    )
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="any strategy setting (see `clstudio list`)")

    e = command("eval", "print the accuracy matrix R and ACC / BWT / forgetting")
    project_arg(e)
    e.add_argument("--json", action="store_true")
    e.add_argument("--recompute", action="store_true", help="re-evaluate every task with the stored weights")
    e.add_argument("--task", metavar="NAME", help="one task's confusion matrix and per-class precision / recall / F1")
    e.add_argument("--after", metavar="NAME", help="as evaluated after this task was trained (default: the last)")
    e.add_argument(
        "--flips", action="store_true", help="after each task, which earlier images went right → wrong and back"
    )

    v = command(
        "verify",
        "check the zero-forgetting proof (CLR, linear probe): every task's weights and answers as when trained",
    )
    project_arg(v)

    r = command("report", "one self-contained HTML file: data, settings, R, curves, per-class results, proof")
    project_arg(r, device=False)
    r.add_argument("-o", "--output", required=True, metavar="FILE", help="the .html file to write")

    c = command("classify", "top-k classes of images or folders of images, for a task or the task they belong to")
    project_arg(c)
    c.add_argument(
        "--task",
        default=None,
        help="task name, or 'auto': the router chooses the task and says 'none of my tasks' for an image far from "
        "every task (default: auto with two or more trained tasks, else the only one)",
    )
    c.add_argument("--top-k", type=int, default=5)
    c.add_argument("--json", action="store_true")
    c.add_argument(
        "--csv", metavar="FILE", help="also write one row per image: path, task, top class, probability, top-k"
    )
    c.add_argument("images", nargs="+", help="image files or folders (every image inside, recursively)")

    i = command("info", "tasks, classes, image counts, bytes stored per task")
    project_arg(i, device=False)
    i.add_argument("--json", action="store_true")

    d = command("make-demo", "write two small generated tasks to try CL Studio on")
    d.add_argument("folder")
    d.add_argument("--per-class", type=int, default=30)

    b = command("bundle", "a whole project as one .zip file: `bundle export` writes one, `bundle import` unpacks it")
    bsub = b.add_subparsers(dest="action", metavar="ACTION", required=True)
    bx = bsub.add_parser("export", help="write the project to one .zip bundle")
    project_arg(bx, device=False)
    bx.add_argument("bundle", help="the .zip file to write")
    bm = bsub.add_parser("import", help="unpack a .zip bundle into a new project folder")
    bm.add_argument("bundle")
    bm.add_argument("--project", required=True, help="the new project folder (must be new or empty)")

    x = command(
        "export-model", "one task's model as ONNX or TorchScript, with a JSON sidecar (classes, input, normalisation)"
    )
    project_arg(x, device=False)
    x.add_argument("--task", required=True, help="task name")
    x.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    x.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="the model file (or a folder for <task>.onnx/.pt)"
    )

    command("list", "strategies with their settings, and backbones")
    return p
