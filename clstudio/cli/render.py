"""How the CLI shows things: a progress printer for engine events, scan summaries, R with its metrics,
per-layer sparsity and project info. Plain text on stderr (progress) and stdout (results)."""

from __future__ import annotations

import sys
import time
from typing import Any

from clstudio.engine import events as ev
from clstudio.engine import metrics
from clstudio.engine.formatting import format_duration, format_loss, format_share, input_size_note


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
                f"\r  epoch {event.epoch} {bar} {event.step}/{event.steps}  loss {format_loss(event.loss)}  "
                f"{event.images_per_s:.0f} img/s  ETA {format_duration(event.eta_s)}   "
            )
            out.flush()
        elif isinstance(event, ev.EpochEnded):
            if self.tty:
                out.write("\r" + " " * 100 + "\r")
            star = " *" if event.best_epoch == event.epoch else ""
            extra = f"  ({event.skipped_images} unreadable images skipped)" if event.skipped_images else ""
            lr = f"  lr {event.lr:.0e}" if event.lr else ""
            print(
                f"  epoch {event.epoch:>3}/{event.epochs}  loss {event.train_loss:.4f}  val acc {event.val_acc:.1%}"
                f"{star}{lr}{extra}",
                file=out,
            )
        elif isinstance(event, ev.InputSizeChosen):
            print(f"  {input_size_note(event)}", file=out)
        elif isinstance(event, ev.ModelLive):
            print(
                f"  {event.model} model of '{event.task}' ready after {format_duration(event.seconds)} (val acc "
                f"{event.val_acc:.1%}): classify can use it now; training goes on and replaces it only if "
                "clearly better",
                file=out,
            )
        elif isinstance(event, ev.TaskFinished):
            # Epoch 0 is the probe head CLR started from: no epoch beat it on validation, so it stayed.
            kept = "the probe model: no epoch beat it clearly" if event.best_epoch == 0 else f"epoch {event.best_epoch}"
            print(
                f"Finished '{event.task}' in {format_duration(event.seconds)}: best val acc "
                f"{event.best_val_acc:.1%} ({kept} of {event.epochs_run})",
                file=out,
            )
        elif isinstance(event, ev.EvalFinished):
            cells = "  ".join(f"{t}: {a:.1%}" for t, a in zip(event.tasks, event.row, strict=True))
            print(f"  accuracy after '{event.after_task}': {cells}", file=out)
        elif isinstance(event, ev.TaskResumed):
            print(f"  resuming '{event.task}' after epoch {event.from_epoch}", file=out)
        elif isinstance(event, ev.Paused):
            print(f"\nPaused '{event.task}'.", file=out)


def print_scan(report: Any) -> None:
    counts = report.counts()
    print(
        f"Task '{report.name}' ({report.layout} layout): {len(report.classes)} classes, "
        f"{len(report.train)} train / {len(report.val)} to pick the epoch / {len(report.eval_split)} "
        f"{'held out to measure' if report.eval_on == 'test' else 'to measure (the same as pick the epoch)'}",
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


def print_matrix(project: Any) -> None:
    names = project.trained_names()
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
    print_routed(names, project.routed())
    print_basis(project.evaluation_basis())
    print_sparsity(project.sparsity_report())


def print_routed(names: list[str], routed: dict[str, Any] | None) -> None:
    """Without being told the task: how often the router picks it, and accuracy through the router."""
    if routed is None:
        return
    last_routing, last_routed = routed["routing_accuracy"][-1], routed["R"][-1]
    print("Without the task given (classify --task auto), after the last task:")
    for name, r, a in zip(names, last_routing, last_routed, strict=True):
        print(f"  {name}: routed to its task {r:.1%}, routed Class-IL accuracy {a:.1%}")
    print(f"  mean routed Class-IL accuracy {routed['ACC']:.2%} (routing {routed['routing_ACC']:.2%})")


def print_basis(basis: list[dict[str, Any]]) -> None:
    """What every accuracy above rests on."""
    print("Measured on:")
    for b in basis:
        kind = "held-out test" if b["eval_on"] == "test" else "validation"
        print(f"  {b['task']}: {b['eval_images']} {kind} images (at least {b['min_per_class']} per class)")
        for w in b["warnings"]:
            print(f"    warning: {w}")


def print_sparsity(report: dict[str, Any]) -> None:
    if not report["tasks"]:
        return
    if report["layers"]:
        print("Weight sparsity per masked layer after each task (fraction of weights masked out):")
        names = [t["name"] for t in report["tasks"]]
        width = max(8, *(len(n) for n in names)) + 2
        print(f"{'layer':<20}" + "".join(f"{n:>{width}}" for n in names))
        for i, layer in enumerate(report["layers"]):
            print(f"{layer:<20}" + "".join(f"{t['sparsity'][i]:>{width}.3f}" for t in report["tasks"]))
    if report.get("masked_weight_share") is not None:
        print(
            f"The masked layers hold {report['masked_weight_share']:.1%} of the backbone's weights and "
            f"{report['masked_mac_share']:.1%} of its MACs (the rest stays dense)."
        )
    used, dense = report["flops_used"], report["flops_dense"]
    if used:
        print(
            f"Training FLOPs: {used:.3e} used vs {dense:.3e} for the dense method on the same schedule "
            f"({dense / used:.2f}x fewer)"
        )


def print_info(info: dict[str, Any]) -> None:
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


class ProgressLine:
    """``done / total`` on stderr: rewritten in place on a terminal, a line per quarter otherwise."""

    def __init__(self, label: str, stream: Any = None) -> None:
        self.label, self.stream = label, stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._quarter = 0
        self._start = time.monotonic()

    def update(self, done: int, total: int) -> None:
        rate = done / max(time.monotonic() - self._start, 1e-9)
        text = f"{self.label}: {done}/{total} images, {rate:.0f} img/s"
        if self.tty:
            self.stream.write(f"\r  {text}   ")
            self.stream.flush()
        elif total and done * 4 // total > self._quarter:
            self._quarter = done * 4 // total
            print(f"  {text}", file=self.stream)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


def print_classified(results: list[dict[str, Any]]) -> None:
    for r in results:
        print(r["path"])
        if "error" in r:
            print(f"  cannot classify: {r['error']}")
            continue
        if "route" in r:
            route = r["route"]
            if r["none_of_my_tasks"]:
                print(
                    f"  none of my tasks: nearest is '{route['nearest']}' at distance {route['distance']:.0f} "
                    f"(its images fall within {route['threshold']:.0f}); its best guess:"
                )
            else:
                print(f"  task '{r['task']}' (chosen by the router; distance {route['distance']:.0f})")
        for cls, p in r["top"]:
            print(f"  {p:7.2%}  {'█' * int(round(p * 30)):<30}  {cls}")


def print_per_class(name: str, result: dict[str, Any] | None) -> None:
    """One task's confusion matrix and per-class scores, as evaluated after ``result['after']``."""
    if result is None:
        print(f"{name}: no per-image record (evaluated before CL Studio kept one); retrain or use --recompute.")
        return
    classes = result["classes"]
    width = max(6, *(len(c) for c in classes)) + 2
    print(f"Task {name}, after training {result['after']}: {result['images']} images", end="")
    print(f" ({result['unreadable']} unreadable, left out)" if result["unreadable"] else "")
    print("Confusion matrix (rows: true class, columns: predicted):")
    print(" " * width + "".join(f"{c:>{width}}" for c in classes))
    for c, row in zip(classes, result["confusion"], strict=True):
        print(f"{c:<{width}}" + "".join(f"{v:>{width}}" for v in row))
    print(f"{'class':<{width}}{'precision':>11}{'recall':>9}{'F1':>9}{'images':>8}")
    for r in result["per_class"]:
        print(
            f"{r['class']:<{width}}{format_share(r['precision']):>11}{format_share(r['recall']):>9}{format_share(r['f1']):>9}{r['support']:>8}"
        )


def print_flips(flips: list[dict[str, Any]], project: Any) -> None:
    """The forgetting explorer as text: after each task, the earlier images whose answer changed."""
    if not flips:
        print("Nothing to compare: flips need two trained tasks with per-image records.")
        return
    for f in flips:
        lost, gained = f["right_to_wrong"], f["wrong_to_right"]
        print(f"After {f['after']}, task {f['task']}: {len(lost)} right → wrong, {len(gained)} wrong → right")
        if lost or gained:
            answers = project.answers(f["task"], f["after"])
            for label, positions in (("forgotten", lost), ("learned", gained)):
                for i in positions[:5]:
                    said = answers.classes[answers.pred[i]]
                    print(f"    {label}: {answers.files[i]} ({answers.classes[answers.labels[i]]}, now says {said})")
                if len(positions) > 5:
                    print(f"    … and {len(positions) - 5} more {label}")


def print_verify(project: Any, results: dict[str, dict[str, Any]]) -> None:
    by_id = {t["id"]: t for t in project.trained_tasks()}
    for tid, r in results.items():
        t = by_id[tid]
        mark = "OK " if r["verdict"].startswith("unchanged") else "CHANGED"
        print(f"{mark} {t['name']}: {r['verdict']}")
        print(
            f"    weights {t['weights']} sha256 {t['proof']['weights_sha256'][:16]}…, "
            f"answers on {t['proof']['images']} images sha256 {t['proof']['probs_sha256'][:16]}…"
        )
