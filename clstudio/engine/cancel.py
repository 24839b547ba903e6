"""Cooperative cancel and pause, checked by the training loop once per batch.

Thread-safe (``threading.Event``) so a GUI thread can set them while a worker trains. Either token can
wrap a ``multiprocessing`` Event instead (same API), so a parent process can cancel or pause a child.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from clstudio.engine.errors import Cancelled


class CancelToken:
    def __init__(self, event: Any = None) -> None:
        self._event = event if event is not None else threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


class PauseToken:
    """While paused, ``wait_if_paused`` blocks, waking every 50 ms so a cancel still takes effect at once."""

    def __init__(self, running: Any = None) -> None:
        """``running``: an Event that is set while not paused (a new, set one by default)."""
        if running is None:
            running = threading.Event()
            running.set()
        self._running = running

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_if_paused(self, cancel: CancelToken | None = None) -> float:
        """Block while paused; return the seconds spent paused (so ETAs can leave them out)."""
        start = time.monotonic()
        while not self._running.wait(0.05):
            if cancel is not None:
                cancel.raise_if_cancelled()
        return time.monotonic() - start
