#!/usr/bin/env bash
# Build the one-folder app: packaging/dist/clstudio/ (run it as packaging/dist/clstudio/clstudio).
#   packaging/build.sh            # a fresh build venv in packaging/build/venv, then PyInstaller
#   PYTHON=.venv/bin/python packaging/build.sh   # reuse a venv that has CL Studio installed
#   DIST=/tmp/out WORK=/tmp/work packaging/build.sh   # build elsewhere (the app is about 5 GB)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"
if [[ -z "${PYTHON:-}" ]]; then
  python3 -m venv "$here/build/venv"
  PYTHON="$here/build/venv/bin/python"
  "$PYTHON" -m pip install -q -e "$root"
fi
"$PYTHON" -m pip install -q pyinstaller
start=$(date +%s)
dist="${DIST:-$here/dist}"
"$PYTHON" -m PyInstaller --noconfirm --log-level WARN \
  --distpath "$dist" --workpath "${WORK:-$here/build/work}" "$here/clstudio.spec"
echo "built $dist/clstudio in $(( $(date +%s) - start )) s, $(du -sh "$dist/clstudio" | cut -f1)"
