"""Where CL Studio keeps things: platformdirs by default, everything under $CLSTUDIO_HOME when set
(tests and portable installs)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "clstudio"


def _home() -> Path | None:
    value = os.environ.get("CLSTUDIO_HOME")
    return Path(value).expanduser() if value else None


def _dir(kind: str) -> Path:
    home = _home()
    if home:
        path = home / kind
    else:
        finder = {
            "data": platformdirs.user_data_dir,
            "config": platformdirs.user_config_dir,
            "cache": platformdirs.user_cache_dir,
        }[kind]
        path = Path(finder(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    return _dir("data")


def config_dir() -> Path:
    return _dir("config")


def cache_dir() -> Path:
    return _dir("cache")


def projects_dir() -> Path:
    """Default parent folder for projects created without an explicit path."""
    path = data_dir() / "projects"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_dir() -> Path:
    path = data_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path
