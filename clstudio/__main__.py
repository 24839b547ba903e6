"""`clstudio` / `python -m clstudio`: no arguments opens the app, subcommands run the engine headless."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["app"]:  # `clstudio app [PROJECT]`: what clstudio-gui does, for a bundle's one executable
        from clstudio.gui.app import run_app

        return run_app(["clstudio-gui", *argv[1:]])
    if not argv:
        if sys.platform.startswith("linux") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
        ):
            # Qt would abort in C++ with no display; say what to do instead.
            print(
                "clstudio: no display found, so the app cannot open here. Use the command line "
                "(clstudio --help), or run the app under a display (e.g. xvfb-run clstudio).",
                file=sys.stderr,
            )
            return 2
        try:
            from clstudio.gui.app import run_app  # lazy: the CLI never pays for (or needs) Qt
        except ImportError:
            from clstudio.cli import build_parser

            build_parser().print_help()
            return 0
        return run_app()
    from clstudio.cli import run

    return run(argv)


if __name__ == "__main__":
    import multiprocessing

    multiprocessing.freeze_support()  # the app trains in a spawned child process; needed in frozen builds
    sys.exit(main())
