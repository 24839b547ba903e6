"""How the CLI and the GUI write durations and notes, so they read the same in a terminal and in the window."""

from __future__ import annotations

import math

from clstudio.engine.events import InputSizeChosen


def format_loss(loss: float) -> str:
    """'0.412'; '—' for a step that has no loss (the probe's feature pass)."""
    return f"{loss:.3f}" if math.isfinite(loss) else "—"


def format_duration(seconds: float) -> str:
    """'4m 05s', '1h 02m'; '—' when there is no estimate yet (infinite, NaN or negative)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "—"
    s = int(seconds)
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def format_share(value: float | None) -> str:
    """'91.2%'; '—' where nothing was measured (a class never predicted has no precision)."""
    return "—" if value is None else f"{value:.1%}"


def input_size_note(event: InputSizeChosen) -> str:
    """What the CLI and the app say when 'auto' picked a smaller input size than the backbone's."""
    return (
        f"Small images in '{event.task}' ({event.image_side} px): this project trains and classifies at "
        f"{event.size} px instead of {event.native}, as accurate on small images and faster (set an image size "
        "in the settings to choose another)"
    )
