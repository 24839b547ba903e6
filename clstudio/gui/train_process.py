"""Training runs in a child process, not in a thread of the app.

Why: torch holds Python's GIL for stretches of its own work (its first optimizer step imports
torch._dynamo, ~100-250 ms with the GIL held, measured with faulthandler), and every such stretch froze
the window. In its own process nothing the engine does can stall the UI. The worker thread of the app
relays: it forwards the person's cancel / pause to the child through multiprocessing Events (the engine's
tokens wrap them) and turns what the child sends on a Queue into the worker's usual signals.

This module is imported by the child: it must not import Qt.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
import traceback
from pathlib import Path
from typing import Any

from clstudio.engine.cancel import CancelToken, PauseToken
from clstudio.engine.errors import Cancelled, CLStudioError

POLL_S = 0.05  # how often the relay mirrors cancel / pause and reads the child's messages
KILL_AFTER_CANCEL_S = 60.0  # a child that ignores a cancel this long is stopped (its writes are atomic)


class TrainingProcessError(CLStudioError):
    """A failure inside the training process, with the child's traceback for the log."""

    def __init__(self, message: str, child_traceback: str = "") -> None:
        super().__init__(message)
        self.child_traceback = child_traceback


def _child(
    folder: str, names: list[str], out: Any, cancel_event: Any, running_event: Any, device: str = "auto"
) -> None:
    import torch

    from clstudio.engine.project import Project

    cancel, pause = CancelToken(cancel_event), PauseToken(running_event)  # Events shared with the app process
    # Leave a core to the UI: with every core busy in torch, the window's process gets too little CPU.
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    try:
        project = Project.open(Path(folder), device=device)
        done = []
        for name in names:
            # The app always continues an interrupted task (a crash should cost at most one epoch).
            project.train_task(
                name, observers=[lambda e: out.put(("event", e))], cancel=cancel, pause=pause, resume=True
            )
            done.append(name)
        out.put(("done", done))
    except Cancelled:
        out.put(("cancelled", None))
    except CLStudioError as e:
        out.put(("failed", (str(e), traceback.format_exc())))
    except BaseException as e:  # noqa: BLE001 - the parent must hear about every failure
        out.put(("failed", (f"{type(e).__name__}: {e}", traceback.format_exc())))


def train_in_child(worker: Any, folder: Path, names: list[str], device: str = "auto") -> list[str]:
    """Run in the worker's thread: start the child, relay until it ends, return or raise like the engine."""
    ctx = mp.get_context("spawn")  # never fork a process that runs Qt threads
    messages = ctx.Queue()
    cancel_event, running_event = ctx.Event(), ctx.Event()
    running_event.set()
    child = ctx.Process(
        target=_child,
        args=(str(folder), names, messages, cancel_event, running_event, device),
        name="clstudio-train",
    )
    child.daemon = True  # dies with the app if the app itself is killed
    child.start()
    cancelled_at: float | None = None
    try:
        while True:
            if worker.cancel_token.cancelled and not cancel_event.is_set():
                cancel_event.set()
                cancelled_at = time.monotonic()
            if worker.pause_token.paused:
                running_event.clear()
            else:
                running_event.set()
            try:
                kind, payload = messages.get(timeout=POLL_S)
            except queue.Empty:
                if not child.is_alive():
                    return _after_exit(worker, child, messages)
                if cancelled_at is not None and time.monotonic() - cancelled_at > KILL_AFTER_CANCEL_S:
                    child.terminate()
                    raise Cancelled() from None
                continue
            result = _handle(worker, kind, payload)
            if result is not None:
                return result
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.terminate()
            child.join()
        messages.close()


def _handle(worker: Any, kind: str, payload: Any) -> list[str] | None:
    if kind == "event":
        worker.emit_event(payload)
        return None
    if kind == "done":
        return list(payload)
    if kind == "cancelled":
        raise Cancelled()
    message, tb = payload
    raise TrainingProcessError(message, tb)


def _after_exit(worker: Any, child: Any, messages: Any) -> list[str]:
    """The child is gone: its last messages may still be in the queue; if it sent no result, it crashed."""
    while True:
        try:
            kind, payload = messages.get(timeout=0.5)
        except queue.Empty:
            break
        result = _handle(worker, kind, payload)
        if result is not None:
            return result
    raise TrainingProcessError(
        f"The training process stopped unexpectedly (exit code {child.exitcode}). Finished tasks are saved; "
        f"press Start to continue (an interrupted task resumes from its last epoch)."
    )
