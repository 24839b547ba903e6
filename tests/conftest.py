import os

# Qt needs a platform and CI has no display; tests never touch the user's real data folders.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("clstudio_home")
    monkeypatch.setenv("CLSTUDIO_HOME", str(home))
    return home
