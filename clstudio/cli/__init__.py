"""The command line over the engine: ``parser`` (arguments, choices from the registries), ``commands``
(what each command does) and ``render`` (how results and progress are printed)."""

from __future__ import annotations

import argparse

from clstudio.cli.commands import COMMANDS, run


def build_parser() -> argparse.ArgumentParser:
    from clstudio.cli.parser import build_parser as build

    return build(COMMANDS)


__all__ = ["build_parser", "run"]
