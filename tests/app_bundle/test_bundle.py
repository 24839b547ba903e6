"""Issue 16: the installable app. Builds the PyInstaller one-folder app with packaging/build.sh and runs
packaging/smoke.sh on it (version, demo, CLI training, the window training a task through Start in the
frozen child process, the bundled Lite0 weights). About 3 minutes and 5 GB of disk (the CUDA torch build's
libraries), so it runs in CI (CI=true) or when asked (CLSTUDIO_TEST_BUNDLE=1), and skips where the disk
cannot hold it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NEEDS_GB = 12  # the app (5.3 GB) and PyInstaller's work folder, with room to spare

pytestmark = pytest.mark.skipif(
    not (os.environ.get("CI") or os.environ.get("CLSTUDIO_TEST_BUNDLE")),
    reason="builds a 5 GB app (about 3 minutes): runs in CI, or with CLSTUDIO_TEST_BUNDLE=1",
)


@pytest.mark.timeout(1500)
def test_the_built_app_passes_its_smoke_test(tmp_path):
    free_gb = shutil.disk_usage(tmp_path).free / 1e9
    if free_gb < NEEDS_GB:
        pytest.skip(f"{free_gb:.0f} GB free where the app would be built; it needs {NEEDS_GB} GB")
    env = {**os.environ, "PYTHON": sys.executable, "DIST": str(tmp_path / "dist"), "WORK": str(tmp_path / "work")}
    try:
        build = subprocess.run(
            ["bash", str(ROOT / "packaging" / "build.sh")], env=env, capture_output=True, text=True, check=False
        )
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
        app = tmp_path / "dist" / "clstudio" / "clstudio"
        smoke = subprocess.run(
            ["bash", str(ROOT / "packaging" / "smoke.sh"), str(app)], capture_output=True, text=True, check=False
        )
        assert smoke.returncode == 0, smoke.stdout[-3000:] + smoke.stderr[-3000:]
        assert "smoke: window shown, 2 task(s) trained" in smoke.stdout
        assert "smoke: passed" in smoke.stdout
    finally:
        shutil.rmtree(tmp_path / "dist", ignore_errors=True)  # 5 GB: not left for pytest's kept tmp folders
        shutil.rmtree(tmp_path / "work", ignore_errors=True)
