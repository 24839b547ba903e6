import subprocess
import sys


def test_engine_import_leaves_qt_out():
    code = (
        "import sys, clstudio.engine, clstudio.engine.project, clstudio.cli, clstudio.engine.strategies;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
