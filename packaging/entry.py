"""The bundle's one executable: no arguments opens the app, `app [PROJECT]` opens a project, any other
command is the CLI. freeze_support first: the app trains in a spawned child process, which in a frozen
build re-runs this executable and must become that child instead of a second window."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from clstudio.__main__ import main

    sys.exit(main())
