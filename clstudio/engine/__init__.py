"""The CL Studio engine: everything that learns, stores and predicts. It never imports Qt.

The GUI and the CLI are two shells over this package: they send commands (``Project`` methods)
and render the ``events`` the engine emits.
"""

from clstudio.engine.cancel import CancelToken, PauseToken
from clstudio.engine.errors import CLStudioError, DatasetError, ProjectError

__all__ = ["CLStudioError", "CancelToken", "DatasetError", "PauseToken", "ProjectError"]
