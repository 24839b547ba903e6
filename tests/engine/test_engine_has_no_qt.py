"""The engine runs headless: importing every one of its modules (and the CLI, the session and the training
child process) loads no Qt. import-linter checks the same statically in .ci/run; this checks it at run time."""

import subprocess
import sys


def test_every_engine_module_leaves_qt_out():
    code = (
        "import importlib, pkgutil, sys, clstudio.engine;"
        "mods = [m.name for m in pkgutil.walk_packages(clstudio.engine.__path__, 'clstudio.engine.')];"
        "mods += ['clstudio.cli', 'clstudio.gui.session', 'clstudio.gui.train_process'];"
        "[importlib.import_module(m) for m in mods];"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph')];"
        "print(len(mods), bad); sys.exit(1 if bad or len(mods) < 30 else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
