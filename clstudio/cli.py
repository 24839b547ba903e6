"""The command line: train / eval / classify / info / make-demo over the engine, no Qt involved."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import signal
import sys
import time
from pathlib import Path
from typing import Any

from clstudio.engine import events as ev
from clstudio.engine.cancel import CancelToken
from clstudio.engine.errors import Cancelled, CLStudioError, ProjectError
from clstudio.engine.paths import projects_dir


def _fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
    )


class ProgressPrinter:
    """Renders engine events on stderr: a live bar with ETA on a terminal, one line per epoch otherwise."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0

    def __call__(self, event: ev.Event) -> None:
        out = self.stream
        if isinstance(event, ev.TaskStarted):
            print(
                f"Training '{event.task}' on {event.device}: up to {event.epochs} epochs × {event.steps} steps",
                file=out,
            )
        elif isinstance(event, ev.StepProgress) and self.tty:
            now = time.monotonic()
            if now - self._last < 0.1 and event.step != event.steps:
                return
            self._last = now
            width = 24
            filled = int(width * event.step / max(event.steps, 1))
            bar = "█" * filled + "·" * (width - filled)
            out.write(
                f"\r  epoch {event.epoch} {bar} {event.step}/{event.steps}  loss {event.loss:.3f}  "
                f"{event.images_per_s:.0f} img/s  ETA {_fmt_time(event.eta_s)}   "
            )
            out.flush()
        elif isinstance(event, ev.EpochEnded):
            if self.tty:
                out.write("\r" + " " * 100 + "\r")
            star = " *" if event.best_epoch == event.epoch else ""
            extra = f"  ({event.skipped_images} unreadable images skipped)" if event.skipped_images else ""
            print(
                f"  epoch {event.epoch:>3}/{event.epochs}  loss {event.train_loss:.4f}  val acc {event.val_acc:.1%}"
                f"{star}  lr {event.lr:.0e}{extra}",
                file=out,
            )
        elif isinstance(event, ev.TaskFinished):
            print(
                f"Finished '{event.task}' in {_fmt_time(event.seconds)}: best val acc {event.best_val_acc:.1%} "
                f"(epoch {event.best_epoch} of {event.epochs_run})",
                file=out,
            )
        elif isinstance(event, ev.EvalFinished):
            cells = "  ".join(f"{t}: {a:.1%}" for t, a in zip(event.tasks, event.row, strict=True))
            print(f"  accuracy after '{event.after_task}': {cells}", file=out)
        elif isinstance(event, ev.TaskResumed):
            print(f"  resuming '{event.task}' after epoch {event.from_epoch}", file=out)
        elif isinstance(event, ev.Paused):
            print(f"\nPaused '{event.task}'.", file=out)


def _config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for flag, key in (
        ("epochs", "epochs"),
        ("batch_size", "batch_size"),
        ("lr", "lr"),
        ("image_size", "image_size"),
        ("seed", "seed"),
        ("augment", "augment"),
        ("sparsity", "sparsity"),
        ("replay", "replay"),
        ("buffer_size", "buffer_size"),
    ):
        if getattr(args, flag, None) is not None:
            values[key] = getattr(args, flag)
    for item in args.set or []:
        if "=" not in item:
            raise CLStudioError(f"--set expects key=value, got '{item}'")
        key, raw = item.split("=", 1)
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values


def _open_or_create(args: argparse.Namespace) -> Any:
    from clstudio.engine.project import Project

    folder = Path(args.project).expanduser()
    overrides = _config_overrides(args)
    if (folder / "project.json").exists():
        project = Project.open(folder, device=args.device)
        if args.strategy and args.strategy != project.strategy_name:
            raise ProjectError(
                f"{folder} uses strategy '{project.strategy_name}', not '{args.strategy}'. "
                f"Use a new --project for another strategy."
            )
        stored = project.doc["strategy"]["config"]
        changed = {k: v for k, v in overrides.items() if stored.get(k) != v}
        if changed:
            raise ProjectError(
                f"Settings are fixed when a project is created; {folder} has "
                + ", ".join(f"{k}={stored.get(k)!r}" for k in changed)
                + ". Use a new --project."
            )
        return project
    print(f"Creating project {folder} (strategy {args.strategy or 'clr'})", file=sys.stderr)
    return Project.create(
        folder,
        strategy=args.strategy or "clr",
        backbone=args.backbone,
        config=overrides,
        preset=args.preset,
        backbone_weights_file=args.backbone_weights,
        device=args.device,
    )


def _print_scan(report: Any) -> None:
    counts = report.counts()
    print(
        f"Task '{report.name}' ({report.layout} layout): {len(report.classes)} classes, "
        f"{len(report.train)} train / {len(report.eval_split)} eval images",
        file=sys.stderr,
    )
    for c, (a, b) in counts.items():
        print(f"    {c:<24} {a:>6} train {b:>6} eval", file=sys.stderr)
    if report.skipped:
        print(f"  skipped {len(report.skipped)} non-image or hidden entries", file=sys.stderr)
    for p in report.problems[:20]:
        print(f"  excluded {p.path}: {p.reason}", file=sys.stderr)
    if len(report.problems) > 20:
        print(f"  ... and {len(report.problems) - 20} more unusable files", file=sys.stderr)
    for w in report.warnings:
        print(f"  warning: {w}", file=sys.stderr)


def cmd_train(args: argparse.Namespace) -> int:
    from clstudio.engine.data.scan import scan_folder

    cancel = CancelToken()
    project = _open_or_create(args)
    known_sources = {t["source"]: t["name"] for t in project.tasks}
    for folder in args.task or []:
        source = str(Path(folder).expanduser().resolve())
        if source in known_sources:
            # Re-running the same command (e.g. with --resume after a crash) must not add the folder twice.
            print(f"'{folder}' is already task '{known_sources[source]}' in this project.", file=sys.stderr)
            continue

        def progress(done: int, total: int, name: str = Path(folder).name) -> None:
            if sys.stderr.isatty():
                sys.stderr.write(f"\r  checking images of '{name}': {done}/{total}")
                if done == total:
                    sys.stderr.write("\n")

        report = scan_folder(folder, progress=progress, cancel=cancel)
        _print_scan(report)
        project.add_task(report)
    if not project.pending_tasks():
        print("Nothing to train: every task in the project is trained. Add one with --task FOLDER.", file=sys.stderr)
        return 0
    previous = signal.getsignal(signal.SIGINT)

    def on_interrupt(signum: int, frame: Any) -> None:
        print("\nCancelling after this batch... (the current task is left untrained)", file=sys.stderr)
        cancel.cancel()

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        resumable = project.resumable_tasks()
        if resumable and not args.resume:
            print(
                f"Note: '{resumable[0]}' was interrupted; it starts over. Use --resume to continue it.", file=sys.stderr
            )
        project.train_pending(observers=[ProgressPrinter()], cancel=cancel, resume=args.resume)
    except Cancelled:
        print("Cancelled. Tasks finished before are saved; the interrupted task is untrained.", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    _print_matrix(project)
    return 0


def _print_matrix(project: Any) -> None:
    from clstudio.engine import metrics

    names = [project.task(t)["name"] for t in project.doc["R_tasks"]]
    if not names:
        print("No trained task yet.")
        return
    views = [("Task-IL", project.accuracy_matrix(), project.metrics())]
    if project.accuracy_matrix_class_il() is not None:
        views.insert(0, ("Class-IL", project.accuracy_matrix_class_il(), project.metrics_class_il()))
    width = max(8, *(len(n) for n in names)) + 2
    for scenario, R, summary in views:
        print(
            f"Accuracy matrix R ({scenario}; row i = after training task i, column j = accuracy on task j), "
            f"strategy {project.strategy_name}:"
        )
        print(" " * width + "".join(f"{n:>{width}}" for n in names))
        for name, row in zip(names, R, strict=True):
            print(f"{name:<{width}}" + "".join(f"{'' if v is None else f'{v:.1%}':>{width}}" for v in row))
        for key, value in summary.items():
            shown = "n/a" if value is None else (f"{value:+.2%}" if key in ("BWT", "FWT") else f"{value:.2%}")
            doc = (metrics.FORMULAS[key] or "").split(" — ")[0].strip()
            print(f"  {key:<11} {shown:>8}    {doc}")
    _print_sparsity(project)


def _print_sparsity(project: Any) -> None:
    report = project.sparsity_report()
    if not report["tasks"]:
        return
    if report["layers"]:
        print("Weight sparsity per masked layer after each task (fraction of weights masked out):")
        names = [t["name"] for t in report["tasks"]]
        width = max(8, *(len(n) for n in names)) + 2
        print(f"{'layer':<20}" + "".join(f"{n:>{width}}" for n in names))
        for i, layer in enumerate(report["layers"]):
            print(f"{layer:<20}" + "".join(f"{t['sparsity'][i]:>{width}.3f}" for t in report["tasks"]))
    used, dense = report["flops_used"], report["flops_dense"]
    if used:
        print(
            f"Training FLOPs: {used:.3e} used vs {dense:.3e} for the dense method on the same schedule "
            f"({dense / used:.2f}x fewer)"
        )


def cmd_eval(args: argparse.Namespace) -> int:
    from clstudio.engine.project import Project

    project = Project.open(args.project, device=args.device)
    if args.recompute and project.trained_tasks():
        row = project.evaluate()
        stored = project.doc["R"][-1]
        drift = max(abs(a - b) for a, b in zip(row, stored, strict=True))
        print(
            f"Re-evaluated: {', '.join(f'{v:.1%}' for v in row)} (max difference to stored last row: {drift:.4f})",
            file=sys.stderr,
        )
    if args.json:
        out = {
            "R": project.accuracy_matrix(),
            **project.metrics(),
            "tasks": [project.task(t)["name"] for t in project.doc["R_tasks"]],
            "strategy": project.strategy_name,
            "scenario": "task-il",
        }
        if project.accuracy_matrix_class_il() is not None:
            out["class_il"] = {"R": project.accuracy_matrix_class_il(), **project.metrics_class_il()}
            out["sparsity"] = project.sparsity_report()
        print(json.dumps(out))
    else:
        _print_matrix(project)
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from clstudio.engine.project import Project

    project = Project.open(args.project, device=args.device)
    results = project.classify(args.images, args.task, top_k=args.top_k)
    if args.json:
        print(json.dumps(results))
        return 0 if all("top" in r for r in results) else 1
    for r in results:
        print(r["path"])
        if "error" in r:
            print(f"  cannot classify: {r['error']}")
            continue
        for cls, p in r["top"]:
            print(f"  {p:7.2%}  {'█' * int(round(p * 30)):<30}  {cls}")
    return 0 if all("top" in r for r in results) else 1


def cmd_info(args: argparse.Namespace) -> int:
    from clstudio.engine.project import Project

    info = Project.open(args.project, device="cpu").info()
    if args.json:
        print(json.dumps(info))
        return 0
    print(
        f"Project {info['project']}: strategy {info['strategy']}, backbone {info['backbone']} "
        f"({info['backbone_params']:,} params), {info['image_size']} px"
    )
    if info["shared_bytes"]:
        print(f"  shared weights: {info['shared_bytes']:,} bytes")
    for t in info["tasks"]:
        state = "trained" if t["trained"] else "not trained"
        pct = 100 * t["trainable_params"] / info["backbone_params"] if info["backbone_params"] else 0
        print(
            f"  {t['name']:<20} {len(t['classes']):>3} classes {t['images']:>7} images  {state:<11} "
            f"{t['bytes']:>10,} bytes  {t['trainable_params']:>9,} params ({pct:.2f} % of backbone)"
        )
        print(f"      classes: {', '.join(t['classes'])}")
    return 0


def cmd_make_demo(args: argparse.Namespace) -> int:
    from clstudio.engine.data.synthetic import make_demo

    folders = make_demo(args.folder, per_class=args.per_class)
    print("Wrote demo tasks:", " ".join(str(f) for f in folders))
    print(f"Try: clstudio train --project {Path(args.folder) / 'project'} " + " ".join(f"--task {f}" for f in folders))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from clstudio.engine.bundle import export_project

    out = export_project(args.project, args.bundle)
    print(f"Exported {args.project} to {out} ({out.stat().st_size:,} bytes)")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from clstudio.engine.bundle import import_project

    dest = import_project(args.bundle, args.project)
    print(f"Imported {args.bundle} as project {dest}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from clstudio.engine.models.backbones import list_backbones
    from clstudio.engine.strategies import get_strategy_class, list_strategies

    print("Strategies:")
    for name, desc in list_strategies().items():
        print(f"  {name:<14} {desc}")
        for f in dataclasses.fields(get_strategy_class(name).Config):
            print(f"      {f.name}={f.default!r}: {f.metadata.get('help', '')}")
    print("Backbones:")
    for name, desc in list_backbones().items():
        print(f"  {name:<20} {desc}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from clstudio import __version__

    default_project = None  # resolved in run(): creating the data folder is not the parser's business
    p = argparse.ArgumentParser(
        prog="clstudio",
        description="CL Studio: learn image tasks one after another, "
        "without forgetting. With no command, opens the app.",
    )
    p.add_argument("--version", action="version", version=f"clstudio {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def project_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--project", default=default_project, help="project folder (default: <data dir>/projects/default)"
        )
        sp.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")

    t = sub.add_parser("train", help="add tasks (folders of class subfolders) and train every untrained task")
    project_arg(t)
    t.add_argument("--task", action="append", metavar="FOLDER", help="a folder with one subfolder per class; repeat")
    t.add_argument(
        "--strategy", help="clr (default), sparcl, derpp, er, finetune, linear_probe — fixed at project creation"
    )
    t.add_argument(
        "--backbone",
        help="efficientnet_lite0 (default), resnet18, resnet50, resnet18_cifar (SparCL paper preset), tiny",
    )
    t.add_argument("--backbone-weights", metavar="FILE", help="ImageNet weights file for resnet18/resnet50")
    t.add_argument(
        "--preset",
        help="'faithful' (CLR) or 'paper' (SparCL/DER++/ER) reproduces the paper's recipe; default suits small folders",
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
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="any strategy setting (see `clstudio list`)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="print the accuracy matrix R and ACC / BWT / forgetting")
    project_arg(e)
    e.add_argument("--json", action="store_true")
    e.add_argument("--recompute", action="store_true", help="re-evaluate every task with the stored weights")
    e.set_defaults(func=cmd_eval)

    c = sub.add_parser("classify", help="top-k classes of images for one task")
    project_arg(c)
    c.add_argument("--task", required=True, help="task name")
    c.add_argument("--top-k", type=int, default=5)
    c.add_argument("--json", action="store_true")
    c.add_argument("images", nargs="+")
    c.set_defaults(func=cmd_classify)

    i = sub.add_parser("info", help="tasks, classes, image counts, bytes stored per task")
    project_arg(i)
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    d = sub.add_parser("make-demo", help="write two small generated tasks to try CL Studio on")
    d.add_argument("folder")
    d.add_argument("--per-class", type=int, default=30)
    d.set_defaults(func=cmd_make_demo)

    x = sub.add_parser("export", help="write the project to one .zip bundle")
    x.add_argument("--project", default=default_project)
    x.add_argument("bundle")
    x.set_defaults(func=cmd_export)
    m = sub.add_parser("import", help="unpack a .zip bundle into a new project folder")
    m.add_argument("bundle")
    m.add_argument("--project", required=True, help="the new project folder (must be new or empty)")
    m.set_defaults(func=cmd_import)

    sub.add_parser("list", help="strategies with their settings, and backbones").set_defaults(func=cmd_list)
    return p


def run(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    if hasattr(args, "project") and args.project is None:
        args.project = str(projects_dir() / "default")
    try:
        return args.func(args)
    except Cancelled:
        print("Cancelled.", file=sys.stderr)
        return 130
    except CLStudioError as e:
        print(f"clstudio: error: {e}", file=sys.stderr)
        return 2
