"""The commands behind `clstudio train / eval / classify / info / make-demo / bundle / export-model / list`: each
parses nothing and prints nothing itself but calls the engine and ``render``. No Qt involved."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
from pathlib import Path
from typing import Any

from clstudio.cli import render
from clstudio.cli.parser import Command, build_parser
from clstudio.engine.cancel import CancelToken
from clstudio.engine.distributed import Collective
from clstudio.engine.errors import Cancelled, CLStudioError, ProjectError
from clstudio.engine.paths import projects_dir


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
        stored = project.config
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


def cmd_train(args: argparse.Namespace) -> int:
    from clstudio.cli import ranks as dist_cli

    if args.nproc and args.nproc > 1:
        code = dist_cli.launch(args.nproc, args.argv)
        if code >= 0:
            return code
    ranks, device = dist_cli.join(args.device)
    if not ranks.active:
        return _train(args, ranks, device)
    try:
        code = _train(args, ranks, device)
    except CLStudioError as e:
        print(f"clstudio: error: rank {ranks.rank}: {e}", file=sys.stderr)
        code = 2
    except Exception as e:
        message = dist_cli.explain(ranks, e)
        if message is None:
            raise
        print(message, file=sys.stderr)
        code = 1
    ranks.close()
    dist_cli.leave(code)
    return code


def _train(args: argparse.Namespace, ranks: Collective, device: str) -> int:
    """Add the folders as tasks and train the pending ones. Distributed, rank 0 alone creates the project and
    adds the tasks (the others open it once it has) and alone prints; every rank trains."""
    from clstudio.engine.project import Project

    cancel, main = CancelToken(), ranks.is_main
    args.device = device
    project, problem = None, None
    if main:
        try:
            project = _open_or_add_tasks(args, cancel)
        except CLStudioError as e:
            problem = str(e)
            if not ranks.active:
                raise
        ranks.broadcast_object(problem)
        if problem is not None:
            raise CLStudioError(problem)
    else:
        problem = ranks.broadcast_object(None)  # wait until rank 0 has the project and its tasks ready
        if problem is not None:
            return 2  # rank 0 says why
        project = Project.open(args.project, device=device)
    assert project is not None
    project.use_ranks(ranks)
    if not project.pending_tasks():
        if main:
            print(
                "Nothing to train: every task in the project is trained. Add one with --task FOLDER.", file=sys.stderr
            )
        return 0
    previous = signal.getsignal(signal.SIGINT)

    def on_interrupt(signum: int, frame: Any) -> None:
        if main:
            print("\nCancelling after this batch... (the current task is left untrained)", file=sys.stderr)
        cancel.cancel()

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        resumable = project.resumable_tasks()
        if resumable and not args.resume and main:
            print(
                f"Note: '{resumable[0]}' was interrupted; it starts over. Use --resume to continue it.", file=sys.stderr
            )
        observers = [render.ProgressPrinter()] if main else []
        project.train_pending(observers=observers, cancel=cancel, resume=args.resume)
    except Cancelled:
        if main:
            print("Cancelled. Tasks finished before are saved; the interrupted task is untrained.", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    if main:
        render.print_matrix(project)
    return 0


def _open_or_add_tasks(args: argparse.Namespace, cancel: CancelToken) -> Any:
    from clstudio.engine.data.scan import scan_folder

    project = _open_or_create(args)
    for folder in args.task or []:
        existing = project.task_from_folder(folder)
        if existing is not None:
            # Re-running the same command (e.g. with --resume after a crash) must not add the folder twice.
            print(f"'{folder}' is already task '{existing['name']}' in this project.", file=sys.stderr)
            continue

        def progress(done: int, total: int, name: str = Path(folder).name) -> None:
            if sys.stderr.isatty():
                sys.stderr.write(f"\r  checking images of '{name}': {done}/{total}")
                if done == total:
                    sys.stderr.write("\n")

        report = scan_folder(folder, progress=progress, cancel=cancel)
        render.print_scan(report)
        project.add_task(report)
    return project


def cmd_eval(args: argparse.Namespace) -> int:
    from clstudio.engine.project import Project

    project = Project.open(args.project, device=args.device)
    if args.recompute and project.trained_tasks():
        row = project.evaluate()
        stored = project.last_row()
        drift = max(abs(a - b) for a, b in zip(row, stored, strict=True))
        print(
            f"Re-evaluated: {', '.join(f'{v:.1%}' for v in row)} (max difference to stored last row: {drift:.4f})",
            file=sys.stderr,
        )
    if args.json:
        out: dict[str, Any] = {
            "R": project.accuracy_matrix(),
            **project.metrics(),
            "tasks": project.trained_names(),
            "strategy": project.strategy_name,
            "scenario": "task-il",
            "evaluation": project.evaluation_basis(),
            "per_task": {n: project.per_class(n, args.after) for n in _tasks_asked(project, args)},
        }
        cil_R, cil_metrics = project.accuracy_matrix_class_il(), project.metrics_class_il()
        if cil_R is not None and cil_metrics is not None:
            out["class_il"] = {"R": cil_R, **cil_metrics}
            out["sparsity"] = project.sparsity_report()
        routed = project.routed()
        if routed is not None:
            out["routed"] = routed
        proof_status = project.proof_status()
        if proof_status:
            out["zero_forgetting"] = proof_status
        if args.flips:
            out["flips"] = project.flips()
        print(json.dumps(out))
    elif args.task:
        for name in _tasks_asked(project, args):
            render.print_per_class(name, project.per_class(name, args.after))
    elif args.flips:
        render.print_flips(project.flips(), project)
    else:
        render.print_matrix(project)
    return 0


def _tasks_asked(project: Any, args: argparse.Namespace) -> list[str]:
    """The trained tasks ``eval`` reports per class on: the one named, else all (those trained by ``--after``)."""
    if args.task:
        return [project.task(args.task)["name"]]
    names = project.trained_names()
    return names[: names.index(project.task(args.after)["name"]) + 1] if args.after else names


def cmd_report(args: argparse.Namespace) -> int:
    from clstudio.engine import html_report
    from clstudio.engine.views import SavedProject

    path = html_report.write(SavedProject(Path(args.project).expanduser()), args.output)
    print(f"Wrote the report to {path} ({path.stat().st_size / 1024:.0f} KB, one self-contained HTML file)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from clstudio.engine.project import Project

    project = Project.open(args.project, device=args.device)
    if not project.trained_tasks():
        print("No trained task yet: nothing to verify.")
        return 0
    if not any("proof" in t for t in project.trained_tasks()):
        print(
            f"{project.strategy_name} changes weights every task shares, so earlier tasks can change by design: "
            "there is no zero-forgetting proof to check. `clstudio eval --flips` shows what changed."
        )
        return 0
    results = project.verify()
    render.print_verify(project, results)
    return 0 if all(r["verdict"].startswith("unchanged") for r in results.values()) else 1


def cmd_classify(args: argparse.Namespace) -> int:
    from clstudio.engine.classify import AUTO
    from clstudio.engine.project import Project
    from clstudio.engine.results_csv import write_csv

    project = Project.open(args.project, device=args.device)
    task = args.task
    if task is None:
        trained = project.trained_names()
        task = trained[0] if len(trained) == 1 else AUTO
    bar = render.ProgressLine("Classifying")
    results = project.classify(args.images, task, top_k=args.top_k, progress=bar.update)
    bar.close()
    if args.csv:
        write_csv(args.csv, results)
        print(f"Wrote {len(results)} row(s) to {args.csv}", file=sys.stderr)
    if args.json:
        print(json.dumps(results))
    else:
        render.print_classified(results)
    return 0 if all("top" in r for r in results) else 1


def cmd_info(args: argparse.Namespace) -> int:
    from clstudio.engine.project import Project

    info = Project.open(args.project, device="cpu").info()
    if args.json:
        print(json.dumps(info))
    else:
        render.print_info(info)
    return 0


def cmd_make_demo(args: argparse.Namespace) -> int:
    from clstudio.engine.data.synthetic import make_demo

    folders = make_demo(args.folder, per_class=args.per_class)
    print("Wrote demo tasks:", " ".join(str(f) for f in folders))
    print(f"Try: clstudio train --project {Path(args.folder) / 'project'} " + " ".join(f"--task {f}" for f in folders))
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from clstudio.engine.bundle import export_project, import_project

    if args.action == "export":
        out = export_project(args.project, args.bundle)
        print(f"Bundled {args.project} into {out} ({out.stat().st_size:,} bytes)")
    else:
        dest = import_project(args.bundle, args.project)
        print(f"Unpacked {args.bundle} as project {dest}")
    return 0


def cmd_export_model(args: argparse.Namespace) -> int:
    from clstudio.engine.project import Project

    model, meta = Project.open(args.project, device="cpu").export_model(args.task, args.format, args.output)
    print(f"Wrote {model} ({model.stat().st_size:,} bytes) and {meta}")
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


COMMANDS: dict[str, Command] = {
    "train": cmd_train,
    "eval": cmd_eval,
    "verify": cmd_verify,
    "report": cmd_report,
    "classify": cmd_classify,
    "info": cmd_info,
    "make-demo": cmd_make_demo,
    "bundle": cmd_bundle,
    "export-model": cmd_export_model,
    "list": cmd_list,
}


def run(argv: list[str]) -> int:
    parser = build_parser(COMMANDS)
    args = parser.parse_args(argv)
    args.argv = list(argv)  # a command that relaunches itself (train --nproc) needs its own words
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
